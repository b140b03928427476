"""The records that flow through a campaign: Candidate (what to try) and Fitness (how it did).

Both serialise to plain JSON (``to_dict`` / ``from_dict``) so the journal and optimizer
checkpoints never need pickles.

>>> f = Fitness.ok({"acc": 0.5}, directions={"acc": "maximize"})
>>> Fitness.from_dict(f.to_dict()) == f
True
>>> f.scalar()
0.5
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "failed", "pruned"]
Direction = Literal["maximize", "minimize"]
Origin = Literal["asked", "enqueued", "replayed"]


def new_uid() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class Candidate:
    """One point to evaluate.

    ``x`` is the point in the optimizer's normalized box (``None`` for optimizers that
    work on structured parameters, e.g. M2N2 over recipes); ``params`` holds named values
    or structured genes; ``recipe`` is the decoded merge plan (a plain dict) once a search
    space has decoded it.
    """

    uid: str = field(default_factory=new_uid)
    x: list[float] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] | None = None
    parents: list[str] = field(default_factory=list)
    origin: Origin = "asked"
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        return cls(**d)


@dataclass
class Fitness:
    """The outcome of evaluating one candidate; never a bare float.

    ``objectives`` maps objective name to value; ``directions`` gives each objective's
    direction (missing means maximize). ``sample_scores`` maps task name to
    ``{doc_id: score}`` with stable document ids (M2N2's per-datapoint matrix).
    A failed evaluation has ``status="failed"``, empty objectives and the error text.
    """

    status: Status = "ok"
    objectives: dict[str, float] = field(default_factory=dict)
    directions: dict[str, Direction] = field(default_factory=dict)
    sample_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    worker: str | None = None
    settings_hash: str | None = None

    @classmethod
    def ok(cls, objectives: dict[str, float], **kw: Any) -> Fitness:
        return cls(status="ok", objectives=dict(objectives), **kw)

    @classmethod
    def failed(cls, error: str, **kw: Any) -> Fitness:
        return cls(status="failed", error=error, **kw)

    @property
    def is_ok(self) -> bool:
        return self.status == "ok"

    def direction(self, name: str) -> Direction:
        return self.directions.get(name, "maximize")

    def scalar(self, name: str | None = None) -> float:
        """The value of one objective (the only one if ``name`` is None) as given."""
        if not self.is_ok:
            raise ValueError(f"a {self.status} evaluation has no objective value")
        if name is None:
            if len(self.objectives) != 1:
                raise ValueError(
                    f"name the objective: this fitness has {sorted(self.objectives)}"
                )
            name = next(iter(self.objectives))
        return self.objectives[name]

    def loss(self, name: str | None = None) -> float:
        """The objective as a value to minimise (negated when it is maximised)."""
        if name is None and len(self.objectives) == 1:
            name = next(iter(self.objectives))
        value = self.scalar(name)
        return value if self.direction(name) == "minimize" else -value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fitness:
        return cls(**d)
