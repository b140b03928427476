"""How operator helpers run independent calls when they are given no parallel map.

Helpers with work that runs on one core (random streams, magnitude selections) take an
``each`` map. Given none, they run the calls one after another with :func:`each` here;
an operator passes its :class:`~evomerge.merge.engine.MergeContext`'s ``each``, which
runs them side by side on the context's thread pool. Either gives the same results.

>>> each(lambda a, b: a + b, [1, 2], [10, 20])
[11, 22]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def each(fn: Callable[..., T], *iterables: Iterable) -> list[T]:
    """``[fn(*args) for args in zip(*iterables)]``, one call after another."""
    return [fn(*args) for args in zip(*iterables)]
