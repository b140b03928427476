"""Random search: independent uniform points in ``[0, 1]^dim`` (Bergstra & Bengio 2012,
"Random search for hyper-parameter optimization", JMLR 13).

The baseline every other optimizer must beat at equal budget. The k-th point depends only
on ``(seed, k)``, so the state is the number of points asked, and results (single- or
multi-objective) are only recorded, never learnt from.

>>> opt = RandomSearch(dim=3, seed=0)
>>> a, b = opt.ask(2)
>>> len(a.x), all(0.0 <= v <= 1.0 for v in a.x + b.x), a.uid != b.uid
(3, True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evomerge.optim.base import ObjectiveSpec, Optimizer, register_optimizer
from evomerge.records import Candidate, Fitness


@register_optimizer
class RandomSearch(Optimizer):
    """Uniform points; the k-th drawn from a generator seeded by ``(seed, k)``."""

    name = "random"

    def __init__(self, dim: int, objectives: ObjectiveSpec | None = None, seed: int = 0):
        super().__init__(dim, objectives, seed)
        self.asked = 0

    def _points(self, start: int, n: int) -> np.ndarray:
        """Points ``start .. start + n - 1`` of this optimizer's sequence, shape (n, dim)."""
        return np.stack([
            np.random.default_rng([self.seed, k]).random(self.dim)
            for k in range(start, start + n)
        ])

    def _ask(self, n: int) -> list[Candidate]:
        points = self._points(self.asked, n)
        candidates = [
            Candidate(x=[float(v) for v in x], meta={"index": self.asked + i})
            for i, x in enumerate(points)
        ]
        self.asked += n
        return candidates

    def _tell(self, results: list[tuple[Candidate, Fitness]]) -> None:
        """Nothing to learn: the sequence does not depend on results."""

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["asked"] = self.asked
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.asked = int(state["asked"])
