"""One small thread pool for operator work that runs on a single core.

Two kinds of work in the operators are serial by nature: drawing random numbers (one
random stream is one sequence) and selecting magnitude thresholds (numpy runs on one
core). Both release the GIL, so independent parts of such work, run on this
pool, use every core. Work submitted here never submits to the pool itself, so it cannot
wait on its own workers.

>>> each(lambda a, b: a + b, [1, 2], [10, 20])
[11, 22]
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import torch

T = TypeVar("T")

#: workers: every core, but at least 2 (a fixed split such as DARE's two random streams
#: runs side by side even where the core count is misreported) and at most 8
WORKERS = max(2, min(8, os.cpu_count() or 1))


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="evomerge-op",
                              initializer=_torch_on_this_thread_only)


def _torch_on_this_thread_only() -> None:
    """Pool workers run their torch ops on their own thread, never a parallel region.

    The pool is the parallelism here. What is more, an OpenMP runtime gives every thread
    that opens a parallel region a team of threads of its own; once the process holds
    more such threads than there are cores, GNU OpenMP stops letting idle team threads
    spin, and every later parallel op, the main thread's included, waits for a sleeping
    thread to wake. Builds after a side-by-side step ran at half speed here.

    ``torch.set_num_threads`` would also change the default of threads made later, so
    the worker's own OpenMP setting is lowered instead, after torch has set it up.
    """
    torch.get_num_threads()  # torch's per-thread setup, which would undo what follows
    set_threads = _omp_set_num_threads()
    if set_threads is not None:
        set_threads(1)


@functools.cache
def _omp_set_num_threads() -> Callable[[int], None] | None:
    """``omp_set_num_threads`` of the OpenMP runtime bundled with torch, if it has one
    (GNU OpenMP in the Linux wheels); None elsewhere, where nothing is changed."""
    path = Path(torch.__file__).parent / "lib" / "libgomp.so.1"
    if not path.exists():
        return None
    try:
        call = ctypes.CDLL(str(path)).omp_set_num_threads
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int]
    call.restype = None
    return call


def each(fn: Callable[..., T], *iterables: Iterable) -> list[T]:
    """``[fn(*args) for args in zip(*iterables)]``, the calls run side by side."""
    return list(_pool().map(fn, *iterables))
