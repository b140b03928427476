"""The Evaluator protocol: a model and its tokenizer in, a :class:`Fitness` record out.

Every evaluator declares its objectives (names and directions) before it runs, reports
the settings it evaluates with (and their hash, so a journal can tell two evaluations
apart), prepares itself once per worker in :meth:`Evaluator.setup`, and scores each
candidate in :meth:`Evaluator.evaluate`. An exception while scoring one candidate becomes
``Fitness.failed`` with the traceback text; it never stops the campaign.

Subclasses implement :meth:`Evaluator.score`; the base class adds timings, directions,
the settings hash and the failure handling, once for all evaluators.

>>> class Size(Evaluator):
...     kind = "size"
...     def objectives(self):
...         return {"size/params": "minimize"}
...     def settings(self):
...         return {"kind": self.kind}
...     def score(self, model, tokenizer):
...         return Scores({"size/params": float(sum(p.numel() for p in model.parameters()))})
>>> import torch
>>> fit = Size().evaluate(torch.nn.Linear(2, 3), tokenizer=None)
>>> fit.status, fit.objectives, fit.direction("size/params")
('ok', {'size/params': 9.0}, 'minimize')
>>> Size().evaluate(None, None).status
'failed'
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from evomerge.errors import ConfigError
from evomerge.evaluate.fidelity import LevelJob
from evomerge.records import Direction, Fitness

SCORE = "score"
"""Name of the weighted aggregate objective of an lm-eval evaluator."""


def settings_hash(settings: dict[str, Any]) -> str:
    """A short stable hash of JSON-able settings (key order does not matter).

    >>> settings_hash({"a": 1, "b": [2, 3]}) == settings_hash({"b": [2, 3], "a": 1})
    True
    >>> len(settings_hash({}))
    16
    """
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Scores:
    """What one evaluator measured on one candidate, before it becomes a Fitness.

    ``model_s`` is the time spent inside model calls (forward passes and generation);
    the rest of the evaluation time is the evaluator's own overhead.
    """

    objectives: dict[str, float]
    sample_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    model_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


class Evaluator(ABC):
    """Scores a live model; see the module docstring for the contract."""

    #: registry name of the evaluator kind
    kind: str = ""

    _ready: bool = False
    _hash: str | None = None

    @abstractmethod
    def objectives(self) -> dict[str, Direction]:
        """Objective name -> direction, in a fixed order, known before any evaluation."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """The JSON-able settings that decide the numbers this evaluator reports."""

    @abstractmethod
    def score(self, model: Any, tokenizer: Any) -> Scores:
        """Measure one candidate; raise on any problem (the caller records the failure)."""

    def prepare(self, model: Any, tokenizer: Any) -> None:
        """One-time preparation; subclasses override (the default has nothing to do)."""

    @property
    def objective_names(self) -> tuple[str, ...]:
        return tuple(self.objectives())

    @property
    def objective_directions(self) -> tuple[Direction, ...]:
        return tuple(self.objectives().values())

    def settings_hash(self) -> str:
        # Settings are fixed at construction, so the hash is computed once.
        if self._hash is None:
            self._hash = settings_hash(self.settings())
        return self._hash

    def setup(self, model: Any, tokenizer: Any) -> float:
        """Prepare once per worker (build tasks, tokenize data); returns the seconds spent.

        Calling it again does nothing. Errors here are configuration or data problems
        that would fail every candidate, so they are raised, not recorded.
        """
        if self._ready:
            return 0.0
        start = time.perf_counter()
        self.prepare(model, tokenizer)
        self._ready = True
        return time.perf_counter() - start

    def score_level(self, model: Any, tokenizer: Any, job: LevelJob) -> Scores:
        """Measure one candidate on a fidelity level. Only lm-eval search tasks split
        into levels (the evaluation config refuses fidelity beside other evaluators);
        any other evaluator refuses a level job with that rule."""
        raise ConfigError(None, "evaluation.fidelity", self.kind,
                          "fidelity levels split lm-eval search tasks only")

    def evaluate(self, model: Any, tokenizer: Any, job: LevelJob | None = None) -> Fitness:
        """Score one candidate (``job``: on one fidelity level); never raises for a
        problem with the candidate itself."""
        setup_s = self.setup(model, tokenizer)
        start = time.perf_counter()
        directions = dict(self.objectives())
        try:
            scores = (self.score(model, tokenizer) if job is None
                      else self.score_level(model, tokenizer, job))
        except Exception:  # one bad candidate must not stop the campaign
            return Fitness.failed(
                traceback.format_exc(),
                directions=directions,
                timings={"eval_s": time.perf_counter() - start, "setup_s": setup_s},
                settings_hash=self.settings_hash(),
            )
        eval_s = time.perf_counter() - start
        missing = [name for name in directions if name not in scores.objectives]
        if missing:
            return Fitness.failed(
                f"{type(self).__name__} did not report objectives {missing}",
                directions=directions,
                timings={"eval_s": eval_s, "setup_s": setup_s},
                settings_hash=self.settings_hash(),
            )
        timings = {
            "eval_s": eval_s,
            "model_s": scores.model_s,
            "overhead_s": max(eval_s - scores.model_s, 0.0),
            "setup_s": setup_s,
            **scores.timings,
        }
        return Fitness.ok(
            {name: float(scores.objectives[name]) for name in directions},
            directions=directions,
            sample_scores=scores.sample_scores,
            timings=timings,
            settings_hash=self.settings_hash(),
        )
