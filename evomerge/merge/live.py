"""In-memory builds: write a recipe's merged weights straight into a live model.

This is the path every search candidate takes. The sources are loaded once (onto the GPU
when there is one), task vectors are computed once per source set, and each candidate is
written into the same preallocated ``torch.nn.Module``: no disk round trip, no new model.

>>> # builder = LiveMerger(["base", "a", "b"], base="base"); builder.build(recipe, model)
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from evomerge.checkpoint import CheckpointReader, check_compatible
from evomerge.errors import ConfigError
from evomerge.merge.apply import merged_tensor
from evomerge.merge.buffers import Buffers
from evomerge.merge.plan import plan_merge
from evomerge.merge.recipe import Recipe


class LiveMerger:
    """Sources resident in memory, task vectors precomputed, candidates built in place."""

    def __init__(self, models: Sequence[str], base: str | None = None, *,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 allow_pickle: bool = False):
        self.models = list(dict.fromkeys(_key(m) for m in ([base] if base else []) + list(models)))
        self.base = _key(base) if base else None
        base = self.base
        self.device = torch.device(device)
        self.dtype = dtype
        self._scratch = Buffers(self.device)  # operators' working tensors, kept between builds
        readers = [CheckpointReader(m, allow_pickle=allow_pickle) for m in self.models]
        check_compatible(readers)
        self.names = readers[0].tensor_names()
        self.config = readers[0].config
        self.weights: dict[str, dict[str, torch.Tensor]] = {}
        for model, reader in zip(self.models, readers):
            self.weights[model] = {n: reader.get(n, device=self.device, dtype=dtype)
                                   for n in self.names}
            reader.close()
        # task vectors once per source set: every delta method of every candidate reuses them
        self.deltas: dict[str, dict[str, torch.Tensor]] = {}
        if base:
            b = self.weights[base]
            for model in self.models:
                if model != base:
                    self.deltas[model] = {n: self.weights[model][n] - b[n] for n in self.names}

    def _fetch(self, model: str, name: str) -> torch.Tensor:
        return self.weights[_key(model)][name]

    def _fetch_delta(self, model: str, name: str) -> torch.Tensor:
        return self.deltas[_key(model)][name]

    def plan(self, recipe: Recipe):
        unknown = [m for m in recipe.source_models() if _key(m) not in self.weights]
        if unknown:
            raise ConfigError(None, "models", unknown,
                              f"not among the resident sources {self.models}")
        if recipe.base_model is not None and _key(recipe.base_model) != self.base:
            raise ConfigError(None, "base_model", recipe.base_model,
                              f"the resident task vectors are relative to {self.base!r}")
        return plan_merge(recipe, lambda m: self.names)

    def build(self, recipe: Recipe, model: torch.nn.Module) -> float:
        """Write the merge into ``model``'s parameters in place; returns seconds taken."""
        start = time.perf_counter()
        targets = dict(model.named_parameters(remove_duplicate=False))
        targets.update(dict(model.named_buffers()))
        fetch_delta = self._fetch_delta if self.deltas else None
        with torch.no_grad():
            for task in self.plan(recipe):
                target = targets.get(task.out_name)
                if target is None:
                    raise ConfigError(None, "models", task.out_name,
                                      "the live model has no parameter of this name")
                merged_tensor(recipe, task, self._fetch, fetch_delta, self.device, out=target,
                              scratch=self._scratch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start

    def new_model(self, dtype: torch.dtype | None = None) -> torch.nn.Module:
        """A model of the sources' architecture, allocated once, to build candidates into."""
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.for_model(**self.config)
        with torch.device(self.device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype or self.dtype)
        return model.eval()


def _key(model: str | Path) -> str:
    """One spelling per model folder, so 'runs/a/' and Path('runs/a') meet."""
    return os.path.normpath(str(model))
