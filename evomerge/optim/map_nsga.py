"""NSGA-II (Deb, Pratap, Agarwal, Meyarivan 2002) on cheap vectorised objectives.

MAP runs it on its quadratic surrogates, so an evaluation costs microseconds and the
whole search is a few thousand of them. Pieces, each usable alone:

- :func:`fast_non_dominated_sort` and :func:`crowding_distance` (Deb et al. 2002, §III);
- :func:`sbx_crossover` (simulated binary crossover, bounded form of Deb's reference
  code) and :func:`polynomial_mutation` (bounded polynomial mutation, same source);
- :func:`evolve`, the generational loop: parents + offspring, keep the best ``pop_size``
  by a survival rule (NSGA-II's rank + crowding here; NSGA-III's reference-direction
  niching in :mod:`evomerge.optim.map_nsga3`);
- :func:`select_spread`, which thins a front to ``k`` well-spread points.

All randomness comes from one seeded ``numpy`` generator, so runs repeat exactly.

>>> def two_parabolas(x):  # front: x in [0, 1], f = (x², (x-1)²)
...     return np.stack([x[:, 0] ** 2, (x[:, 0] - 1) ** 2], axis=1)
>>> x, f = nsga2(two_parabolas, [0.0], [1.0], pop_size=20, generations=30, seed=0)
>>> bool(np.all(np.abs(np.sqrt(f[:, 0]) + np.sqrt(f[:, 1]) - 1) < 1e-6))
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from evomerge.pareto import dominance_matrix, non_dominated_mask

Objective = Callable[[np.ndarray], np.ndarray]
"""Maps an ``(n, d)`` array of points to an ``(n, m)`` array of losses (minimised)."""

Survival = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
"""Given ``(n, m)`` losses, a count and a generator, the indices of the survivors."""


def fast_non_dominated_sort(losses: np.ndarray) -> list[np.ndarray]:
    """Indices of each non-domination front, best first.

    >>> [f.tolist() for f in fast_non_dominated_sort(np.array([[1, 1], [0, 2], [2, 2], [3, 3]]))]
    [[0, 1], [2], [3]]
    """
    dom = dominance_matrix(np.asarray(losses, dtype=float))
    dominated_by = dom.sum(axis=0)
    fronts, current = [], np.flatnonzero(dominated_by == 0)
    while current.size:
        fronts.append(current)
        dominated_by = dominated_by - dom[current].sum(axis=0)
        dominated_by[current] = -1  # placed; never counted again
        current = np.flatnonzero(dominated_by == 0)
    return fronts


def crowding_distance(losses: np.ndarray) -> np.ndarray:
    """Crowding distance of each point within one front (boundary points: inf).

    Per objective, the gap between a point's two neighbours divided by the front's range;
    summed over objectives.

    >>> crowding_distance(np.array([[0.0, 2.0], [1.0, 1.0], [2.0, 0.0]])).tolist()
    [inf, 2.0, inf]
    """
    losses = np.asarray(losses, dtype=float)
    n, m = losses.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(losses[:, k], kind="stable")
        values = losses[order, k]
        span = values[-1] - values[0]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (values[2:] - values[:-2]) / span
    return distance


def sbx_crossover(
    a: np.ndarray, b: np.ndarray, lower: np.ndarray, upper: np.ndarray,
    rng: np.random.Generator, eta: float = 15.0, prob: float = 0.9,
) -> tuple[np.ndarray, np.ndarray]:
    """Bounded simulated binary crossover of parent rows ``a`` and ``b``.

    A pair crosses with probability ``prob``; each variable of a crossing pair with
    probability 1/2; children are swapped at random and kept inside the bounds.

    >>> rng = np.random.default_rng(0)
    >>> c1, c2 = sbx_crossover(np.zeros((4, 3)), np.ones((4, 3)), np.zeros(3), np.ones(3), rng)
    >>> bool(np.all((c1 >= 0) & (c1 <= 1))), np.allclose(c1 + c2, 1.0)
    (True, True)
    """
    c1, c2 = a.astype(float).copy(), b.astype(float).copy()
    low, high = np.minimum(a, b), np.maximum(a, b)
    gap = high - low
    cross = (rng.random(a.shape[0]) < prob)[:, None] & (rng.random(a.shape) < 0.5) & (gap > 1e-14)
    u = rng.random(a.shape)
    safe_gap = np.where(gap > 1e-14, gap, 1.0)

    def spread(room: np.ndarray) -> np.ndarray:
        beta = 1.0 + 2.0 * np.maximum(room, 0.0) / safe_gap
        alpha = 2.0 - beta ** (-(eta + 1.0))
        return np.where(
            u <= 1.0 / alpha,
            (u * alpha) ** (1.0 / (eta + 1.0)),
            (1.0 / np.maximum(2.0 - u * alpha, 1e-300)) ** (1.0 / (eta + 1.0)),
        )

    mid = 0.5 * (low + high)
    child_low = np.clip(mid - 0.5 * spread(low - lower) * gap, lower, upper)
    child_high = np.clip(mid + 0.5 * spread(upper - high) * gap, lower, upper)
    swap = rng.random(a.shape) < 0.5
    first = np.where(swap, child_high, child_low)
    second = np.where(swap, child_low, child_high)
    c1[cross], c2[cross] = first[cross], second[cross]
    return c1, c2


def polynomial_mutation(
    x: np.ndarray, lower: np.ndarray, upper: np.ndarray, rng: np.random.Generator,
    eta: float = 20.0, prob: float | None = None,
) -> np.ndarray:
    """Bounded polynomial mutation; each variable mutates with ``prob`` (default 1/d).

    >>> rng = np.random.default_rng(0)
    >>> y = polynomial_mutation(np.full((5, 2), 0.5), np.zeros(2), np.ones(2), rng, prob=1.0)
    >>> bool(np.all((y >= 0) & (y <= 1))), bool(np.any(y != 0.5))
    (True, True)
    """
    x = x.astype(float).copy()
    prob = 1.0 / x.shape[1] if prob is None else prob
    span = upper - lower
    mutate = (rng.random(x.shape) < prob) & (span > 0)
    u = rng.random(x.shape)
    safe_span = np.where(span > 0, span, 1.0)
    d1, d2 = (x - lower) / safe_span, (upper - x) / safe_span
    power = 1.0 / (eta + 1.0)
    down = (2 * u + (1 - 2 * u) * (1 - d1) ** (eta + 1)) ** power - 1.0
    up = 1.0 - (2 * (1 - u) + 2 * (u - 0.5) * (1 - d2) ** (eta + 1)) ** power
    delta = np.where(u < 0.5, down, up)
    x[mutate] = np.clip(x + delta * span, lower, upper)[mutate]
    return x


def rank_and_crowding(losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each point's front index (0 = best) and its crowding distance within that front."""
    rank, crowd = np.zeros(len(losses), dtype=int), np.zeros(len(losses))
    for r, front in enumerate(fast_non_dominated_sort(losses)):
        rank[front] = r
        crowd[front] = crowding_distance(losses[front])
    return rank, crowd


