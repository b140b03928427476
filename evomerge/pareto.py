"""Pareto dominance and the non-dominated front, the one implementation evomerge uses.

Points are an ``(n, m)`` array of objective values *as measured*, with a ``directions``
sequence (``"maximize"`` / ``"minimize"`` per objective; ``None`` means all minimised).
Values are turned into losses (maximised objectives negated), so everything below is
stated for losses: ``a`` dominates ``b`` when ``a <= b`` in every objective and
``a < b`` in at least one. Equal points do not dominate each other, so duplicates on the
front are all kept; a NaN never dominates and is never dominated.

A low layer: it imports nothing from evomerge.

>>> points = [[0.9, 0.2], [0.5, 0.5], [0.2, 0.9], [0.4, 0.4], [0.5, 0.5]]
>>> non_dominated_mask(points, ["maximize", "maximize"]).tolist()
[True, True, True, False, True]
>>> pareto_filter([[1, 2], [2, 1], [2, 2]]).tolist()
[[1.0, 2.0], [2.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Directions = Sequence[str] | None


def as_losses(points: object, directions: Directions = None) -> np.ndarray:
    """Points as a float ``(n, m)`` array of losses (maximised objectives negated).

    >>> as_losses([[1.0, 2.0]], ["maximize", "minimize"]).tolist()
    [[-1.0, 2.0]]
    """
    arr = np.asarray(points, dtype=float)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1) if arr.size else arr.reshape(0, 0)
    if arr.ndim != 2:
        raise ValueError(f"points must be an (n, m) array, got shape {arr.shape}")
    if directions is None:
        return arr.copy()
    if len(directions) != arr.shape[1] and arr.shape[0] > 0:
        raise ValueError(
            f"one direction per objective is needed: {arr.shape[1]} objectives, "
            f"{len(directions)} directions ({list(directions)})"
        )
    signs = []
    for d in directions:
        if d not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', got {d!r}")
        signs.append(-1.0 if d == "maximize" else 1.0)
    if arr.shape[0] == 0:
        return arr.reshape(0, len(signs))
    return arr * np.asarray(signs)


def dominance_matrix(losses: np.ndarray) -> np.ndarray:
    """``D[i, j]`` is True when loss vector ``i`` dominates ``j`` (<= everywhere, < once).

    >>> dominance_matrix(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])).astype(int).tolist()
    [[0, 1, 0], [0, 0, 0], [0, 1, 0]]
    """
    n = len(losses)
    weakly, strictly = np.ones((n, n), dtype=bool), np.zeros((n, n), dtype=bool)
    for column in np.asarray(losses, dtype=float).T:  # (n, n) planes, never (n, n, m)
        weakly &= column[:, None] <= column[None, :]
        strictly |= column[:, None] < column[None, :]
    return weakly & strictly


def non_dominated_mask(points: object, directions: Directions = None) -> np.ndarray:
    """Boolean mask of the points no other point dominates (duplicates are all kept).

    Repeatedly takes the lexicographically smallest remaining point (nothing can
    dominate it: a dominating point would come first in that order, exactly, with no
    rounding involved), marks it, and drops every remaining point it dominates; so the
    work is (front size) x n, vectorised, and a 40,000-point grid takes well under a
    second.

    >>> non_dominated_mask([[1, 2], [2, 1], [2, 2]]).tolist()
    [True, True, False]
    """
    losses = as_losses(points, directions)
    mask = np.zeros(len(losses), dtype=bool)
    if len(losses) == 0:
        return mask
    remaining = np.lexsort(losses.T[::-1])  # filtering below keeps this order
    while remaining.size:
        rest = losses[remaining]
        point = rest[0]
        survives = ~((point <= rest).all(axis=1) & (point < rest).any(axis=1))
        survives[0] = False
        mask[remaining[0]] = True
        remaining = remaining[survives]
    return mask


def pareto_filter(points: object, directions: Directions = None) -> np.ndarray:
    """The non-dominated rows of ``points``, in their original order and units.

    >>> pareto_filter([[1, 2], [2, 1], [2, 2]], ["maximize", "maximize"]).tolist()
    [[2.0, 2.0]]
    """
    arr = np.asarray(points, dtype=float)
    return arr[non_dominated_mask(arr, directions)]
