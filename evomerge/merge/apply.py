"""Run one tensor task: gather inputs, call the operator, add the base, scale, cast.

Shared by the disk-to-disk merge and the in-memory build, so both give the same tensors.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from evomerge.merge.operators import OPERATORS, lines_scale, tensor_generator
from evomerge.merge.plan import TensorTask
from evomerge.merge.recipe import Recipe

# (model, tensor name) -> tensor in compute precision on the merge device
Fetch = Callable[[str, str], torch.Tensor]


def merged_tensor(recipe: Recipe, task: TensorTask, fetch: Fetch,
                  fetch_delta: Fetch | None = None, device: str | torch.device = "cpu",
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """The merged value of ``task.out_name``, written into ``out`` when given.

    Without ``out`` the result is a new float32 tensor (float64 stays float64).
    ``fetch_delta`` returns precomputed task vectors (the in-memory path); without it the
    deltas are computed here from the fetched tensors.
    """
    op = OPERATORS.get(recipe.merge_method)
    gen = tensor_generator(recipe.seed, task.out_name, device=device) if op.random else None
    base = fetch(*task.base) if task.base is not None else None
    if op.kind == "delta":
        if fetch_delta is not None:
            inputs = [fetch_delta(m, n) for m, n in task.inputs]
        else:
            inputs = [fetch(m, n) - base for m, n in task.inputs]
        if not inputs:  # only the base contributes
            return _store(base, out)
        delta = op.fn(inputs, task.params, base=base, generator=gen)
        scale = 1.0 if recipe.lines is None else lines_scale(
            task.layer, task.num_layers, recipe.lines.alpha, recipe.lines.beta)
        if out is not None and out.dtype == base.dtype and out.device == base.device:
            # one fused pass into the live parameter; the operator's output may alias an
            # input (a cached task vector), so it is never modified in place
            return torch.add(base, delta, alpha=scale, out=out)
        return _store(torch.add(base, delta, alpha=scale), out)
    inputs = [fetch(m, n) for m, n in task.inputs]
    return _store(op.fn(inputs, task.params, base=base, generator=gen), out)


def _store(value: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    if out is None:
        return value
    return out.copy_(value)
