"""Two-model merges that decide entry by entry: NearSwap and Arcee Fusion.

Both take the base and one other model, and move each entry of the base toward the
other model's by how much they differ there. As mergekit 0.1.5 defines them.

- NearSwap: ``w = clamp(t / max(|base - other|, 1e-6), 0, 1)``, result
  ``w * other + (1 - w) * base``: entries that differ by less than ``t`` are taken from
  the other model, the others move toward it in proportion ``t / |difference|``.
- Arcee Fusion: each entry's importance is ``|other - base|`` times the KL divergence
  ``KL(softmax(other) || softmax(base))`` of its row (last dim, softmaxes ``+1e-8``);
  entries at or above ``median + 1.5 * (q3 - q1)`` of the importances (quantiles taken
  as the sorted values at ``floor(q * (n - 1))``) come from the other model, the rest
  from the base.

>>> base, other = torch.tensor([0.0, 0.0]), torch.tensor([0.1, 4.0])
>>> NEARSWAP([base, other], NEARSWAP.resolve_params({"t": 0.2}, n_models=2)).tolist()
[0.10000000149011612, 0.20000000298023224]
"""

from __future__ import annotations

import torch

from evomerge.merge.operators.spec import (
    MergeOperator,
    ParamSpec,
    ParamValue,
    whole_tensor,
)

#: differences are at least this (NearSwap)
MIN_DIFFERENCE = 1e-6
#: added to each softmax before the KL divergence (Arcee Fusion)
SOFTMAX_EPS = 1e-8


def nearswap(base: torch.Tensor, other: torch.Tensor, t: float) -> torch.Tensor:
    weight = (t / (base - other).abs().clamp(min=MIN_DIFFERENCE)).clamp(0, 1)
    return weight * other + (1 - weight) * base


def _nearswap(tensors: list[torch.Tensor], params: dict[str, ParamValue]) -> torch.Tensor:
    return nearswap(*tensors, params["t"])


def fusion_importance(base: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(other, dim=-1) + SOFTMAX_EPS
    q = torch.softmax(base, dim=-1) + SOFTMAX_EPS
    kl = (p * torch.log(p / q)).sum(dim=-1, keepdim=True)
    return (other - base).abs() * kl


def outlier_threshold(scores: torch.Tensor) -> torch.Tensor:
    """``median + 1.5 * IQR`` with quantiles as sorted values at ``floor(q (n - 1))``."""
    ordered = torch.sort(scores.reshape(-1)).values
    q1, median, q3 = (ordered[int(q * (ordered.numel() - 1))] for q in (0.25, 0.5, 0.75))
    return median + 1.5 * (q3 - q1)


def arcee_fusion(base: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    importance = fusion_importance(base, other)
    keep = importance >= outlier_threshold(importance)
    return base + (other - base) * keep


def _arcee_fusion(tensors: list[torch.Tensor], params: dict[str, ParamValue]) -> torch.Tensor:
    return arcee_fusion(*tensors)


NEARSWAP = MergeOperator(
    name="nearswap", kind="weight", needs_base=True, random=False, min_models=2,
    max_models=2, fn=whole_tensor(_nearswap), formula=_nearswap,
    params=(ParamSpec("t", per_model=False, default=None, low=0.0,
                      doc="entries closer than this come from the other model"),),
    doc="take the other model's entries where they lie near the base's")
ARCEE_FUSION = MergeOperator(
    name="arcee_fusion", kind="weight", needs_base=True, random=False, min_models=2,
    max_models=2, fn=whole_tensor(_arcee_fusion), formula=_arcee_fusion, params=(),
    doc="take the other model's most important changes (difference times KL divergence)")
