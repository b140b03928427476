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
from evomerge.merge.engine import MergeContext
from evomerge.merge.operators import OPERATORS, topk
from evomerge.merge.plan import plan_merge
from evomerge.merge.recipe import Recipe


class LiveMerger:
    """Sources resident in memory, task vectors precomputed, candidates built in place.

    ``remember_order`` sorts every task vector's magnitudes once (CPU), so that magnitude
    trims (TIES, Breadcrumbs) at any density read their threshold instead of scanning
    for it: worth it when many candidates are built, at the cost of one more copy of
    the task vectors in memory.
    """

    def __init__(self, models: Sequence[str], base: str | None = None, *,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 allow_pickle: bool = False, remember_order: bool = False):
        keys = list(dict.fromkeys(_key(m) for m in ([base] if base else []) + list(models)))
        readers = [CheckpointReader(m, allow_pickle=allow_pickle) for m in keys]
        check_compatible(readers)
        names = readers[0].tensor_names()
        weights = {}
        for model, reader in zip(keys, readers):
            weights[model] = {n: reader.get(n, device=device, dtype=dtype) for n in names}
            reader.close()
        self._adopt(weights, readers[0].config, base, device, dtype,
                    remember_order=remember_order)

    @classmethod
    def from_weights(cls, weights: dict[str, dict[str, torch.Tensor]], config: dict,
                     base: str | None = None, *, device: str | torch.device = "cpu",
                     dtype: torch.dtype = torch.float32, task_vectors_only: bool = False,
                     remember_order: bool = False) -> LiveMerger:
        """Sources already in memory: ``weights[model][tensor name]``, every model with the
        same names and shapes, and the ``config.json`` contents of their architecture.
        Tensors already on ``device`` in ``dtype`` are used as they are, not copied.

        ``task_vectors_only`` turns each non-base model's tensors into its task vector in
        place, so a large source set takes the memory of its models once, not twice.
        Task-vector methods need nothing else; methods that read raw weights (linear,
        SLERP, ...) are then refused. ``remember_order`` is as for the constructor.
        """
        first, first_shapes = None, None
        for model, tensors in weights.items():
            shapes = {n: tuple(t.shape) for n, t in tensors.items()}
            if first_shapes is None:
                first, first_shapes = model, shapes
            elif shapes != first_shapes:
                differ = sorted(set(shapes.items()) ^ set(first_shapes.items()))[:3]
                raise ConfigError(None, "models", model,
                                  f"its tensors differ from those of {first!r} "
                                  f"(first differences: {differ})")
        merger = cls.__new__(cls)
        weights = {_key(m): {n: t.to(device=device, dtype=dtype) for n, t in w.items()}
                   for m, w in weights.items()}
        merger._adopt(weights, config, base, device, dtype, task_vectors_only, remember_order)
        return merger

    def _adopt(self, weights: dict[str, dict[str, torch.Tensor]], config: dict,
               base: str | None, device: str | torch.device, dtype: torch.dtype,
               task_vectors_only: bool = False, remember_order: bool = False) -> None:
        self.models = list(weights)
        self.base = _key(base) if base else None
        if self.base is not None and self.base not in weights:
            raise ConfigError(None, "base_model", base, f"not among the sources {self.models}")
        self.device = torch.device(device)
        self.dtype = dtype
        # the operators' buffers, thread pool and remembered values, kept between builds
        self.context = MergeContext(self.device, input_key=lambda m, n: (_key(m), n))
        #: (live model, output names, their tensors) of the last build that checked them
        self._checked: tuple | None = None
        self.weights = weights
        self.names = sorted(weights[self.models[0]])
        self.config = config
        # task vectors once per source set: every delta method of every candidate reuses them
        self.deltas: dict[str, dict[str, torch.Tensor]] = {}
        self.task_vectors_only = task_vectors_only
        if task_vectors_only and not self.base:
            raise ConfigError(None, "task_vectors_only", True, "needs a base model")
        if self.base:
            b = self.weights[self.base]
            for model in self.models:
                if model == self.base:
                    continue
                if task_vectors_only:  # theta - base in place: no second copy
                    self.deltas[model] = {n: t.sub_(b[n]) for n, t in weights.pop(model).items()}
                else:
                    self.deltas[model] = {n: self.weights[model][n] - b[n] for n in self.names}
                if remember_order:
                    for name, tau in self.deltas[model].items():
                        topk.remember_order(self.context, model, name, tau)

    def _fetch(self, model: str, name: str) -> torch.Tensor:
        return self.weights[_key(model)][name]

    def _fetch_delta(self, model: str, name: str) -> torch.Tensor:
        return self.deltas[_key(model)][name]

    def plan(self, recipe: Recipe):
        unknown = [m for m in recipe.source_models() if _key(m) not in self.models]
        if unknown:
            raise ConfigError(None, "models", unknown,
                              f"not among the resident sources {self.models}")
        if recipe.base_model is not None and _key(recipe.base_model) != self.base:
            raise ConfigError(None, "base_model", recipe.base_model,
                              f"the resident task vectors are relative to {self.base!r}")
        op = OPERATORS.get(recipe.merge_method)
        # a method with an optional base (NuSLERP, Multi-SLERP) merges raw weights without one
        raw = op.kind != "delta" or (recipe.base_model is None and not op.needs_base)
        if self.task_vectors_only and raw:
            raise ConfigError(None, "merge_method", recipe.merge_method,
                              "this merger holds task vectors only (task_vectors_only=True); "
                              "methods that read raw weights need them resident")
        for field in ("tokenizer_source", "tokenizer", "chat_template"):
            if getattr(recipe, field) is not None:
                raise ConfigError(None, field, getattr(recipe, field),
                                  "in-memory builds keep the sources' vocabulary; "
                                  "tokenizer settings apply to disk merges only")
        return plan_merge(recipe, lambda m: self.names)

    def build(self, recipe: Recipe, model: torch.nn.Module) -> float:
        """Write the merge into ``model``'s parameters in place; returns seconds taken."""
        start = time.perf_counter()
        tasks = self.plan(recipe)
        names = tuple(task.out_name for task in tasks)
        checked = self._checked
        if checked is None or checked[0] is not model or checked[1] != names:
            # candidates of one search write the same tensors into the same model: the
            # check (a walk over the model's state) runs once per layout, not per build
            targets = _checked_targets(tasks, model, self.weights or self.deltas)
            self._checked = (model, names, targets)
        targets = self._checked[2]
        fetch_delta = self._fetch_delta if self.deltas else None
        with torch.no_grad():
            for task in tasks:
                target = targets[task.out_name]
                merged_tensor(recipe, task, self._fetch, fetch_delta, out=target,
                              ctx=self.context)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start

    def close(self) -> None:
        """Stop the engine's thread pool; the resident sources stay usable."""
        self.context.close()

    def __enter__(self) -> LiveMerger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def new_model(self, dtype: torch.dtype | None = None) -> torch.nn.Module:
        """A model of the sources' architecture, allocated once, to build candidates into."""
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.for_model(**self.config)
        with torch.device(self.device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype or self.dtype)
        return model.eval()


