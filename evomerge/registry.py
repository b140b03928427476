"""A strict name -> object registry (one per kind: operators, optimizers, evaluators, ...).

Registering a name twice raises; looking up an unknown name raises with the known names
and the nearest suggestion.

>>> r = Registry("operator")
>>> _ = r.register("ties", 1)
>>> r.get("ties")
1
>>> r.get("tie")
Traceback (most recent call last):
...
evomerge.errors.UnknownNameError: unknown operator 'tie'; did you mean 'ties'? Known: ties
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

from evomerge.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        known = sorted(self._items)
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ";"
        return f"unknown {self.kind} {name!r}{hint} Known: {', '.join(known)}"

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)
