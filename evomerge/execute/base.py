"""The executor protocol and the registry of executor kinds.

An executor takes ``(uid, recipe)`` submissions and answers with ``(uid, Fitness)``
pairs in the order they finish. It never raises for a bad candidate: a merge that fails
or a score that is not a number comes back as a failed Fitness with the error text.

>>> EXECUTORS.names()
['local', 'ray']
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from evomerge.evaluate import EvaluationConfig
from evomerge.evaluate.fidelity import LevelJob
from evomerge.records import Fitness
from evomerge.registry import Registry


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker needs to build and score candidates (plain, picklable data)."""

    base: str | None
    sources: tuple[str, ...]
    evaluation: EvaluationConfig
    device: str = "auto"
    source: str = "<campaign>"
    dtype: str = "float32"
    extra: dict[str, Any] = field(default_factory=dict)


class Executor(ABC):
    """Submit recipes, collect results as they finish."""

    #: how many candidates it evaluates at once (the loop keeps that many in flight)
    workers: int = 1

    @abstractmethod
    def submit(self, uid: str, recipe: dict[str, Any], split: str = "search",
               job: LevelJob | None = None) -> None:
        """Queue one candidate's recipe (a plain dict), to be scored on the evaluation's
        ``search`` or ``report`` tasks; ``job``: on one fidelity level of the search
        tasks (a worker that has just scored the same candidate builds nothing again)."""

    @abstractmethod
    def results(self, timeout: float | None = None) -> list[tuple[str, Fitness]]:
        """Finished candidates since the last call; waits up to ``timeout`` seconds for
        at least one while any is pending (``None``: until one finishes)."""

    @property
    @abstractmethod
    def pending(self) -> int:
        """Candidates submitted and not yet returned."""

    def close(self) -> None:
        """Release workers and their memory."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


#: executor kind -> "module:class" (imported on use, so Ray loads only for ``ray``)
EXECUTORS: Registry[str] = Registry("executor")
EXECUTORS.register("local", "evomerge.execute.local:LocalExecutor")
EXECUTORS.register("ray", "evomerge.execute.ray_pool:RayExecutor")


def build_executor(kind: str, spec: WorkerSpec, workers: int = 1, **options: Any) -> Executor:
    """The executor of ``kind`` over ``workers`` workers, each built from ``spec``;
    ``options`` are the kind's own (``address`` for Ray, ``candidate_timeout_s``)."""
    module, name = EXECUTORS.get(kind).split(":")
    return getattr(importlib.import_module(module), name)(spec, workers=workers, **options)
