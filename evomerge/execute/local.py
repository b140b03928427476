"""The in-process executor: one worker in this process, candidates one after another.

``results()`` builds and scores the oldest submitted candidate and returns it, so the
campaign loop runs every evaluation in its own thread (Ctrl-C stops it between tensors
or model calls).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from evomerge.execute.base import Executor, WorkerSpec
from evomerge.execute.worker import Worker
from evomerge.records import Fitness


class LocalExecutor(Executor):
    """One :class:`~evomerge.execute.worker.Worker`, started on the first submission."""

    def __init__(self, spec: WorkerSpec, workers: int = 1):
        self.spec = spec
        self.workers = 1  # in process: one at a time, whatever was asked
        self._queue: deque[tuple[str, dict[str, Any]]] = deque()
        self._worker: Worker | None = None

    def submit(self, uid: str, recipe: dict[str, Any]) -> None:
        self._queue.append((uid, recipe))

    @property
    def pending(self) -> int:
        return len(self._queue)

    def results(self, timeout: float | None = None) -> list[tuple[str, Fitness]]:
        if not self._queue:
            return []
        if self._worker is None:
            self._worker = Worker(self.spec, worker_id="local")
        uid, recipe = self._queue[0]
        fitness = self._worker.evaluate(recipe)
        self._queue.popleft()
        return [(uid, fitness)]

    def close(self) -> None:
        self._worker = None
        self._queue.clear()
