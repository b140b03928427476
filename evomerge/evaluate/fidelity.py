"""Fidelity levels: a candidate scored on a growing share of the search documents.

A level is a share of every search task's documents (stratified: each leaf task gives
the same share of its own documents). The documents of a leaf task are put in one
seeded order, the same for every candidate, and level ``k`` scores the first
``ceil(share_k * n)`` of that order: the levels are nested, so each adds documents and a
candidate's scores at a level compare with every other candidate's at that level. The
last level is every document, so a candidate that reaches it has the score a direct
evaluation gives.

A level's job carries the per-document scores of the candidate's earlier levels
(:class:`LevelJob`): the evaluator scores only the documents they lack and computes the
level's objectives over all of them, so no document is scored twice, on any worker,
before or after a resume.

>>> level_positions(10, [0.2, 0.5, 1.0], seed=0, leaf="add")
[[0, 6], [0, 4, 6, 8, 9], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LevelJob:
    """Score fidelity level ``level`` (0-based); ``prior``: the candidate's scores so far,
    ``prior[leaf task][doc id]``, from its earlier levels."""

    level: int
    prior: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"level": self.level, "prior": self.prior}


def level_size(share: float, n: int) -> int:
    """How many of ``n`` documents a level of ``share`` scores (at least one)."""
    return min(n, max(1, math.ceil(round(share * n, 9))))


def level_positions(n: int, shares: Sequence[float], seed: int, leaf: str) -> list[list[int]]:
    """Per level, the sorted positions (of a leaf task's ``n`` documents) scored up to it."""
    order = list(range(n))
    random.Random(f"{seed}:{leaf}").shuffle(order)
    return [sorted(order[:level_size(share, n)]) for share in shares]
