"""One worker: sources resident once, one model allocated once, candidates built in place.

>>> # worker = Worker(spec); fitness = worker.evaluate(recipe_dict)
"""

from __future__ import annotations

import math
import os
import socket
import time
import traceback
from typing import Any

from evomerge.evaluate import build_search_evaluator
from evomerge.execute.base import WorkerSpec
from evomerge.merge.live import LiveMerger
from evomerge.merge.recipe import load_recipe_dict
from evomerge.records import Fitness


def resolve_device(device: str) -> str:
    """``auto`` is ``cuda`` where there is a GPU, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class Worker:
    """Builds and scores candidates; :meth:`evaluate` never raises for a candidate."""

    def __init__(self, spec: WorkerSpec, worker_id: str | None = None):
        import torch
        from transformers import AutoTokenizer

        self.spec = spec
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.device = resolve_device(spec.device)
        dtype = getattr(torch, spec.dtype)
        start = time.perf_counter()
        self.merger = LiveMerger(list(spec.sources), base=spec.base, device=self.device,
                                 dtype=dtype)
        self.model = self.merger.new_model()
        self.tokenizer = AutoTokenizer.from_pretrained(spec.base or spec.sources[0])
        reference = (lambda: self.merger.weights[self.merger.base]) if spec.base else None
        self.evaluator = build_search_evaluator(spec.evaluation, spec.source,
                                                reference_state=reference)
        self.load_s = time.perf_counter() - start

    def evaluate(self, recipe: dict[str, Any]) -> Fitness:
        """Build ``recipe`` into the worker's model and score it."""
        start = time.perf_counter()
        try:
            merge_s = self.merger.build(load_recipe_dict(recipe), self.model)
        except Exception:  # a bad candidate is a failed record, not a stopped campaign
            return Fitness.failed(traceback.format_exc(), worker=self.id,
                                  timings={"merge_s": time.perf_counter() - start})
        fitness = self.evaluator.evaluate(self.model, self.tokenizer)
        fitness.worker = self.id
        fitness.timings = {"merge_s": merge_s, **fitness.timings}
        bad = [k for k, v in fitness.objectives.items() if not math.isfinite(v)]
        if fitness.is_ok and bad:
            return Fitness.failed(f"objectives {bad} are not finite numbers: "
                                  f"{ {k: fitness.objectives[k] for k in bad} }",
                                  directions=fitness.directions, timings=fitness.timings,
                                  worker=self.id, settings_hash=fitness.settings_hash)
        return fitness
