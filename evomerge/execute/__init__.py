"""Executors: submit recipes, get Fitness records back as they finish.

:class:`~evomerge.execute.base.Executor` is the protocol; the in-process executor
(:mod:`~evomerge.execute.local`) builds and scores candidates one after another in this
process. A worker (:class:`~evomerge.execute.worker.Worker`) loads its sources once, allocates
the model once and builds every candidate into it.
"""

from evomerge.execute.base import EXECUTORS, Executor, WorkerSpec, build_executor
from evomerge.execute.worker import Worker

__all__ = ["EXECUTORS", "Executor", "Worker", "WorkerSpec", "build_executor"]
