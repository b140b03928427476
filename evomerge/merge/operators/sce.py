"""SCE (Wan et al. 2024, FuseChat): Select, Calculate, Erase over task vectors.

1. Select: with ``select_topk < 1``, keep the ``int(select_topk * nnz)`` entries whose
   variance across the models is largest (``nnz`` the entries of nonzero variance); the
   same entries in every task vector.
2. Calculate: each model's weight is the mean square of its (selected) task vector,
   over the sum of those (equal weights when that sum is below 1e-6).
3. Erase: elect each entry's sign by the sum of the task vectors (``>= 0`` is +, as TIES)
   and drop the entries of the other sign; the merged task vector is the weighted mean
   of what is left (divided by the agreeing weights, at least 1e-6).

As mergekit 0.1.5 defines it; ``int8_mask`` only changes mergekit's memory use.

>>> params = SCE.resolve_params({}, n_models=2)
>>> merged = SCE([torch.tensor([1.0, -2.0]), torch.tensor([3.0, 2.0])], params)
>>> [round(v, 4) for v in merged.tolist()]  # (2.5 * 1 + 6.5 * 3) / 9; -2 is erased
[2.4444, 2.0]
"""

from __future__ import annotations

import torch

from evomerge.merge.operators.spec import (
    MergeOperator,
    ParamSpec,
    ParamValue,
    whole_tensor,
)
from evomerge.merge.operators.task_arithmetic import INT8_MASK

#: below this sum of mean squares, every model weighs the same
WEIGHT_SUM_EPS = 1e-6
#: the agreeing weights are divided by at least this
DIVISOR_EPS = 1e-6


def variance_mask(taus: torch.Tensor, share: float) -> torch.Tensor:
    """Entries (of one task vector's shape) among the ``int(share * nnz)`` of largest
    variance across the models; ``taus`` stacked along dim 0."""
    if share <= 0:
        return torch.zeros(taus.shape[1:], dtype=torch.bool)
    if share >= 1:
        return torch.ones(taus.shape[1:], dtype=torch.bool)
    var = taus.var(dim=0, unbiased=False)
    k = int(torch.count_nonzero(var).item() * share)
    mask = torch.zeros(var.numel(), dtype=torch.bool)
    if k:
        mask[torch.topk(var.reshape(-1), k).indices] = True
    return mask.view(var.shape)


def mean_square_weights(taus: torch.Tensor) -> torch.Tensor:
    """Each task vector's mean square, normalized to sum 1 (equal when ~all zero)."""
    weights = taus.square().reshape(len(taus), -1).mean(dim=1)
    total = weights.sum().item()
    if abs(total) < WEIGHT_SUM_EPS:
        return torch.full_like(weights, 1.0 / len(weights))
    return weights / total


def sce(tensors: list[torch.Tensor], params: dict[str, ParamValue]) -> torch.Tensor:
    taus = torch.stack(tensors)
    taus = taus * variance_mask(taus, params["select_topk"])
    elected = torch.where(taus.sum(0) >= 0, 1.0, -1.0)
    agree = torch.sign(taus) == elected
    weights = mean_square_weights(taus).view(-1, *[1] * (taus.dim() - 1)) * agree
    return (taus * weights).sum(0) / weights.sum(0).clamp(min=DIVISOR_EPS)


SCE = MergeOperator(
    name="sce", kind="delta", needs_base=True, random=False, fn=whole_tensor(sce), formula=sce,
    params=(ParamSpec("select_topk", per_model=False, default=1.0, low=0.0, high=1.0,
                      doc="share of entries kept, by their variance across the models"),
            INT8_MASK),
    doc="select by variance, weight by mean square, erase minority signs (Wan et al. 2024)")
