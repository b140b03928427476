"""SLERP between two tensors, flattened (Shoemake 1985), with mergekit's fallbacks.

``t = 0`` gives the first tensor (the base side), ``t = 1`` the second. The angle is
taken between the flattened tensors; when they are nearly parallel or antiparallel
(``|cos| > 0.9995``) the interpolation is linear instead. A norm at or below 1e-8 counts
as 1, so a zero tensor never divides by zero. The result is not renormalised.

>>> a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
>>> [round(v, 4) for v in slerp(0.5, a, b).tolist()]
[0.7071, 0.7071]
>>> slerp(0.25, a, 2 * a).tolist()
[1.25, 0.0]
"""

from __future__ import annotations

import math

import torch

from evomerge.merge.engine import MergeContext
from evomerge.merge.operators.combine import linear_combination
from evomerge.merge.operators.reductions import gram
from evomerge.merge.operators.spec import MergeOperator, ParamSpec, ParamValue, in_compute_dtype

#: above this |cos| the tensors count as parallel: interpolate linearly
DOT_THRESHOLD = 0.9995
#: norms at or below this count as 1
NORM_EPS = 1e-8


def slerp(t: float, v0: torch.Tensor, v1: torch.Tensor,
          out: torch.Tensor | None = None) -> torch.Tensor:
    """Spherical interpolation of two same-shaped tensors; written into ``out`` when
    given, else a new tensor."""
    a, b = in_compute_dtype(v0).reshape(-1), in_compute_dtype(v1).reshape(-1)
    coef_a, coef_b = slerp_coefficients(t, a, b)
    flat = torch.empty_like(a) if out is None else out.view(-1)
    return linear_combination([(a, coef_a), (b, coef_b)], flat).view(v0.shape)


def slerp_coefficients(t: float, v0: torch.Tensor, v1: torch.Tensor) -> tuple[float, float]:
    """(c0, c1) with ``slerp(t, v0, v1) == c0 * v0 + c1 * v1``: one read of both tensors."""
    a, b = in_compute_dtype(v0).reshape(-1), in_compute_dtype(v1).reshape(-1)
    (aa, ab), (_, bb) = gram([a, b]).tolist()
    norm_a, norm_b = math.sqrt(aa), math.sqrt(bb)
    norm_a = norm_a if norm_a > NORM_EPS else 1.0
    norm_b = norm_b if norm_b > NORM_EPS else 1.0
    cos = ab / norm_a / norm_b if a.numel() else 1.0
    cos = min(1.0, max(-1.0, cos))
    if abs(cos) > DOT_THRESHOLD:
        coef_a, coef_b = 1.0 - t, t
    else:
        theta = math.acos(cos)
        coef_a = math.sin((1 - t) * theta) / math.sin(theta)
        coef_b = math.sin(t * theta) / math.sin(theta)
    return coef_a, coef_b


def _slerp(tensors: list[torch.Tensor], params: dict[str, ParamValue], *,
           base: torch.Tensor | None, generator: torch.Generator | None,
           ctx: MergeContext, out: torch.Tensor | None) -> torch.Tensor:
    first, second = tensors
    return slerp(params["t"], first, second, out)


def _slerp_coefficients(tensors: list[torch.Tensor],
                        params: dict[str, ParamValue]) -> list[float]:
    return list(slerp_coefficients(params["t"], tensors[0], tensors[1]))


SLERP = MergeOperator(
    name="slerp", kind="weight", needs_base=True, random=False, min_models=2,
    max_models=2, fn=_slerp, coefficients=_slerp_coefficients,
    params=(ParamSpec("t", per_model=False, default=None, low=0.0, high=1.0,
                      doc="0 gives the base model's tensor, 1 the other model's"),),
    doc="spherical interpolation between the base and one other model")
