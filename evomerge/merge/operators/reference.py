"""Every merge method as its paper writes it: a few lines of plain torch on whole tensors.

The registered operators compute the same tensors faster (a chunk at a time, in place,
with selections instead of sorts, on a thread pool, with values remembered across
candidates). These are the formulas they are held to (tests/merge/test_reference.py):
equal where the order of operations is the same, within float rounding where it is
not. Nothing here is tuned for speed. Results have the inputs' dtype: the tests pass
float64 tensors for a result with little rounding of its own. Random methods take the keep
decision as an argument (a boolean mask per task vector): given the same mask, the fast
operator and the formula agree; how masks are drawn is
:mod:`~evomerge.merge.operators.random_drop`'s (whose DARE keep probability is the
density rounded to a multiple of 2**-16).

``merge(method, taus, params, keep)`` is any method of :data:`METHODS`, with ``params``
resolved as the operator receives them. The methods registered without a fast path
(NuSLERP, Multi-SLERP, Karcher, SCE, NearSwap, Arcee Fusion, RAM) are written as their
formulas in their own modules; there is nothing faster to hold to them here.

>>> taus = [torch.tensor([3.0, -1.0]), torch.tensor([1.0, 2.0])]
>>> ties(taus, weights=[1.0, 1.0], densities=[0.5, 0.5]).tolist()
[3.0, 2.0]
>>> slerp(0.5, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])).tolist()  # doctest: +ELLIPSIS
[0.7071..., 0.7071...]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

Tensors = Sequence[torch.Tensor]


# --- sparsifiers: which entries of a task vector are kept ----------------------------

def stable_order(magnitudes: torch.Tensor, descending: bool) -> torch.Tensor:
    """Flat indices of ``magnitudes`` sorted; of equal magnitudes, the lower index counts
    as the larger (first when descending, last when ascending)."""
    order = torch.sort(magnitudes.reshape(-1), descending=True, stable=True).indices
    return order if descending else order.flip(0)


#: ``order(magnitudes, descending) -> flat indices``: how the trims rank entries
Order = Callable[[torch.Tensor, bool], torch.Tensor]


def _mask_of(tau: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    mask = torch.zeros(tau.numel(), dtype=torch.bool)
    mask[indices] = True
    return mask.view(tau.shape)


def top_k_mask(tau: torch.Tensor, density: float, order: Order = stable_order) -> torch.Tensor:
    """TIES trim: the ``max(1, int(density * n))`` entries of largest magnitude."""
    n = tau.numel()
    if density >= 1:
        return torch.ones(tau.shape, dtype=torch.bool)
    k = 0 if density <= 0 else max(1, int(density * n))
    return _mask_of(tau, order(tau.abs(), True)[:k])


def outlier_mask(tau: torch.Tensor, density: float, gamma: float,
                 order: Order = stable_order) -> torch.Tensor:
    """Breadcrumbs: skip the ``int(gamma * n)`` largest magnitudes (fewer when that
    leaves under ``int(density * n)``), keep the next ``int(density * n)``."""
    n = tau.numel()
    if density >= 1:
        return torch.ones(tau.shape, dtype=torch.bool)
    keep = int(density * n) if density > 0 else 0
    below = max(0, n - keep - int(gamma * n))  # the smallest entries, dropped
    return _mask_of(tau, order(tau.abs(), False)[below:below + keep])


def magprune_probabilities(tau: torch.Tensor, density: float,
                           epsilon: float) -> torch.Tensor:
    """DELLA's keep probabilities: ``density - epsilon + 2 epsilon rank / (cols - 1)``,
    ranked by magnitude within each row along dim 1 (smallest first, ties by index);
    ``density`` for rows of one entry."""
    rows = tau.reshape(1, -1) if tau.dim() < 2 else tau.movedim(1, -1)
    cols = rows.shape[-1]
    if cols == 1:
        return torch.full(tau.shape, density, dtype=tau.dtype)
    rank = torch.argsort(torch.argsort(rows.abs(), dim=-1, stable=True), dim=-1, stable=True)
    p = density - epsilon + 2 * epsilon * rank.to(tau.dtype) / (cols - 1)
    return p.view(tau.shape) if tau.dim() < 2 else p.movedim(-1, 1)


# --- rescaling the kept entries -------------------------------------------------------

def l1_rescaled(tau: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """mergekit's rescale: ``kept * |tau|_1 / |kept|_1`` (unchanged when either norm is
    below 1e-7)."""
    before, after = tau.abs().sum(), kept.abs().sum()
    return kept if before < 1e-7 or after < 1e-7 else kept * (before / after)


def sparsified(tau: torch.Tensor, keep: torch.Tensor, rescale: str,
               probability: torch.Tensor | float = 1.0) -> torch.Tensor:
    """``tau`` on the kept entries, rescaled: ``"l1"`` (:func:`l1_rescaled`),
    ``"probability"`` (divided by each entry's keep probability: DARE and DELLA as
    published) or ``"none"``."""
    kept = tau * keep
    if rescale == "l1":
        return l1_rescaled(tau, kept)
    if rescale == "probability":
        return kept / probability
    return kept


# --- combining task vectors -------------------------------------------------------------

def _weights_like(weights: Sequence[float], deltas: Tensors) -> torch.Tensor:
    """The weights as a column in the deltas' dtype (rounded to it, as mergekit holds
    them), shaped to broadcast over the stacked deltas."""
    return torch.tensor(list(weights), dtype=deltas[0].dtype).view(-1, *[1] * deltas[0].dim())


def weighted_sum(deltas: Tensors, weights: Sequence[float], normalize: bool = False,
                 lam: float = 1.0) -> torch.Tensor:
    """``lam * sum_m w_m delta_m``, over ``sum_m w_m`` with ``normalize`` (unless that
    sum is within 1e-8 of zero). Evaluated op by op in the deltas' dtype, in mergekit's
    order, so that in a 16-bit dtype every step rounds where mergekit's does."""
    w = _weights_like(weights, deltas)
    merged = (torch.stack(list(deltas)) * w).sum(0)
    if normalize:
        total = w.sum(0)
        merged = merged / torch.where(total.abs() < 1e-8, 1.0, total)
    return merged * lam if lam != 1 else merged


