"""The in-process executor: one worker in this process, candidates one after another.

``results()`` builds and scores the oldest submitted candidate and returns it, so the
campaign loop runs every evaluation in its own thread (Ctrl-C stops it between tensors
or model calls). A ``candidate_timeout_s`` is enforced with a timer signal where the
loop runs in the main thread (elsewhere signals cannot reach it, and none is set).
"""

from __future__ import annotations

import signal
import threading
from collections import deque
from typing import Any

from evomerge.evaluate.fidelity import LevelJob
from evomerge.execute.base import Executor, WorkerSpec
from evomerge.execute.worker import Worker
from evomerge.records import Fitness


class CandidateTimeout(Exception):
    """Raised inside a candidate's evaluation when its time is up."""


class LocalExecutor(Executor):
    """One :class:`~evomerge.execute.worker.Worker`, started on the first submission."""

    def __init__(self, spec: WorkerSpec, workers: int = 1,
                 candidate_timeout_s: float | None = None):
        self.spec = spec
        self.workers = 1  # in process: one at a time, whatever was asked
        self.timeout_s = candidate_timeout_s
        self._queue: deque[tuple[str, dict[str, Any], str, LevelJob | None]] = deque()
        self._worker: Worker | None = None

    def submit(self, uid: str, recipe: dict[str, Any], split: str = "search",
               job: LevelJob | None = None) -> None:
        self._queue.append((uid, recipe, split, job))

    @property
    def pending(self) -> int:
        return len(self._queue)

    def results(self, timeout: float | None = None) -> list[tuple[str, Fitness]]:
        if not self._queue:
            return []
        if self._worker is None:
            self._worker = Worker(self.spec, worker_id="local")
        uid, recipe, split, job = self._queue[0]
        with _time_limit(self.timeout_s):
            fitness = self._worker.evaluate(recipe, split, job)
        if fitness.error and CandidateTimeout.__name__ in fitness.error:
            fitness.error = (f"timed out after {self.timeout_s:g} s "
                             "(executor.candidate_timeout_s)")
        self._queue.popleft()
        return [(uid, fitness)]

    def close(self) -> None:
        self._worker = None
        self._queue.clear()


class _time_limit:
    """Raise :class:`CandidateTimeout` in the evaluation after ``seconds``."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.armed = seconds is not None and threading.current_thread() is threading.main_thread()

    def __enter__(self) -> None:
        if self.armed:
            self.previous = signal.signal(signal.SIGALRM, self._expire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc: Any) -> None:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)

    def _expire(self, signum: int, frame: Any) -> None:
        raise CandidateTimeout(f"candidate ran past {self.seconds:g} s")
