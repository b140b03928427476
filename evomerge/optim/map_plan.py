"""Where MAP evaluates before it has a surrogate: the initial sampling plan.

The plan has ``(T+1)(T+2)`` points for ``T`` task vectors: twice the ``(T+1)(T+2)/2``
coefficients of a full quadratic, so every fit is overdetermined two to one. It always
holds

- the origin c = 0 (the base model alone): it pins the intercept, and together with the
  corners it makes the sampled bounding box the whole ``[0, 1]^T`` (for T = 1 the
  corner alone would leave a box of zero width);
- the ``T`` one-hot corners c = e_t (each fine-tuned model alone): the extremes of any
  trade-off, and the points a user compares merges against;

and the rest from a scrambled Sobol sequence (:func:`~evomerge.optim.sobol.sobol_points`,
seeded), which fills the box more evenly than independent uniform draws.

>>> plan = initial_plan(2, seed=0)
>>> plan.shape
(12, 2)
>>> plan[:3].tolist()
[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
"""

from __future__ import annotations

import numpy as np

from evomerge.optim.options import is_whole_number, option_error
from evomerge.optim.sobol import sobol_points


def default_plan_size(dim: int) -> int:
    """``2 · (T+1)(T+2)/2``: twice the number of terms of a quadratic in ``dim`` variables.

    >>> [default_plan_size(t) for t in (1, 2, 3, 8)]
    [6, 12, 20, 90]
    """
    return (dim + 1) * (dim + 2)


def initial_plan(dim: int, size: int | None = None, seed: int = 0) -> np.ndarray:
    """The first ``size`` points MAP evaluates: origin, one-hot corners, then Sobol.

    ``size`` defaults to :func:`default_plan_size`; it must leave room for the origin
    and the corners.

    >>> initial_plan(3, size=4).tolist()
    [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    size = default_plan_size(dim) if size is None else size
    if not is_whole_number(size) or size < dim + 1:
        raise option_error(
            "plan_size", size,
            f"must be an integer >= dim + 1 = {dim + 1} (the origin and the {dim} one-hot "
            f"corners are always evaluated)",
        )
    anchors = np.vstack([np.zeros((1, dim)), np.eye(dim)])
    return np.vstack([anchors, sobol_points(dim, size - len(anchors), seed)])
