"""The M2N2 archive: P members, their score matrix S, and steady-state replacement.

Rows of S are members, columns are datapoints: every (task, doc id) pair of the
evaluator's per-sample scores, tasks and doc ids sorted as strings so that the column
order never depends on the order a worker reported them in.

>>> archive = Archive(capacity=2, alpha=1.0)
>>> for uid, row in [("a", [1, 0]), ("b", [1, 0]), ("c", [0, 1])]:
...     dropped = archive.insert(Member(uid, genome=None), np.array(row, float))
>>> [m.uid for m in archive.members], dropped.uid   # c solves what nobody else does
(['c', 'b'], 'a')
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evomerge.errors import EvomergeError
from evomerge.optim.m2n2_selection import replacement_index
from evomerge.records import Fitness


class ScoreColumns:
    """Turns ``Fitness.sample_scores`` into one row of S, in a fixed column order.

    >>> cols = ScoreColumns({"t": ["2", "10"]})
    >>> cols.row(Fitness.ok({}, sample_scores={"t": {"10": 1.0, "2": 0.5}}), "c1").tolist()
    [1.0, 0.5]
    """

    def __init__(self, doc_ids: dict[str, list[str]]):
        self.doc_ids = {task: sorted(ids) for task, ids in sorted(doc_ids.items())}
        self._getters = {task: operator.itemgetter(*ids) for task, ids in self.doc_ids.items()}
        self.size = sum(len(ids) for ids in self.doc_ids.values())

    @classmethod
    def from_fitness(cls, fitness: Fitness, uid: str) -> ScoreColumns:
        if not fitness.sample_scores or not any(fitness.sample_scores.values()):
            raise EvomergeError(
                f"candidate {uid}: M2N2 needs per-sample scores (Fitness.sample_scores "
                "task -> {doc_id: score}), but the evaluation reported none; use an "
                "evaluator that logs per-sample results")
        return cls({task: list(scores) for task, scores in fitness.sample_scores.items()})

    def row(self, fitness: Fitness, uid: str) -> np.ndarray:
        """The scores of one evaluation as a float64 row; same tasks and doc ids required."""
        scores = fitness.sample_scores
        if sorted(scores) != list(self.doc_ids):
            raise EvomergeError(
                f"candidate {uid}: per-sample scores cover tasks {sorted(scores)}, but "
                f"the archive's score matrix has columns for tasks {list(self.doc_ids)}")
        parts = []
        for task, ids in self.doc_ids.items():
            given = scores[task]
            try:
                if len(given) != len(ids):
                    raise KeyError(f"{len(given)} doc ids instead of {len(ids)}")
                values = self._getters[task](given)
            except KeyError as missing:
                raise EvomergeError(
                    f"candidate {uid}: task {task!r} must report the same doc ids as "
                    f"every earlier evaluation ({len(ids)} of them), but {missing}") from None
            parts.append(np.atleast_1d(np.asarray(values, dtype=np.float64)))
        row = np.concatenate(parts)
        if not np.all(np.isfinite(row)) or np.any(row < 0):
            raise EvomergeError(
                f"candidate {uid}: per-sample scores must be finite and >= 0 (M2N2 "
                f"shares each datapoint's score among members), got min {row.min()}")
        return row

    def to_json(self) -> dict[str, list[str]]:
        return self.doc_ids


@dataclass
class Member:
    """One archive member: its candidate's uid, genome, parents and (slim) fitness."""

    uid: str
    genome: Any
    parents: list[str] = field(default_factory=list)
    fitness: Fitness = field(default_factory=Fitness)


class Archive:
    """At most ``capacity`` members and their score matrix (one row per member)."""

    def __init__(self, capacity: int, alpha: float):
        self.capacity, self.alpha = capacity, alpha
        self.members: list[Member] = []
        # one spare row so a child's scores join S without copying the matrix
        self._scores: np.ndarray | None = None

    @property
    def scores(self) -> np.ndarray:
        """S, shape (members, datapoints); a view, not a copy."""
        if self._scores is None:
            return np.zeros((0, 0))
        return self._scores[: len(self.members)]

    def insert(self, member: Member, row: np.ndarray) -> Member | None:
        """Add a member; once full, drop the lowest shared fitness over P+1 rows.

        Returns the dropped member (possibly ``member`` itself) or None while the
        archive is still filling up.
        """
        if self._scores is None:
            self._scores = np.zeros((self.capacity + 1, row.size))
        n = len(self.members)
        self._scores[n] = row
        if n < self.capacity:
            self.members.append(member)
            return None
        worst = replacement_index(self._scores[: n + 1], self.alpha)
        if worst == n:
            return member
        dropped = self.members[worst]
        self.members[worst] = member
        self._scores[worst] = row
        return dropped

    def best_index(self) -> int:
        """The member with the best raw training score (sum of its row; first on ties)."""
        return int(np.argmax(self.scores.sum(axis=1)))

    def to_json(self, genome_to_json) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "alpha": self.alpha,
            "members": [
                {"uid": m.uid, "genome": genome_to_json(m.genome), "parents": m.parents,
                 "fitness": m.fitness.to_dict()}
                for m in self.members
            ],
            "scores": self.scores.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], genome_from_json) -> Archive:
        archive = cls(data["capacity"], data["alpha"])
        for m, row in zip(data["members"], data["scores"]):
            member = Member(m["uid"], genome_from_json(m["genome"]), list(m["parents"]),
                            Fitness.from_dict(m["fitness"]))
            archive.insert(member, np.asarray(row, dtype=np.float64))
        return archive
