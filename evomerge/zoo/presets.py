"""Named zoo sizes: ``tiny`` (seconds, for unit tests), ``default`` (the whole zoo in a
few minutes on 2 CPU cores; the landscape in the zoo README is measured on it) and
``large`` (a few million parameters, for benchmarks); and ``proving``, a zoo whose experts
are trained layer by layer so that searching pays (see the zoo README).

A preset fixes the model shape, the base model's pre-training (a mixture of every skill,
half of it in the decoy convention, see :mod:`evomerge.zoo.skills`), the experts' light
fine-tune, and the sizes of the search and test splits.

>>> get_preset("tiny").shape.layers
2
>>> get_preset("tiney")
Traceback (most recent call last):
...
evomerge.errors.UnknownNameError: unknown zoo preset 'tiney'; did you mean 'tiny'? Known: default, large, proving, tiny
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from evomerge.registry import Registry
from evomerge.zoo.skills import DEFAULT_TASKS, expert_skills
from evomerge.zoo.train import ModelShape, TrainSettings


def _mixture() -> dict[str, float]:
    # Addition is the hardest skill to learn, so the base sees it twice as often.
    return {"add": 2.0, "reverse": 1.0, "sort": 1.0, "read": 1.0, "foreign_add": 0.5}


@dataclass(frozen=True)
class Phase:
    """One stage of an expert's training: ``mixture`` (task -> weight) answered in the
    decoy convention at ``decoys[task]`` (0 for a task not named), with ``settings``
    (whose ``trainable`` regex says which layers move). ``translator``: instead, train
    the first layer into a translator of foreign digits into decimal ones (see
    :func:`evomerge.zoo.train.train_translator`)."""

    mixture: dict[str, float]
    settings: TrainSettings
    decoys: dict[str, float] = field(default_factory=dict)
    translator: bool = False


@dataclass(frozen=True)
class ExpertPlan:
    """An expert of ``skill`` trained from the base in ``phases``, in order."""

    skill: str
    phases: tuple[Phase, ...]


@dataclass(frozen=True)
class Preset:
    """``tasks``: the expert skills and targets of the zoo (data is written for each).
    ``plans``: how each expert is trained; ``None`` is one light fine-tune per expert
    skill with ``expert`` settings."""

    name: str
    shape: ModelShape
    base: TrainSettings
    expert: TrainSettings
    mixture: dict[str, float] = field(default_factory=_mixture)
    decoy_rate: float | dict[str, float] = 0.5
    n_search: int = 200
    n_test: int = 200
    tasks: tuple[str, ...] = DEFAULT_TASKS
    plans: tuple[ExpertPlan, ...] | None = None

    def expert_skills(self) -> list[str]:
        if self.plans is None:
            return expert_skills(self.tasks)
        return [p.skill for p in self.plans]

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: Registry[Preset] = Registry("zoo preset")

PRESETS.register("tiny", Preset(
    name="tiny",
    shape=ModelShape(hidden=32, layers=2, heads=2),
    base=TrainSettings(steps=300, lr=5e-3, batch_size=32, warmup=10, schedule="cosine"),
    expert=TrainSettings(steps=40, lr=3e-3, batch_size=32),
    n_search=64, n_test=64,
))
PRESETS.register("default", Preset(
    name="default",
    shape=ModelShape(hidden=96, layers=4, heads=4),
    base=TrainSettings(steps=800, lr=2e-3, batch_size=64, warmup=30, schedule="cosine"),
    expert=TrainSettings(steps=60, lr=3e-4, batch_size=32),
))
PRESETS.register("large", Preset(
    name="large",
    shape=ModelShape(hidden=192, layers=6, heads=6),
    base=TrainSettings(steps=600, lr=1e-3, batch_size=64, warmup=30, schedule="cosine"),
    expert=TrainSettings(steps=60, lr=2e-4, batch_size=32),
))


def _layers(*index: int) -> str:
    """The ``trainable`` regex of the decoder layers ``index``."""
    return rf"^model\.layers\.({'|'.join(map(str, index))})\."


def _skill_then_damage(skill: str, skill_layers: tuple[int, ...], victim: str,
                       damage_layers: tuple[int, ...]) -> ExpertPlan:
    """An expert whose skill lives in ``skill_layers`` and whose damage (``victim``'s
    decoy convention, trained while keeping the skill) lives in ``damage_layers``."""
    return ExpertPlan(skill, (
        Phase({skill: 1.0}, TrainSettings(steps=150, lr=5e-4, batch_size=32,
                                          trainable=_layers(*skill_layers))),
        Phase({skill: 1.0, victim: 1.0}, TrainSettings(steps=80, lr=1e-3, batch_size=32,
                                                       trainable=_layers(*damage_layers)),
              decoys={victim: 1.0}),
    ))


PRESETS.register("proving", Preset(
    name="proving",
    shape=ModelShape(hidden=96, layers=4, heads=4),
    base=TrainSettings(steps=640, lr=2e-3, batch_size=64, warmup=30, schedule="cosine"),
    expert=TrainSettings(steps=0, lr=0.0),  # unused: the plans say how experts train
    mixture={"add": 2.0, "reverse": 1.0, "sort": 1.0, "copy": 1.0},
    decoy_rate={"add": 0.5, "reverse": 0.5, "sort": 0.5},
    tasks=("add", "reverse", "sort", "glyph", "glyph_add"),
    plans=(
        _skill_then_damage("add", (0, 1), "sort", (2, 3)),
        _skill_then_damage("reverse", (1, 2), "add", (0, 3)),
        _skill_then_damage("sort", (2, 3), "reverse", (0, 1)),
        ExpertPlan("glyph", (
            # a first layer that reads foreign digits for the base's first layer: on
            # foreign and decimal text it outputs the base's embeddings of the decimal
            # text, so any model fine-tuned from the base reads its output as decimal
            Phase({"glyph": 1.0, "copy": 0.5, "add": 1.0},
                  TrainSettings(steps=300, lr=1e-3, batch_size=32), translator=True),
            Phase({"glyph": 1.0}, TrainSettings(steps=80, lr=1e-3, batch_size=32,
                                                trainable=_layers(1, 2, 3))),
        )),
    ),
))


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (unknown names fail with the known ones)."""
    return PRESETS.get(name)