def elect_and_merge(deltas: Tensors, weights: Sequence[float], normalize: bool,
                    lam: float = 1.0) -> torch.Tensor:
    """TIES: with ``d_m = w_m delta_m``, elect the sign of ``sum_m d_m`` per entry (+ at
    0), add the ``d_m`` of that sign (a zero agrees with nothing) and, with
    ``normalize``, divide by the agreeing models' weights (by 1 where none agree).
    Evaluated op by op in the deltas' dtype, in mergekit's order."""
    w = _weights_like(weights, deltas)
    d = torch.stack(list(deltas)) * w
    elected = torch.where(d.sum(0) >= 0, 1.0, -1.0)
    agree = torch.sign(d) == elected
    merged = (d * agree).sum(0)
    if normalize:
        divisor = (w * agree).sum(0)
        merged = merged / torch.where(divisor == 0, 1.0, divisor)
    return merged * lam if lam != 1 else merged


# --- the methods ------------------------------------------------------------------------

def task_arithmetic(taus: Tensors, weights: Sequence[float], lam: float = 1.0) -> torch.Tensor:
    """Ilharco et al. 2023: ``lam * sum_m w_m tau_m``."""
    return weighted_sum(taus, weights, lam=lam)


def ties(taus: Tensors, weights: Sequence[float], densities: Sequence[float],
         normalize: bool = True, lam: float = 1.0, rescale: str = "none") -> torch.Tensor:
    """Yadav et al. 2023: trim each task vector to its top ``density``, elect, merge."""
    kept = [sparsified(t, top_k_mask(t, d), rescale) for t, d in zip(taus, densities)]
    return elect_and_merge(kept, weights, normalize, lam)


def dare(tau: torch.Tensor, keep: torch.Tensor, density: float,
         rescale: str = "probability") -> torch.Tensor:
    """Yu et al. 2023 given the drop decision ``keep``: survivors over ``density`` (the
    keep probability), or L1-matched as mergekit. Densities of 0 and 1 keep nothing and
    everything, unscaled."""
    if density >= 1:
        return tau
    if density <= 0:
        return torch.zeros_like(tau)
    return sparsified(tau, keep, rescale, density)


def della(tau: torch.Tensor, keep: torch.Tensor, density: float, epsilon: float,
          rescale: str = "probability") -> torch.Tensor:
    """Deep et al. 2024 (MagPrune) given the drop decision ``keep``: survivors over their
    rank-based keep probability (:func:`magprune_probabilities`), or L1-matched."""
    if density >= 1:
        return tau
    if density <= 0:
        return torch.zeros_like(tau)
    return sparsified(tau, keep, rescale, magprune_probabilities(tau, density, epsilon))


def linear(thetas: Tensors, weights: Sequence[float], normalize: bool = True) -> torch.Tensor:
    """Model soups (Wortsman et al. 2022): ``sum_m w_m theta_m``, over ``sum_m w_m``."""
    merged = sum(w * t for w, t in zip(weights, thetas))
    return merged / sum(weights) if normalize else merged


