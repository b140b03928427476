"""Run one tensor task: gather inputs, call the operator, add the base, scale, cast.

Shared by the disk-to-disk merge and the in-memory build, so both give the same tensors.
Each builder owns one :class:`~evomerge.merge.engine.MergeContext` and passes it here for
every tensor.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from evomerge.merge.engine import MergeContext
from evomerge.merge.operators import OPERATORS, lines_scale, tensor_generator
from evomerge.merge.operators.combine import linear_combination
from evomerge.merge.operators.spec import MergeOperator, compute_dtype
from evomerge.merge.plan import TensorTask
from evomerge.merge.recipe import Recipe

# (model, tensor name) -> tensor in compute precision on the merge device
Fetch = Callable[[str, str], torch.Tensor]


def merged_tensor(recipe: Recipe, task: TensorTask, fetch: Fetch,
                  fetch_delta: Fetch | None = None, out: torch.Tensor | None = None, *,
                  ctx: MergeContext) -> torch.Tensor:
    """The merged value of ``task.out_name``, written into ``out`` when given.

    Without ``out`` the result is a new float32 tensor (float64 stays float64).
    ``fetch_delta`` returns precomputed task vectors (the in-memory path), which stay
    resident: values the operator computes from them are remembered in ``ctx`` under the
    inputs' names. Without it the deltas are computed here from the fetched tensors.
    ``ctx`` is the builder's context, on the merge device.
    """
    op = OPERATORS.get(recipe.merge_method)
    if op.coefficients is not None and task.inputs:
        return _combined(op, recipe, task, fetch, fetch_delta, out)
    gen = tensor_generator(recipe.seed, task.out_name, device=ctx.device) \
        if op.random else None
    base = fetch(*task.base) if task.base is not None else None
    if op.kind == "delta" and base is None:
        # a method whose base is optional (NuSLERP, Multi-SLERP) merges the tensors
        # themselves when the recipe has none
        return _store(op([fetch(m, n) for m, n in task.inputs], task.params, base=None,
                         generator=gen, ctx=ctx), out)
    if op.kind == "delta":
        if fetch_delta is not None:
            inputs = [fetch_delta(m, n) for m, n in task.inputs]
            call_ctx = ctx.for_inputs(task.inputs)
        else:
            inputs = [_task_vector(fetch(m, n), base, i, ctx)
                      for i, (m, n) in enumerate(task.inputs)]
            call_ctx = ctx
        if not inputs:  # only the base contributes
            return _store(base, out)
        # the merged delta goes to a reused buffer: no fresh pages per tensor
        merged = ctx.buffers.get("merged delta", inputs[0].shape, compute_dtype(inputs[0]))
        delta = op(inputs, task.params, base=base, generator=gen, ctx=call_ctx, out=merged)
        scale = lines_factor(recipe, task)
        if out is not None and out.dtype == base.dtype and out.device == base.device:
            # one fused pass into the live parameter
            return torch.add(base, delta, alpha=scale, out=out)
        return _store(torch.add(base, delta, alpha=scale), out)
    inputs = [fetch(m, n) for m, n in task.inputs]
    return _store(op(inputs, task.params, base=base, generator=gen, ctx=ctx), out)


def _combined(op: MergeOperator, recipe: Recipe, task: TensorTask, fetch: Fetch,
              fetch_delta: Fetch | None, out: torch.Tensor | None) -> torch.Tensor:
    """A method whose result is a linear combination of its inputs, in one sweep.

    Delta methods use the cached task vectors when there are any (``base + sum c tau``);
    otherwise they fold the base into the coefficients of the raw tensors,
    ``(1 - sum c) base + sum c theta``, so no task vector is ever materialized.
    """
    inputs = [(fetch_delta if op.kind == "delta" and fetch_delta else fetch)(m, n)
              for m, n in task.inputs]
    coefficients = op.coefficients(inputs, task.params)
    terms = list(zip(inputs, coefficients))
    if op.kind == "delta":
        scale = lines_factor(recipe, task)
        terms = [(t, scale * c) for t, c in terms]
        # with raw tensors, base + sum c (theta - base) = (1 - sum c) base + sum c theta
        base_factor = 1.0 if fetch_delta else 1.0 - sum(c for _, c in terms)
        terms.insert(0, (fetch(*task.base), base_factor))
    first = terms[0][0]
    dtype = compute_dtype(first)
    if any(t.dtype != dtype for t, _ in terms):
        terms = [(t.to(dtype), c) for t, c in terms]
    if out is not None and out.dtype == dtype and out.device == first.device:
        return linear_combination(terms, out)
    merged = linear_combination(terms, torch.empty(first.shape, dtype=dtype,
                                                   device=first.device))
    return _store(merged, out)


def _task_vector(theta: torch.Tensor, base: torch.Tensor, i: int,
                 ctx: MergeContext) -> torch.Tensor:
    """``theta - base``, written into a reused buffer."""
    if theta.dtype != base.dtype:
        return theta - base
    return torch.sub(theta, base, out=ctx.buffers.get(("task vector", i), theta.shape,
                                                     theta.dtype))


def lines_factor(recipe: Recipe, task: TensorTask) -> float:
    """LiNeS's factor for this tensor's merged task vector (1 without LiNeS)."""
    if recipe.lines is None:
        return 1.0
    return lines_scale(task.layer, task.num_layers, recipe.lines.alpha, recipe.lines.beta)


def _store(value: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    if out is None:
        return value
    return out.copy_(value)
