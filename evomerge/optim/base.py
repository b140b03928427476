"""The ask/tell protocol every search algorithm implements.

The campaign loop owns evaluation and storage; an optimizer only proposes candidates and
learns from results. ``tell`` accepts partial batches, out-of-order results, failures and
candidates it never asked for (enqueued or replayed); a result told again (a resumed
campaign does) is ignored. State round-trips through JSON.

Optimizers work in the normalized box ``[0, 1]^dim`` unless they say otherwise (M2N2 over
recipes carries structured ``params``).
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from evomerge.errors import EvomergeError
from evomerge.pareto import non_dominated_mask
from evomerge.records import Candidate, Direction, Fitness
from evomerge.registry import Registry


class ConflictingResultError(EvomergeError):
    """A candidate was told again with another outcome than the first time; ``uid``
    names it."""

    def __init__(self, uid: str, message: str):
        super().__init__(message)
        self.uid = uid


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
    """Base class: ask(n) -> candidates, tell(results), state_dict(), best().

    The protocol's rules live here, once for every algorithm: ``ask`` checks ``n`` and
    answers ``ask(0)`` with ``[]`` without touching the state; ``tell`` drops results
    already told (a resumed campaign tells them again) and refuses a uid told again with
    another outcome, so subclasses implement ``_ask(n)`` for ``n >= 1`` and ``_tell`` for
    results they have never seen.
    """

    #: registry name, set by subclasses
    name: str = ""

    def __init__(self, dim: int, objectives: ObjectiveSpec | None = None, seed: int = 0):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        self.objectives = objectives or ObjectiveSpec()
        self.seed = seed
        self.history = []

    @property
    def history(self) -> list[Told]:
        """Every result told, once each, in the order told (read it; ``tell`` extends it)."""
        return self._history

    @history.setter
    def history(self, told: Sequence[Told]) -> None:
        self._history = list(told)
        self._outcomes = {t.candidate.uid: t.fitness for t in self._history}
        #: each result's state entry, made once: a campaign saves the state after every
        #: ask, and converting the whole history each time grew with the campaign
        self._entries: dict[str, dict[str, Any]] = {}

    def ask(self, n: int = 1) -> list[Candidate]:
        """Propose ``n`` new candidates; ``ask(0)`` returns ``[]`` and changes nothing."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"ask needs a whole number n >= 0 of candidates, but got n={n!r}")
        return self._ask(int(n)) if n else []

    @abstractmethod
    def _ask(self, n: int) -> list[Candidate]:
        """Propose ``n >= 1`` candidates."""

    def tell(self, results: Sequence[tuple[Candidate, Fitness]]) -> None:
        """Learn from evaluated candidates; any order, any subset, failures included.

        A result told before (same uid, same outcome) is ignored, so telling results
        again changes nothing; the same uid with another outcome raises
        :class:`ConflictingResultError` before anything of the batch is learnt.
        """
        fresh = self._unseen(results)
        if not fresh:
            return
        self._tell(fresh)
        for candidate, fitness in fresh:
            told = self._history_entry(candidate, fitness)
            self._history.append(told)
            self._outcomes[candidate.uid] = told.fitness

    @abstractmethod
    def _tell(self, results: list[tuple[Candidate, Fitness]]) -> None:
        """Algorithm-specific update; each uid arrives here once, ever. ``history`` is
        extended with the batch after this returns."""

    def _history_entry(self, candidate: Candidate, fitness: Fitness) -> Told:
        """How ``history`` keeps one result: without the decoded recipe and the
        per-sample scores, which no algorithm reads from it (a campaign's study keeps
        both) and which would make every saved state grow by kilobytes per result."""
        if candidate.recipe is not None:
            candidate = replace(candidate, recipe=None)
        if fitness.sample_scores:
            fitness = replace(fitness, sample_scores={})
        return Told(candidate, fitness)

    def _unseen(self, results: Sequence[tuple[Candidate, Fitness]]
                ) -> list[tuple[Candidate, Fitness]]:
        """The results whose uid was never told, each uid once; raises on a uid told
        (before or earlier in ``results``) with another outcome."""
        fresh, batch = [], {}
        for candidate, fitness in results:
            earlier = self._outcomes.get(candidate.uid, batch.get(candidate.uid))
            if earlier is None:
                batch[candidate.uid] = fitness
                fresh.append((candidate, fitness))
            elif not same_outcome(earlier, fitness):
                raise ConflictingResultError(
                    candidate.uid,
                    f"candidate {candidate.uid} was told {_outcome(earlier)}, and now "
                    f"{_outcome(fitness)}: a result may be told again (a resumed campaign "
                    f"does), but not changed",
                )
        return fresh

    def best(self) -> Told | None:
        """The best ok result so far (first objective for multi-objective runs)."""
        ok = [t for t in self.history if t.fitness.is_ok]
        if not ok:
            return None
        return min(ok, key=lambda t: self.objectives.losses(t.fitness)[0])

    def pareto_front(self) -> list[Told]:
        """The non-dominated ok results (all of the best ones for one objective)."""
        ok = [t for t in self.history if t.fitness.is_ok]
        keep = non_dominated_mask([self.objectives.losses(t.fitness) for t in ok])
        return [t for t, kept in zip(ok, keep) if kept]

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; subclasses extend with their own fields."""
        return {
            "name": self.name,
            "dim": self.dim,
            "seed": self.seed,
            "objectives": {"names": list(self.objectives.names),
                           "directions": list(self.objectives.directions)},
            "history": [self._state_entry(t) for t in self.history],
        }

    def _state_entry(self, told: Told) -> dict[str, Any]:
        """One result as the state holds it (shared between states: do not mutate)."""
        entry = self._entries.get(told.candidate.uid)
        if entry is None:
            entry = {"candidate": told.candidate.to_dict(), "fitness": told.fitness.to_dict()}
            self._entries[told.candidate.uid] = entry
        return entry

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"state is for optimizer {state.get('name')!r}, not {self.name!r}")
        self.history = [
            Told(Candidate.from_dict(h["candidate"]), Fitness.from_dict(h["fitness"]))
            for h in state["history"]
        ]


def same_outcome(a: Fitness, b: Fitness) -> bool:
    """Whether two fitness records tell the same result: the same status and the same
    objective values (NaN equal to NaN). Timings, worker, error text and per-sample
    scores may differ: a record a campaign resumes from need not keep them.

    >>> same_outcome(Fitness.ok({"acc": 0.5}, timings={"eval": 3.0}), Fitness.ok({"acc": 0.5}))
    True
    >>> same_outcome(Fitness.ok({"acc": 0.5}), Fitness.failed("out of memory"))
    False
    """
    if a.status != b.status or a.objectives.keys() != b.objectives.keys():
        return False
    return all(_same_value(a.objectives[k], b.objectives[k]) for k in a.objectives)


def _same_value(x: Any, y: Any) -> bool:
    both_nan = isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
    return both_nan or x == y


def _outcome(fitness: Fitness) -> str:
    return f"{fitness.status} {fitness.objectives}" if fitness.objectives else fitness.status


OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer")

OptimizerClass = TypeVar("OptimizerClass", bound=type[Optimizer])


def register_optimizer(cls: OptimizerClass) -> OptimizerClass:
    """Class decorator: register an optimizer in :data:`OPTIMIZERS` under its ``name``.

    Each optimizer module registers its class where it defines it; a name registered
    twice raises ``ValueError``. :mod:`evomerge.optim.registry` imports every optimizer
    module, so the registry is complete once the package is imported.
    """
    if not cls.name:
        raise ValueError(f"optimizer class {cls.__name__} sets no registry name")
    OPTIMIZERS.register(cls.name, cls)
    return cls