def slerp(t: float, v0: torch.Tensor, v1: torch.Tensor) -> torch.Tensor:
    """Shoemake 1985 on the flattened tensors; linear when ``|cos| > 0.9995``; norms at or
    below 1e-8 count as 1."""
    a, b = v0.reshape(-1), v1.reshape(-1)
    norm_a, norm_b = float(a.norm()), float(b.norm())
    norm_a, norm_b = (norm_a if norm_a > 1e-8 else 1.0), (norm_b if norm_b > 1e-8 else 1.0)
    cos = min(1.0, max(-1.0, float(a @ b) / norm_a / norm_b)) if a.numel() else 1.0
    if abs(cos) > 0.9995:
        return ((1 - t) * a + t * b).view(v0.shape)
    theta = math.acos(cos)
    return ((math.sin((1 - t) * theta) * a + math.sin(t * theta) * b)
            / math.sin(theta)).view(v0.shape)


def model_stock_ratio(taus: Tensors, filter_wise: bool = False) -> torch.Tensor:
    """Model stock's ``t = k cos / (1 + (k - 1) cos)``, ``cos`` the mean pairwise cosine
    of the task vectors (per row with ``filter_wise``, shaped to broadcast over the
    rows); norm products clamped at 1e-6, cosines to [-1, 1], and ``t = 0`` where
    ``|1 + (k - 1) cos| < 1e-6``."""
    k = len(taus)
    rows = filter_wise and taus[0].dim() >= 2
    flat = [t if rows else t.reshape(-1) for t in taus]
    cosines = [((a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp(min=1e-6)
                ).clamp(-1, 1) for i, a in enumerate(flat) for b in flat[i + 1:]]
    cos = torch.stack(cosines).mean(0)
    denominator = 1 + (k - 1) * cos
    t = torch.where(denominator.abs() < 1e-6, 0.0, k * cos / denominator)
    return t.unsqueeze(-1) if rows else t


def model_stock(taus: Tensors, filter_wise: bool = False) -> torch.Tensor:
    """Jang et al. 2024: ``t * mean(tau)`` with ``t`` :func:`model_stock_ratio`."""
    return model_stock_ratio(taus, filter_wise) * (sum(taus) / len(taus))


def passthrough(theta: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """One model's tensor, times ``scale``."""
    return scale * theta


#: how each task-vector method sparsifies, and whether it elects signs (TIES consensus)
FAMILY = {
    "task_arithmetic": ("none", False), "ties": ("magnitude", True),
    "dare_linear": ("random", False), "dare_ties": ("random", True),
    "breadcrumbs": ("outliers", False), "breadcrumbs_ties": ("outliers", True),
    "della_linear": ("rank", False), "della": ("rank", True),
}


def family_sparsified(method: str, taus: Tensors, params: dict,
                      keep: Sequence[torch.Tensor] | None = None,
                      order: Order = stable_order) -> list[torch.Tensor]:
    """Each task vector as ``method`` sparsifies and rescales it before combining."""
    how, _ = FAMILY[method]
    rescale = "none"
    if params.get("rescale", False):
        rescale = "probability" if params.get("rescale_by_probability", False) else "l1"
    out = []
    for i, tau in enumerate(taus):
        if how == "none":
            out.append(tau)
        elif how == "magnitude":
            out.append(sparsified(tau, top_k_mask(tau, params["density"][i], order), rescale))
        elif how == "outliers":
            mask = outlier_mask(tau, params["density"][i], params["gamma"][i], order)
            out.append(sparsified(tau, mask, rescale))
        elif how == "random":
            out.append(dare(tau, keep[i], params["density"][i], rescale))
        else:
            out.append(della(tau, keep[i], params["density"][i], params["epsilon"][i],
                             rescale))
    return out


#: the registered methods written here
METHODS = (*FAMILY, "linear", "slerp", "model_stock", "passthrough")


def merge(method: str, tensors: Tensors, params: dict,
          keep: Sequence[torch.Tensor] | None = None,
          order: Order = stable_order) -> torch.Tensor:
    """Registered method ``method`` on ``tensors`` (task vectors for delta methods) with
    resolved ``params``; ``keep`` is each task vector's keep mask for random methods,
    ``order`` how the trims rank magnitudes (which of equal ones they keep)."""
    if method in FAMILY:
        deltas = family_sparsified(method, tensors, params, keep, order)
        combine = elect_and_merge if FAMILY[method][1] else weighted_sum
        return combine(deltas, params["weight"], params["normalize"], params["lambda"])
    if method == "linear":
        return linear(tensors, params["weight"], params["normalize"])
    if method == "slerp":
        return slerp(params["t"], *tensors)
    if method == "model_stock":
        return model_stock(tensors, params["filter_wise"])
    if method == "passthrough":
        return passthrough(tensors[0], params["scale"][0])
    raise ValueError(f"no reference for {method!r}")