def merged_from_folders(recipe: Recipe, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """The weight merge of ``recipe`` built in memory from its own model folders (its
    base and sources loaded for this one build)."""
    with LiveMerger(recipe.source_models(), base=recipe.base_model, device=device,
                    dtype=dtype) as merger:
        model = merger.new_model()
        merger.build(recipe, model)
    return model


def _checked_targets(tasks, model: torch.nn.Module,
                     sources: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The live tensors the tasks write, after checking, before anything is written, that
    they define the whole model: every parameter and persistent buffer (a tied weight
    counts as written when any of its names is), each with the shape the plan makes.
    Otherwise the previous candidate's values would survive in the rest."""
    state = model.state_dict(keep_vars=True)
    written = {task.out_name for task in tasks}
    unknown = sorted(written - set(state))
    if unknown:
        raise ConfigError(None, "models", unknown[:5],
                          f"the recipe makes {len(unknown)} tensor(s) the live model "
                          "does not have")
    names_of: dict[int, list[str]] = {}
    for name, tensor in state.items():
        names_of.setdefault(id(tensor), []).append(name)
    missing = sorted(names[0] for names in names_of.values() if written.isdisjoint(names))
    if missing:
        raise ConfigError(None, "models", missing[:5],
                          f"the recipe leaves {len(missing)} of the live model's tensors "
                          "undefined (a plan with fewer layers than the model, or "
                          "tensors the sources lack); build it into a model of its own "
                          "shape instead")
    any_source = next(iter(sources.values()))
    for task in tasks:
        _, name = task.inputs[0] if task.inputs else task.base
        shape = tuple(any_source[name].shape)
        if tuple(state[task.out_name].shape) != shape:
            raise ConfigError(None, "models", task.out_name,
                              f"the live tensor has shape {tuple(state[task.out_name].shape)}"
                              f", the recipe makes {shape}")
    return {name: state[name] for name in written}


def _key(model: str | Path) -> str:
    """One spelling per model folder, so 'runs/a/' and Path('runs/a') meet."""
    return os.path.normpath(str(model))
