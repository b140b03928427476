"""Merging in a 16-bit dtype, as mergekit does when a config's ``dtype`` is float16 or
bfloat16 (or, without one, when the sources are stored in 16 bits).

mergekit casts every input to the config's ``dtype`` and computes in it. Its task-vector
family (task arithmetic, TIES, DARE, breadcrumbs, DELLA) then rounds after every step:
each task vector, each weighted task vector, the sign-election sum, the merged delta and
the final ``base + delta``. Rounding moves results by an ulp, and it also decides TIES
elections: two weighted deltas that differ by 4e-6 in float32 may be equal and opposite
in bfloat16, where their sum is exactly 0 and the ``>= 0`` rule elects the other sign.
So this family runs here as its formulas in :mod:`~evomerge.merge.operators.reference`,
op by op in the 16-bit dtype, which is mergekit's order of operations: the same
elections, the same tensors. Model stock too, whose ratio mergekit computes in 16 bits,
in mergekit's form of its formula; and every method written only as its formula
(``MergeOperator.formula``: NuSLERP, Multi-SLERP, Karcher, SCE, NearSwap, Arcee Fusion,
RAM), evaluated on the 16-bit tensors.
Every other method computes from the rounded inputs in float32 and rounds its result
once; mergekit's linear and SLERP upcast the same way internally.

``evomerge merge --compute float32`` skips all of this: inputs are read in float32,
merged in float32 and only the result is cast (more accurate, not mergekit's numbers).

>>> import torch
>>> is_16_bit(torch.bfloat16), is_16_bit(torch.float32)
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from evomerge.merge.apply import lines_factor, merged_tensor
from evomerge.merge.engine import MergeContext
from evomerge.merge.operators import OPERATORS, reference, tensor_generator
from evomerge.merge.operators.random_drop import drop_by_rank, drop_random
from evomerge.merge.plan import TensorTask
from evomerge.merge.recipe import Recipe

# (model, tensor name) -> tensor in the 16-bit compute dtype on the merge device
Fetch = Callable[[str, str], torch.Tensor]


def is_16_bit(dtype: torch.dtype) -> bool:
    return dtype in (torch.float16, torch.bfloat16)


def default_sort_order(magnitudes: torch.Tensor, descending: bool) -> torch.Tensor:
    """Flat indices by magnitude from torch's default (not stable) sort of the float32
    magnitudes, as mergekit ranks entries for its trims. 16-bit task vectors hold many
    equal magnitudes; which of them a trim keeps is where this sort puts them."""
    return torch.sort(magnitudes.reshape(-1).float(), descending=descending).indices


def keep_masks(method: str, taus: list[torch.Tensor], params: dict,
               generator: torch.Generator) -> list[torch.Tensor] | None:
    """The entries a random method keeps of each task vector, drawn as its operator
    draws them (model after model from ``generator``); None for other methods."""
    if not OPERATORS.get(method).random:
        return None
    masks = []
    for i, tau in enumerate(taus):
        tau = tau.float()
        if method.startswith("dare"):
            kept = drop_random(tau, params["density"][i], generator, "none")
        else:
            kept = drop_by_rank(tau, params["density"][i], params["epsilon"][i], generator,
                                "none")
        masks.append(kept.materialize() != 0)
    return masks


def merged_in_dtype(recipe: Recipe, task: TensorTask, fetch: Fetch, dtype: torch.dtype, *,
                    ctx: MergeContext) -> torch.Tensor:
    """The merged value of ``task.out_name`` in ``dtype``, computed as mergekit computes
    in that dtype; ``fetch`` returns the inputs already rounded to it."""
    method = recipe.merge_method
    if method == "model_stock" and task.inputs:
        # mergekit's form, t * mean(theta) + (1 - t) * base: the same formula, rounded
        # in its places
        base, thetas = fetch(*task.base), [fetch(m, n) for m, n in task.inputs]
        t = reference.model_stock_ratio([th - base for th in thetas],
                                        task.params["filter_wise"])
        merged = t * (sum(thetas) / len(thetas)) + (1 - t) * base
        scale = lines_factor(recipe, task)
        return merged if scale == 1 else base + (merged - base) * scale
    op = OPERATORS.get(method)
    if op.formula is not None and task.inputs:  # a formula on whole tensors, in 16 bits
        inputs = [fetch(m, n) for m, n in task.inputs]
        if op.kind == "weight" or task.base is None:
            return op.formula(inputs, task.params).to(dtype)
        base = fetch(*task.base)
        delta = op.formula([x - base for x in inputs], task.params)
        return (base + delta * lines_factor(recipe, task)).to(dtype)
    if method in reference.FAMILY and task.inputs:
        base = fetch(*task.base)
        taus = [fetch(m, n) - base for m, n in task.inputs]
        keep = None
        if OPERATORS.get(method).random:
            generator = tensor_generator(recipe.seed, task.out_name, device=ctx.device)
            keep = keep_masks(method, taus, task.params, generator)
        delta = reference.merge(method, taus, task.params, keep, default_sort_order)
        scale = lines_factor(recipe, task)
        return base + (delta if scale == 1 else delta * scale)
    return merged_tensor(recipe, task, lambda m, n: fetch(m, n).float(), ctx=ctx).to(dtype)
