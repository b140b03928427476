"""Merges on the hypersphere: NuSLERP, Multi-SLERP and the Karcher mean.

Each treats a tensor (flattened, or each row) as a direction and a length: it averages
the directions along the sphere, not through it, and gives the result a length averaged
from the inputs'. With a base model, NuSLERP and Multi-SLERP work on the task vectors and
add the base back; without one, on the tensors themselves (``kind="delta"`` with
``needs_base=False``: task vectors when there is a base). As mergekit 0.1.5 defines them.

- NuSLERP (mergekit): SLERP of two tensors at ``t = w_2 / (w_1 + w_2)`` (0.5 when the
  weights sum to ~0), on the whole flattened tensors (``nuslerp_flatten``, the default),
  else per row along the last dim, or along dim 0 (``nuslerp_row_wise``). Unit vectors
  divide by ``max(norm, 1e-7)``; where ``1 - cos^2 <= 1e-16`` it interpolates linearly.
- Multi-SLERP (Goddard 2024): the unit directions' weighted mean direction ``m``; the
  weighted tangent vectors at ``m`` mapped back by the exponential map; times the
  weighted mean norm. Weights are normalized to sum 1 by default; norms get ``+eps``.
- Karcher mean: the weighted Riemannian mean of the unit directions by fixed-point
  iteration (``max_iter``, stopping when the tangent step is under ``tol``), times the
  weighted mean norm; equal weights over every model, the base included.

>>> a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
>>> [round(v, 4) for v in nuslerp(0.5, a, b, row_wise=False, flatten=True).tolist()]
[0.7071, 0.7071]
>>> [round(v, 4) for v in karcher_mean([a, b], [0.5, 0.5]).tolist()]
[0.7071, 0.7071]
"""

from __future__ import annotations

import math

import torch

from evomerge.errors import ConfigError
from evomerge.merge.operators.spec import (
    MergeOperator,
    ParamSpec,
    ParamValue,
    whole_tensor,
)

#: unit vectors divide by at least this norm (NuSLERP)
NUSLERP_NORM_EPS = 1e-7
#: NuSLERP interpolates linearly where ``1 - cos^2`` is at most this
NUSLERP_COLINEAR = 1e-16
#: below this weight sum NuSLERP takes the midpoint
NUSLERP_WEIGHT_SUM_EPS = 1e-6
#: Multi-SLERP divides by the weight sum: it must be farther from zero than this
MIN_WEIGHT_SUM = 1e-8


def nuslerp(t: float, v0: torch.Tensor, v1: torch.Tensor, *, row_wise: bool,
            flatten: bool) -> torch.Tensor:
    """Spherical interpolation from ``v0`` (t = 0) to ``v1`` (t = 1), per row or whole."""
    shape = v0.shape
    if flatten:
        v0, v1 = v0.reshape(-1), v1.reshape(-1)
    elif row_wise:  # vectors along dim 0
        v0, v1 = v0.transpose(0, -1), v1.transpose(0, -1)
    u0 = v0 / v0.norm(dim=-1, keepdim=True).clamp(min=NUSLERP_NORM_EPS)
    u1 = v1 / v1.norm(dim=-1, keepdim=True).clamp(min=NUSLERP_NORM_EPS)
    cos = (u0 * u1).sum(-1, keepdim=True).clamp(-1, 1)
    colinear = (1 - cos.square()) <= NUSLERP_COLINEAR
    theta = torch.acos(torch.where(colinear, 0, cos))
    spherical = (torch.sin((1 - t) * theta) * v0 + torch.sin(t * theta) * v1) / torch.sin(theta)
    result = torch.where(colinear, (1 - t) * v0 + t * v1, spherical)
    if row_wise and not flatten:
        result = result.transpose(0, -1)
    return result.reshape(shape)


def _nuslerp(tensors: list[torch.Tensor], params: dict[str, ParamValue]) -> torch.Tensor:
    w0, w1 = params["weight"]
    t = 0.5 if abs(w0 + w1) < NUSLERP_WEIGHT_SUM_EPS else w1 / (w0 + w1)
    return nuslerp(t, *tensors, row_wise=params["nuslerp_row_wise"],
                   flatten=params["nuslerp_flatten"])


def multislerp(tensors: list[torch.Tensor], weights: list[float], normalize: bool,
               eps: float) -> torch.Tensor:
    """Barycentric interpolation of the tensors' directions on the unit sphere."""
    if len(tensors) == 1:
        return tensors[0]
    flat = torch.stack([t.reshape(-1) for t in tensors])
    w = torch.tensor(weights, dtype=flat.dtype)
    if normalize:
        w = w / w.sum()
    norms = flat.norm(dim=-1, keepdim=True)
    units = flat / (norms + eps)
    mean = (units * w.view(-1, 1)).sum(0)
    mean_norm = mean.norm()
    if mean_norm < eps:
        if len(tensors) == 2:  # opposite directions, balanced: interpolate linearly
            return (flat[0] * w[0] + flat[1] * w[1]).view(tensors[0].shape)
        raise ConfigError(None, "weight", weights,
                          "Multi-SLERP: the weighted mean of the directions is zero "
                          "(opposite tensors with balancing weights); change the weights")
    mean = mean / mean_norm
    tangents = units - (units * mean).sum(-1, keepdim=True) * mean
    step = (tangents * w.view(-1, 1)).sum(0)
    length = step.norm() + eps
    # sin(l) / l, with its limit 1 at l = 0 (all weight on one direction, eps = 0)
    result = mean * torch.cos(length) + step * torch.sinc(length / math.pi)
    return (result * (norms.squeeze(-1) * w).sum()).view(tensors[0].shape)