def nsga2_survival(losses: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """NSGA-II survival: whole fronts while they fit, then the least crowded of the next."""
    keep: list[int] = []
    for front in fast_non_dominated_sort(losses):
        if len(keep) + len(front) <= n:
            keep.extend(front.tolist())
            continue
        crowd = crowding_distance(losses[front])
        order = np.argsort(-crowd, kind="stable")
        keep.extend(front[order[: n - len(keep)]].tolist())
        break
    return np.asarray(keep, dtype=int)


def _tournament(
    rank: np.ndarray, crowd: np.ndarray, count: int, rng: np.random.Generator,
) -> np.ndarray:
    """Binary tournaments: lower rank wins, then larger crowding, then a coin."""
    a = rng.integers(len(rank), size=count)
    b = rng.integers(len(rank), size=count)
    a_wins = (rank[a] < rank[b]) | ((rank[a] == rank[b]) & (crowd[a] > crowd[b]))
    tie = (rank[a] == rank[b]) & (crowd[a] == crowd[b])
    a_wins |= tie & (rng.random(count) < 0.5)
    return np.where(a_wins, a, b)


def evolve(
    objective: Objective, lower: Sequence[float], upper: Sequence[float], survive: Survival,
    pop_size: int = 100, generations: int = 100, seed: int = 0,
    initial: np.ndarray | None = None, tournament: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Generational multi-objective search inside the box ``[lower, upper]``.

    Returns the points of the final population's first front (duplicates removed) and
    their losses. ``initial`` rows (clipped into the box) seed the first population; the
    rest is uniform. Parents come from binary tournaments on (rank, crowding) or, with
    ``tournament=False`` (NSGA-III), uniformly at random.
    """
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    if lower.shape != upper.shape or np.any(lower > upper):
        raise ValueError(f"need lower <= upper, got lower={lower}, upper={upper}")
    rng = np.random.default_rng(seed)
    pop = lower + rng.random((pop_size, lower.size)) * (upper - lower)
    if initial is not None and len(initial):
        seeds = np.clip(np.asarray(initial, dtype=float), lower, upper)[:pop_size]
        pop[: len(seeds)] = seeds
    losses = objective(pop)
    half = (pop_size + 1) // 2
    for _ in range(generations):
        if tournament:
            rank, crowd = rank_and_crowding(losses)
            parents = _tournament(rank, crowd, 2 * half, rng)
        else:
            parents = rng.integers(pop_size, size=2 * half)
        c1, c2 = sbx_crossover(pop[parents[:half]], pop[parents[half:]], lower, upper, rng)
        children = polynomial_mutation(np.vstack([c1, c2])[:pop_size], lower, upper, rng)
        merged = np.vstack([pop, children])
        merged_losses = np.vstack([losses, objective(children)])
        keep = survive(merged_losses, pop_size, rng)
        pop, losses = merged[keep], merged_losses[keep]
    first = np.flatnonzero(non_dominated_mask(losses))
    _, unique = np.unique(pop[first], axis=0, return_index=True)
    chosen = first[np.sort(unique)]
    return pop[chosen], losses[chosen]


def nsga2(
    objective: Objective, lower: Sequence[float], upper: Sequence[float],
    pop_size: int = 100, generations: int = 100, seed: int = 0,
    initial: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """NSGA-II: :func:`evolve` with rank + crowding survival and tournament selection."""
    return evolve(objective, lower, upper, nsga2_survival, pop_size, generations, seed, initial)


def select_spread(losses: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` points of a front, thinned by repeatedly dropping the most
    crowded point (crowding recomputed after each drop; the extremes always stay).

    >>> f = np.array([[0.0, 1.0], [0.1, 0.9], [0.5, 0.5], [0.55, 0.45], [1.0, 0.0]])
    >>> select_spread(f, 3).tolist()
    [0, 3, 4]
    """
    losses = np.asarray(losses, dtype=float)
    alive = np.arange(len(losses))
    while len(alive) > max(k, 0):
        crowd = crowding_distance(losses[alive])
        alive = np.delete(alive, int(np.argmin(crowd)))
    return alive
