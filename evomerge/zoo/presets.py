"""Named zoo sizes: ``tiny`` (seconds, for unit tests), ``default`` (the whole zoo in a
few minutes on 2 CPU cores; the landscape in the zoo README is measured on it) and
``large`` (a few million parameters, for benchmarks).

A preset fixes the model shape, the base model's pre-training (a mixture of every skill,
half of it in the decoy convention, see :mod:`evomerge.zoo.skills`), the experts' light
fine-tune, and the sizes of the search and test splits.

>>> get_preset("tiny").shape.layers
2
>>> get_preset("tiney")
Traceback (most recent call last):
...
evomerge.errors.UnknownNameError: unknown zoo preset 'tiney'; did you mean 'tiny'? Known: default, large, tiny
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from evomerge.registry import Registry
from evomerge.zoo.train import ModelShape, TrainSettings


def _mixture() -> dict[str, float]:
    # Addition is the hardest skill to learn, so the base sees it twice as often.
    return {"add": 2.0, "reverse": 1.0, "sort": 1.0, "read": 1.0, "foreign_add": 0.5}


@dataclass(frozen=True)
class Preset:
    name: str
    shape: ModelShape
    base: TrainSettings
    expert: TrainSettings
    mixture: dict[str, float] = field(default_factory=_mixture)
    decoy_rate: float = 0.5
    n_search: int = 200
    n_test: int = 200

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


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (unknown names fail with the known ones)."""
    return PRESETS.get(name)
