"""The merge engine's context: what a builder keeps for the operators across tensors.

A builder (the disk merge, or a :class:`~evomerge.merge.live.LiveMerger` across all its
candidates) owns one :class:`MergeContext` and hands it to every operator call. The
context holds what makes the operators fast without being part of any formula:

- ``buffers``: reused working tensors, so fresh pages are faulted in once per merge
  instead of once per tensor (see :mod:`~evomerge.merge.buffers`);
- ``each``: a small thread pool for work that runs on one core (random streams,
  magnitude selections), created on first use and shut down by :meth:`close`;
- remembered values of the builder's resident inputs (a task vector's sorted magnitudes,
  its L1 norm), keyed by the builder's own names for them (model, tensor name);
- ``memo``: values that depend on a key alone (a sample of positions per tensor size).

Operators stay plain functions of their inputs: given a fresh context they compute the
same tensors as given a long-lived one.

>>> with MergeContext() as ctx:
...     ctx.each(lambda a, b: a + b, [1, 2], [10, 20])
[11, 22]
>>> ctx = MergeContext(input_key=lambda model, name: (model, name))
>>> ctx.remember("a", "w", "norm", 3.0)
>>> call = ctx.for_inputs([("b", "w"), ("a", "w")])
>>> call.recall(1, "norm"), call.recall(0, "norm"), call.remembered(0, "norm", lambda: 4.0)
(3.0, None, 4.0)
>>> ctx.for_inputs([("b", "w")]).recall(0, "norm")
4.0
"""

from __future__ import annotations

import copy
import ctypes
import functools
import os
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import torch

from evomerge.merge.buffers import Buffers

T = TypeVar("T")

#: pool workers: every core, but at least 2 (a fixed split such as DARE's two random
#: streams runs side by side even where the core count is misreported) and at most 8
WORKERS = max(2, min(8, os.cpu_count() or 1))

#: (model, tensor name) -> the key a builder remembers that input's values under
InputKey = Callable[[str, str], Hashable]


class MergeContext:
    """Buffers, a lazily started thread pool and remembered values, for one builder.

    ``input_key`` is given by builders whose inputs stay resident and unchanged for as
    long as the context lives (the in-memory builder's task vectors): values computed from
    an input are then remembered under ``input_key(model, tensor name)``. Without it
    nothing is remembered, and every value is computed where it is needed.

    Results of an operator never live in the context's buffers (the caller passes ``out``
    for that), so a context can be shared by any number of calls in turn. Close it (or use
    it as a context manager) to stop the pool; :meth:`for_inputs` views share the owner's
    pool, buffers and memory and are never closed themselves.
    """

    def __init__(self, device: str | torch.device = "cpu", *,
                 input_key: InputKey | None = None):
        self.device = torch.device(device)
        self.buffers = Buffers(self.device)
        self.input_key = input_key
        #: this call's inputs' keys (set by :meth:`for_inputs`); None: not remembered
        self.input_keys: tuple[Hashable | None, ...] = ()
        self._pool = _SideBySide()
        self._memory: dict[tuple[Hashable, str], Any] = {}
        self._memo: dict[Hashable, Any] = {}

    # --- remembered values ---------------------------------------------------------

    def for_inputs(self, inputs: Sequence[tuple[str, str]]) -> MergeContext:
        """This context for one operator call whose inputs are ``inputs``, given as
        (model, tensor name) in the operator's order: it shares everything with this one,
        and :meth:`recall` and :meth:`remembered` look values up by input position."""
        view = copy.copy(self)
        if self.input_key is not None:
            view.input_keys = tuple(self.input_key(model, name) for model, name in inputs)
        return view

    def remember(self, model: str, name: str, what: str, value: Any) -> None:
        """Keep ``value`` (``what`` of input (model, tensor name)) while this context lives."""
        if self.input_key is None:
            raise ValueError("this context remembers nothing: its builder gave no input_key "
                             "(its inputs are not resident)")
        self._memory[(self.input_key(model, name), what)] = value

    def recall(self, i: int, what: str) -> Any | None:
        """``what`` of this call's input ``i`` when it was remembered, else None."""
        key = self._key(i)
        return None if key is None else self._memory.get((key, what))

    def remembered(self, i: int, what: str, compute: Callable[[], T]) -> T:
        """``what`` of this call's input ``i``: ``compute()`` the first time, remembered
        for later calls when the input has a key; computed every time when not."""
        key = self._key(i)
        if key is None:
            return compute()
        value = self._memory.get((key, what))
        if value is None:
            value = self._memory[(key, what)] = compute()
        return value

    def _key(self, i: int) -> Hashable | None:
        return self.input_keys[i] if i < len(self.input_keys) else None

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()`` once per ``key`` while this context lives, for values that
        depend on ``key`` alone (never on the contents of an input).

        >>> ctx = MergeContext()
        >>> ctx.memo(("square", 3), lambda: 9), ctx.memo(("square", 3), lambda: 0)
        (9, 9)
        """
        value = self._memo.get(key)
        if value is None:
            value = self._memo[key] = compute()
        return value

    # --- the thread pool -------------------------------------------------------------

    def each(self, fn: Callable[..., T], *iterables: Iterable) -> list[T]:
        """``[fn(*args) for args in zip(*iterables)]``, the calls run side by side.

        For work that runs on one core and releases the GIL (numpy selections, random
        streams). ``fn`` must not call :meth:`each` itself: it would wait on its own pool.
        """
        return self._pool.map(fn, *iterables)

    def close(self) -> None:
        """Stop the pool (if it was started); buffers and remembered values stay."""
        self._pool.shutdown()

    def __enter__(self) -> MergeContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SideBySide:
    """A thread pool started on first use; shared by a context and its views."""

    def __init__(self):
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def map(self, fn: Callable[..., T], *iterables: Iterable) -> list[T]:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=WORKERS, thread_name_prefix="evomerge-op",
                    initializer=_torch_on_this_thread_only)
            executor = self._executor
        return list(executor.map(fn, *iterables))

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


def _torch_on_this_thread_only() -> None:
    """Pool workers run their torch ops on their own thread, never in a parallel region.

    The pool is the parallelism here. What is more, an OpenMP runtime gives every thread
    that opens a parallel region a team of threads of its own; once the process holds
    more such threads than there are cores, GNU OpenMP stops letting idle team threads
    spin, and every later parallel op, the main thread's included, waits for a sleeping
    thread to wake (benchmarks/RESULTS.md has the measurement).

    No supported API lowers one thread's OpenMP team size alone, so this is the one place
    that calls OpenMP's own ``omp_set_num_threads`` through ctypes:
    ``torch.set_num_threads`` also stores the count as the process default that every
    thread started later takes (the main thread's next helper thread would run serially),
    and threadpoolctl documents its limits for the main thread only. The OpenMP call
    itself is the standard, per-thread one; where torch bundles no GNU OpenMP nothing is
    changed (the pool still works, only without this setting).
    """
    torch.get_num_threads()  # torch's per-thread setup, which would undo what follows
    set_threads = _omp_set_num_threads()
    if set_threads is not None:
        set_threads(1)


@functools.cache
def _omp_set_num_threads() -> Callable[[int], None] | None:
    """``omp_set_num_threads`` of the OpenMP runtime bundled with torch, if it has one
    (GNU OpenMP in the Linux wheels); None elsewhere."""
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
