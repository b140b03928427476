"""The ask/tell protocol every search algorithm implements.

The campaign loop owns evaluation and storage; an optimizer only proposes candidates and
learns from results. ``tell`` accepts partial batches, out-of-order results, failures and
candidates it never asked for (enqueued or replayed). State round-trips through JSON.

Optimizers work in the normalized box ``[0, 1]^dim`` unless they say otherwise (M2N2 over
recipes carries structured ``params``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evomerge.records import Candidate, Direction, Fitness
from evomerge.registry import Registry


@dataclass(frozen=True)
class ObjectiveSpec:
    """The objectives an optimizer works on, each with its direction."""

    names: tuple[str, ...] = ("fitness",)
    directions: tuple[Direction, ...] = ("maximize",)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.directions):
            raise ValueError(
                f"one direction per objective must be given, but got names={self.names} "
                f"and directions={self.directions}"
            )
        for d in self.directions:
            if d not in ("maximize", "minimize"):
                raise ValueError(f"direction must be 'maximize' or 'minimize', got {d!r}")

    @property
    def multi(self) -> bool:
        return len(self.names) > 1

    def losses(self, fitness: Fitness) -> list[float]:
        """Objective values as quantities to minimise, in ``names`` order."""
        out = []
        for name, d in zip(self.names, self.directions):
            v = float(fitness.objectives[name])
            out.append(v if d == "minimize" else -v)
        return out


@dataclass
class Told:
    """One (candidate, fitness) pair as the optimizer keeps it."""

    candidate: Candidate
    fitness: Fitness = field(default_factory=Fitness)


class Optimizer(ABC):
    """Base class: ask(n) -> candidates, tell(results), state_dict(), best()."""

    #: registry name, set by subclasses
    name: str = ""

    def __init__(self, dim: int, objectives: ObjectiveSpec | None = None, seed: int = 0):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        self.objectives = objectives or ObjectiveSpec()
        self.seed = seed
        self.history: list[Told] = []

    @abstractmethod
    def ask(self, n: int = 1) -> list[Candidate]:
        """Propose ``n`` new candidates."""

    def tell(self, results: Sequence[tuple[Candidate, Fitness]]) -> None:
        """Learn from evaluated candidates; any order, any subset, failures included."""
        for cand, fit in results:
            self.history.append(Told(cand, fit))
        self._tell(results)

    @abstractmethod
    def _tell(self, results: Sequence[tuple[Candidate, Fitness]]) -> None:
        """Algorithm-specific update; ``history`` is already extended."""

    def best(self) -> Told | None:
        """The best ok result so far (first objective for multi-objective runs)."""
        ok = [t for t in self.history if t.fitness.is_ok]
        if not ok:
            return None
        return min(ok, key=lambda t: self.objectives.losses(t.fitness)[0])

    def pareto_front(self) -> list[Told]:
        """The non-dominated ok results (all of the best ones for one objective)."""
        ok = [t for t in self.history if t.fitness.is_ok]
        losses = [self.objectives.losses(t.fitness) for t in ok]
        front = []
        for i, li in enumerate(losses):
            dominated = any(
                all(a <= b for a, b in zip(lj, li)) and any(a < b for a, b in zip(lj, li))
                for j, lj in enumerate(losses)
                if j != i
            )
            if not dominated:
                front.append(ok[i])
        return front

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; subclasses extend with their own fields."""
        return {
            "name": self.name,
            "dim": self.dim,
            "seed": self.seed,
            "objectives": {"names": list(self.objectives.names),
                           "directions": list(self.objectives.directions)},
            "history": [
                {"candidate": t.candidate.to_dict(), "fitness": t.fitness.to_dict()}
                for t in self.history
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"state is for optimizer {state.get('name')!r}, not {self.name!r}")
        self.history = [
            Told(Candidate.from_dict(h["candidate"]), Fitness.from_dict(h["fitness"]))
            for h in state["history"]
        ]


OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer")
