"""One small thread pool for operator work that runs on a single core.

Two kinds of work in the operators are serial by nature: drawing random numbers (torch's
CPU generator is one Mersenne Twister) and selecting magnitude thresholds (numpy runs
on one core). Both release the GIL, so independent parts of such work, run on this
pool, use every core. Work submitted here never submits to the pool itself, so it cannot
wait on its own workers.

>>> each(lambda a, b: a + b, [1, 2], [10, 20])
[11, 22]
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

#: workers: every core, but at least 2 (a fixed split such as DARE's two random streams
#: runs side by side even where the core count is misreported) and at most 8
WORKERS = max(2, min(8, os.cpu_count() or 1))


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="evomerge-op")


def each(fn: Callable[..., T], *iterables: Iterable) -> list[T]:
    """``[fn(*args) for args in zip(*iterables)]``, the calls run side by side."""
    return list(_pool().map(fn, *iterables))
