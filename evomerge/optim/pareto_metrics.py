"""Pareto-front quality: hypervolume, IGD and win rate.

Every function takes points as an ``(n, m)`` array of objective values *as measured*
and a ``directions`` sequence (``"maximize"`` / ``"minimize"`` per objective; ``None``
means all minimised). Internally values are turned into losses (maximised objectives
negated), so the definitions below are stated for losses. The front itself (dominance,
the non-dominated filter) is :mod:`evomerge.pareto`.

>>> front = [[0.9, 0.2], [0.5, 0.5], [0.2, 0.9], [0.4, 0.4]]
>>> round(hypervolume(front, [0.0, 0.0], ["maximize", "maximize"]), 4)
0.41
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evomerge.pareto import Directions, as_losses, non_dominated_mask


def _hypervolume_losses(losses: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume dominated by ``losses`` below ``ref`` (all points < ref).

    Two objectives: one sweep over the points sorted by the first loss. More: slice
    along the last objective (HSO); each slab's area is the (m-1)-D hypervolume of
    the points already below it, exact and fine for the small sets MAP produces.
    """
    n, m = losses.shape
    if n == 0:
        return 0.0
    if m == 1:
        return float(ref[0] - losses[:, 0].min())
    if m == 2:
        order = np.lexsort((losses[:, 1], losses[:, 0]))
        volume, best_y = 0.0, ref[1]
        for x, y in losses[order]:
            if y < best_y:
                volume += (ref[0] - x) * (best_y - y)
                best_y = y
        return float(volume)
    order = np.argsort(losses[:, -1], kind="stable")
    ordered = losses[order]
    volume = 0.0
    for k in range(n):
        top = ordered[k + 1, -1] if k + 1 < n else ref[-1]
        depth = top - ordered[k, -1]
        if depth > 0:
            volume += depth * _hypervolume_losses(ordered[: k + 1, :-1], ref[:-1])
    return float(volume)


def hypervolume(points: object, reference: Sequence[float], directions: Directions = None) -> float:
    """Volume of objective space dominated by ``points`` and bounded by ``reference``.

    ``reference`` is given in the objectives' own units and must be worse than the
    points of interest (lower for maximised objectives); points not strictly better than
    it in every objective add nothing. Exact for any number of objectives (sweep for 2,
    slicing for 3 or more; cost grows as n^(m-1), meant for fronts of up to a few
    hundred points).

    >>> hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4])
    6.0
    >>> hypervolume([[1, 1, 1]], [2, 3, 4])
    6.0
    """
    losses = as_losses(points, directions)
    ref = as_losses([list(reference)], directions)[0]
    if len(losses) == 0:
        return 0.0
    if ref.shape[0] != losses.shape[1]:
        raise ValueError(f"reference has {ref.shape[0]} values, points have {losses.shape[1]}")
    inside = losses[(losses < ref).all(axis=1)]
    if len(inside) == 0:
        return 0.0
    front = inside[non_dominated_mask(inside)]
    return _hypervolume_losses(np.unique(front, axis=0), ref)


def _against_reference(found: object, reference_front: object,
                       directions: Directions) -> tuple[np.ndarray, np.ndarray]:
    """(found, reference) as loss arrays; an empty reference front is an error."""
    r = as_losses(reference_front, directions)
    if len(r) == 0:
        raise ValueError("the reference front is empty")
    return as_losses(found, directions), r


def igd(
    found: object,
    reference_front: object,
    directions: Directions = None,
    normalize: bool = False,
) -> float:
    """Inverted generational distance: mean over reference points of the Euclidean
    distance to the nearest found point (0 when the found set covers the reference).

    With ``normalize`` each objective is divided by the reference front's range (a
    range of 0 counts as 1), so objectives in different units weigh the same.

    >>> round(igd([[0, 1], [1, 0]], [[0, 1], [0.5, 0.5], [1, 0]]), 6)  # (0 + sqrt(.5) + 0) / 3
    0.235702
    """
    f, r = _against_reference(found, reference_front, directions)
    if len(f) == 0:
        return float("inf")
    if normalize:
        span = r.max(axis=0) - r.min(axis=0)
        span[span == 0] = 1.0
        f, r = f / span, r / span
    dist = np.linalg.norm(r[:, None, :] - f[None, :, :], axis=2)
    return float(dist.min(axis=1).mean())


def win_rate(
    found: object,
    reference_front: object,
    directions: Directions = None,
    atol: float = 0.0,
) -> float:
    """Fraction of reference points that some found point dominates or matches.

    A found point ``f`` covers a reference point ``r`` when, in loss terms,
    ``f_k <= r_k + atol`` for every objective ``k`` (weak dominance with a tolerance:
    equal counts). The win rate is the number of covered reference points divided by
    the number of reference points, in [0, 1].

    >>> win_rate([[0.5, 0.5]], [[0.4, 0.6], [0.5, 0.5], [0.6, 0.4]], ["maximize"] * 2)
    0.3333333333333333
    >>> win_rate([[0.5, 0.5]], [[0.4, 0.6], [0.6, 0.4]], ["maximize"] * 2, atol=0.1)
    1.0
    """
    f, r = _against_reference(found, reference_front, directions)
    if len(f) == 0:
        return 0.0
    covered = (f[None, :, :] <= r[:, None, :] + atol).all(axis=2).any(axis=1)
    return float(covered.mean())
