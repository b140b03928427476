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

from evomerge.evaluate import build_report_evaluator, build_search_evaluator
from evomerge.evaluate.fidelity import LevelJob
from evomerge.execute.base import WorkerSpec
from evomerge.merge.live import LiveMerger
from evomerge.merge.recipe import Recipe, load_recipe_dict
from evomerge.merge.routed_model import build_routed, resident_sources
from evomerge.merge.routing import MERGED
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
        self.evaluators = {"search": build_search_evaluator(spec.evaluation, spec.source,
                                                            reference_state=reference)}
        report = build_report_evaluator(spec.evaluation, spec.source)
        if report is not None:
            self.evaluators["report"] = report
        self._sources: dict[str, Any] | None = None  # models over the resident tensors
        self._routed: dict[str, Any] = {}  # embeddings model -> its routed model
        self._built: tuple[dict[str, Any], Any] | None = None  # (recipe, its model)
        self.load_s = time.perf_counter() - start
        self.ready_at = time.time()

    def evaluate(self, recipe: dict[str, Any], split: str = "search",
                 job: LevelJob | None = None) -> Fitness:
        """Build ``recipe`` into the worker's model and score it on the ``search`` or
        ``report`` tasks (``job``: one fidelity level of the search tasks); any error,
        out of memory included, is a failed Fitness carrying its text."""
        began = time.time()
        start = time.perf_counter()
        try:
            model, merge_s = self._model_for(recipe)
            fitness = self.evaluators[split].evaluate(model, self.tokenizer, job)
        except Exception as exc:  # a bad candidate is a failed record, not a stopped campaign
            self._built = None
            _release_memory(exc)
            return Fitness.failed(traceback.format_exc(), worker=self.id,
                                  timings={"total_s": time.perf_counter() - start,
                                           **self._clock(began)})
        fitness.worker = self.id
        fitness.timings = {"merge_s": merge_s, **fitness.timings, **self._clock(began)}
        bad = [k for k, v in fitness.objectives.items() if not math.isfinite(v)]
        if fitness.is_ok and bad:
            return Fitness.failed(f"objectives {bad} are not finite numbers: "
                                  f"{ {k: fitness.objectives[k] for k in bad} }",
                                  directions=fitness.directions, timings=fitness.timings,
                                  worker=self.id, settings_hash=fitness.settings_hash)
        return fitness

    def _model_for(self, recipe: dict[str, Any]) -> tuple[Any, float]:
        """The model of ``recipe``, built unless it is the one built last (the next
        fidelity level of the same candidate); the seconds its build took."""
        if self._built is not None and self._built[0] == recipe:
            return self._built[1], 0.0
        self._built = None
        model, merge_s = self._build(load_recipe_dict(recipe))
        self._built = (recipe, model)
        return model, merge_s

    def _build(self, recipe: Recipe) -> tuple[Any, float]:
        """The candidate's model and the seconds it took to build: the weight merge built
        into the worker's model, or a routed model whose hops share the resident
        sources' layers (rebuilt in place per embeddings model: no weights copied)."""
        if recipe.routing is None:
            return self.model, self.merger.build(recipe, self.model)
        start = time.perf_counter()
        if self._sources is None:
            self._sources = resident_sources(self.merger)
        sources = dict(self._sources)
        if recipe.merge_method is not None:  # parameter space first, then the routing
            self.merger.build(recipe, self.model)
            sources[MERGED] = self.model
        frame = recipe.routing.embeddings
        self._routed[frame] = build_routed(recipe, sources, into=self._routed.get(frame))
        return self._routed[frame], time.perf_counter() - start

    def _clock(self, began: float) -> dict[str, float]:
        """Wall-clock marks (epoch seconds) from which a worker's busy and idle time is
        read: when it became ready, when this candidate began and ended."""
        return {"load_s": self.load_s, "ready_at": self.ready_at, "began": began,
                "ended": time.time()}


def _release_memory(exc: BaseException) -> None:
    """After an out-of-memory error, give the cached blocks back so that the next
    candidate starts from the worker's resident state."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
        torch.cuda.empty_cache()