def _multislerp(tensors: list[torch.Tensor], params: dict[str, ParamValue]) -> torch.Tensor:
    return multislerp(tensors, params["weight"], params["normalize_weights"], params["eps"])


def karcher_mean(tensors: list[torch.Tensor], alphas: list[float], max_iter: int = 10,
                 tol: float = 1e-5) -> torch.Tensor:
    """Weighted Karcher (Riemannian) mean of the directions, times the weighted norm.

    Tensors whose norm is at most ``tol`` have no direction and are left out of the
    mean (their weight too); the length still counts every tensor. Norms are measured
    in float32 at least, the directions kept in the tensors' dtype (as mergekit does).
    """
    if len(tensors) == 1:
        return tensors[0]
    dtype = tensors[0].dtype
    wide = torch.float64 if dtype == torch.float64 else torch.float32

    def norm(x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(x.to(wide))

    norms = [norm(t) for t in tensors]
    valid = [i for i, n in enumerate(norms) if n.item() > tol]
    if not valid:
        return torch.zeros_like(tensors[0])
    total = sum(alphas[i] for i in valid)
    weights = [alphas[i] / total for i in valid]
    units = [(tensors[i] / norms[i]).to(dtype) for i in valid]
    mean = sum(w * u for w, u in zip(weights, units))
    mean_norm = norm(mean)
    mean = units[0].clone() if mean_norm.item() < tol else (mean / mean_norm).to(dtype)
    for _ in range(max_iter):
        tangent = torch.zeros_like(mean)
        for w, u in zip(weights, units):
            cos = torch.clamp(torch.dot(mean.reshape(-1), u.reshape(-1)), -1.0, 1.0)
            theta = torch.arccos(cos)
            if theta.item() < tol:  # this direction is the mean already
                continue
            tangent += w * (theta / torch.sin(theta)) * (u - cos * mean)
        step = norm(tangent)
        if step.item() < tol:
            break
        mean = (torch.cos(step) * mean + torch.sin(step) * (tangent / step)).to(dtype)
        length = norm(mean)
        if length.item() > tol:
            mean = (mean / length).to(dtype)
    return sum(a * n for a, n in zip(alphas, norms)) * mean


def _karcher(tensors: list[torch.Tensor], params: dict[str, ParamValue]) -> torch.Tensor:
    n = len(tensors)
    return karcher_mean(tensors, [1.0 / n] * n, max_iter=int(params["max_iter"]),
                        tol=params["tol"])


def _check_multislerp(params: dict[str, ParamValue]) -> None:
    weights = params["weight"]
    total = sum(weights)
    if not any(weights) or (params["normalize_weights"] and abs(total) < MIN_WEIGHT_SUM):
        raise ConfigError(None, "weight", weights,
                          "Multi-SLERP needs weights that are not all zero and, with "
                          f"normalize_weights, do not sum to zero (sum = {total})")


WEIGHT = ParamSpec("weight", per_model=True, default=None,
                   doc="this model's share of the interpolation")

NUSLERP = MergeOperator(
    name="nuslerp", kind="delta", needs_base=False, random=False, min_models=2,
    max_models=2, fn=whole_tensor(_nuslerp), formula=_nuslerp,
    params=(WEIGHT,
            ParamSpec("nuslerp_row_wise", per_model=False, default=False,
                      doc="interpolate the vectors along dim 0 instead of the last dim"),
            ParamSpec("nuslerp_flatten", per_model=False, default=True,
                      doc="interpolate the whole flattened tensors (overrides row-wise)")),
    doc="SLERP of two models (task vectors with a base) at t = w2 / (w1 + w2)")
MULTISLERP = MergeOperator(
    name="multislerp", kind="delta", needs_base=False, random=False, fn=whole_tensor(_multislerp),
    formula=_multislerp,
    check=_check_multislerp,
    params=(WEIGHT,
            ParamSpec("normalize_weights", per_model=False, default=True,
                      doc="divide the weights by their sum"),
            ParamSpec("eps", per_model=False, default=1e-8, low=0.0, high=1e-6,
                      doc="added to norms before dividing by them: a guard against "
                          "zero norms, small enough to leave the result alone")),
    doc="barycentric interpolation of any number of models on the hypersphere (Goddard "
        "2024)")
KARCHER = MergeOperator(
    name="karcher", kind="weight", needs_base=False, random=False, fn=whole_tensor(_karcher),
    formula=_karcher,
    params=(ParamSpec("max_iter", per_model=False, default=10, low=1, integer=True,
                      doc="fixed-point iterations at most"),
            ParamSpec("tol", per_model=False, default=1e-5, low=0.0,
                      doc="stop when the tangent step is shorter than this")),
    doc="Riemannian (Karcher) mean of the models' directions, times their mean norm")
