"""M2N2 competition and attraction: pure functions of the archive's score matrix.

Abrantes, Lange, Tang (2025), "Competition and Attraction Improve Model Fusion".
``scores`` is the archive's score matrix S (members x datapoints, every entry >= 0,
higher is better). Each datapoint is a resource of total size z_j = sum_k S_kj; a member
earns S_ij / z_j^alpha from it, so a datapoint that few members solve is worth more
(alpha = 1) and alpha = 0 gives the plain sum of scores (a standard GA).

>>> import numpy as np
>>> S = np.array([[1.0, 0.0], [1.0, 1.0]])
>>> shared_fitness(S).tolist()      # z = [2, 1]
[0.5, 1.5]
>>> attraction(S, 0).tolist()       # member 1 solves datapoint 1, which member 0 misses
[0.0, 1.0]
"""

from __future__ import annotations

import numpy as np


def resource_sizes(scores: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """z_j^alpha per datapoint, with z_j = 1 where no member scores on datapoint j.

    A datapoint nobody solves carries no reward (every S_ij is 0), so replacing its
    zero size by 1 only avoids 0/0; it changes no fitness.

    >>> resource_sizes(np.array([[1.0, 0.0, 2.0], [1.0, 0.0, 0.0]])).tolist()
    [2.0, 1.0, 2.0]
    """
    z = np.asarray(scores, dtype=np.float64).sum(axis=0)
    z[z == 0] = 1.0
    return z**alpha


def shared_fitness(scores: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """f_i = sum_j S_ij / z_j^alpha for every member i.

    >>> shared_fitness(np.array([[1.0, 1.0], [0.0, 1.0]]), alpha=0.0).tolist()
    [2.0, 1.0]
    """
    scores = np.asarray(scores, dtype=np.float64)
    return (scores / resource_sizes(scores, alpha)).sum(axis=1)


def attraction(scores: np.ndarray, parent_a: int, alpha: float = 1.0) -> np.ndarray:
    """g(A, B) = sum_j max(S_Bj - S_Aj, 0) / z_j^alpha for every candidate partner B.

    A partner is attractive where it is strong on the datapoints that A gets wrong,
    weighted by how scarce those datapoints are. g(A, A) is always 0.

    >>> attraction(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), 0).tolist()
    [0.0, 0.5, 0.5]
    """
    scores = np.asarray(scores, dtype=np.float64)
    shared = scores / resource_sizes(scores, alpha)
    return np.maximum(shared - shared[parent_a], 0.0).sum(axis=1)


def draw_index(weights: np.ndarray, rng: np.random.Generator) -> int:
    """One index drawn with probability proportional to ``weights`` (all >= 0).

    When every weight is 0 the draw is uniform: the released code would divide 0 by 0
    there, and with no signal at all every member is an equally good guess.
    An index whose weight is 0 is never drawn otherwise.

    >>> draw_index(np.array([0.0, 3.0, 0.0]), np.random.default_rng(0))
    1
    """
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum()
    if total <= 0:
        return int(rng.integers(len(weights)))
    # side="right" skips leading zero-weight entries even when the uniform draw is 0.0
    cumulative = np.cumsum(weights) / total
    index = int(np.searchsorted(cumulative, rng.random(), side="right"))
    return min(index, len(weights) - 1)


def choose_parents(scores: np.ndarray, rng: np.random.Generator, alpha: float = 1.0,
                   use_attraction: bool = True) -> tuple[int, int]:
    """Parent A drawn in proportion to shared fitness, parent B to attraction to A.

    When no member is attracted to A (every g is 0, e.g. A solves everything the
    others solve) B is drawn in proportion to shared fitness instead. With
    ``use_attraction=False`` (the "no attraction" ablation) B is always drawn that way,
    independently of A, so B may equal A.

    >>> choose_parents(np.array([[1.0, 0.0], [0.0, 1.0]]), np.random.default_rng(1))
    (1, 0)
    """
    fitness = shared_fitness(scores, alpha)
    parent_a = draw_index(fitness, rng)
    weights = attraction(scores, parent_a, alpha) if use_attraction else fitness
    if weights.sum() <= 0:
        weights = fitness
    return parent_a, draw_index(weights, rng)


def replacement_index(scores_with_child: np.ndarray, alpha: float = 1.0) -> int:
    """The member to drop once the child's row is appended (last row = the child).

    Shared fitness is recomputed over all P+1 rows, so the child changes everyone's z.
    Ties go to the earliest row, as in the released code, so a child that ties with the
    weakest member survives; the child is dropped only when it is strictly the weakest.

    >>> replacement_index(np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]))
    2
    """
    return int(np.argmin(shared_fitness(scores_with_child, alpha)))
