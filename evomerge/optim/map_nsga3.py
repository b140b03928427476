"""NSGA-III survival (Deb & Jain 2014): reference directions instead of crowding.

Crowding distance stops separating points once there are more than three objectives
(almost every point is non-dominated and "uncrowded" in some objective). NSGA-III keeps
a structured set of reference directions on the unit simplex (Das & Dennis 1998), and
fills the last admitted front by niching: the direction with the fewest members so far
gets the next point (the closest one when it has none yet). The MAP paper used NSGA-III
for its fronts; here it is picked automatically for four or more objectives.

>>> das_dennis(3, 2).tolist()  # doctest: +NORMALIZE_WHITESPACE
[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5],
 [0.0, 1.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import numpy as np

from evomerge.optim.map_nsga import Objective, evolve, fast_non_dominated_sort


def das_dennis(n_objectives: int, partitions: int) -> np.ndarray:
    """All points of the unit simplex whose coordinates are multiples of 1/partitions."""
    points: list[list[float]] = []

    def fill(prefix: list[int], left: int) -> None:
        if len(prefix) == n_objectives - 1:
            points.append([p / partitions for p in prefix + [left]])
            return
        for share in range(left, -1, -1):
            fill(prefix + [share], left - share)

    fill([], partitions)
    return np.asarray(points, dtype=float)


def reference_directions(n_objectives: int, about: int) -> np.ndarray:
    """Das-Dennis directions with the most partitions giving at most ``about`` points.

    >>> reference_directions(4, 100).shape  # 6 partitions: C(9, 3) = 84 directions
    (84, 4)
    """
    partitions = 1
    while comb(n_objectives + partitions, partitions + 1) <= about:
        partitions += 1
    return das_dennis(n_objectives, partitions)


def _normalize(losses: np.ndarray) -> np.ndarray:
    """Translate by the ideal point and divide by the hyperplane intercepts (§IV-C);
    fall back to the per-objective maximum when the extreme points are degenerate."""
    shifted = losses - losses.min(axis=0)
    m = losses.shape[1]
    weights = np.full((m, m), 1e-6) + np.eye(m) * (1 - 1e-6)
    asf = (shifted[None, :, :] / weights[:, None, :]).max(axis=2)  # (axis, point)
    extremes = shifted[asf.argmin(axis=1)]
    fallback = shifted.max(axis=0)
    try:
        plane = np.linalg.solve(extremes, np.ones(m))
        with np.errstate(divide="ignore"):
            intercepts = 1.0 / plane
        if not np.all(np.isfinite(intercepts)) or np.any(intercepts <= 1e-10):
            intercepts = fallback
    except np.linalg.LinAlgError:
        intercepts = fallback
    intercepts = np.where(intercepts > 1e-10, intercepts, 1.0)
    return shifted / intercepts


def _associate(normalized: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest reference line of each point and its perpendicular distance."""
    unit = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    along = normalized @ unit.T
    perpendicular = np.sqrt(
        np.maximum((normalized**2).sum(axis=1, keepdims=True) - along**2, 0.0)
    )
    nearest = perpendicular.argmin(axis=1)
    return nearest, perpendicular[np.arange(len(normalized)), nearest]


def make_nsga3_survival(directions: np.ndarray):
    """The NSGA-III survival rule for a fixed set of reference directions."""

    def survive(losses: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        chosen: list[int] = []
        fronts = fast_non_dominated_sort(losses)
        last = None
        for front in fronts:
            if len(chosen) + len(front) <= n:
                chosen.extend(front.tolist())
                if len(chosen) == n:
                    return np.asarray(chosen, dtype=int)
                continue
            last = front
            break
        if last is None:
            return np.asarray(chosen, dtype=int)
        pool = np.asarray(chosen + last.tolist(), dtype=int)
        niche, dist = _associate(_normalize(losses[pool]), directions)
        count = np.bincount(niche[: len(chosen)], minlength=len(directions))
        candidates = {j: [] for j in range(len(directions))}
        for pos in range(len(chosen), len(pool)):
            candidates[int(niche[pos])].append(pos)
        open_niches = np.array([bool(candidates[j]) for j in range(len(directions))])
        while len(chosen) < n:
            least = count[open_niches].min()
            options = np.flatnonzero(open_niches & (count == least))
            j = int(options[rng.integers(len(options))])
            members = candidates[j]
            if count[j] == 0:
                pick = min(members, key=lambda p: dist[p])
            else:
                pick = members[int(rng.integers(len(members)))]
            members.remove(pick)
            chosen.append(int(pool[pick]))
            count[j] += 1
            open_niches[j] = bool(members)
        return np.asarray(chosen, dtype=int)

    return survive


def nsga3(
    objective: Objective, lower: Sequence[float], upper: Sequence[float],
    pop_size: int = 100, generations: int = 100, seed: int = 0,
    initial: np.ndarray | None = None, n_objectives: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """NSGA-III: :func:`evolve` with reference-direction niching and random mating.

    ``n_objectives`` is read from one evaluation of the box centre when not given.

    >>> def sphere_parts(x):  # 4 objectives, a simplex-shaped front
    ...     return np.stack([(x[:, 0] - t) ** 2 for t in (0, 0.3, 0.6, 1.0)], axis=1)
    >>> x, f = nsga3(sphere_parts, [0.0], [1.0], pop_size=20, generations=10, seed=0)
    >>> bool(x.min() >= 0.0 and x.max() <= 1.0)
    True
    """
    if n_objectives is None:
        centre = (np.asarray(lower, dtype=float) + np.asarray(upper, dtype=float)) / 2
        n_objectives = objective(centre[None, :]).shape[1]
    survive = make_nsga3_survival(reference_directions(n_objectives, pop_size))
    return evolve(objective, lower, upper, survive, pop_size, generations, seed, initial,
                  tournament=False)
