"""Checks of optimizer options: one set of rules, one field path in every message.

An optimizer's options come from the ``optimizer.options`` mapping of a campaign file,
so every error names its field ``optimizer.options.<name>``, with the value and the
rule. Arrays and long lists are shown by their shape, never printed whole.

>>> whole_number("popsize", 1, minimum=2)
Traceback (most recent call last):
...
evomerge.errors.ConfigError: field 'optimizer.options.popsize' = 1: must be an integer >= 2
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import numpy as np

from evomerge.errors import ConfigError

OPTIONS_FIELD = "optimizer.options"


def option_error(name: str | None, value: Any, rule: str) -> ConfigError:
    """A ConfigError for option ``name`` (a path below ``optimizer.options``, such as
    ``links.acc`` or ``initial[2]``; None: the options as a whole).

    >>> str(option_error("links.acc", "cubic", "must be a link name"))
    "field 'optimizer.options.links.acc' = 'cubic': must be a link name"
    """
    if isinstance(value, np.ndarray) or (isinstance(value, (list, tuple)) and len(value) > 8):
        value = f"<array of shape {np.shape(value)}>"  # never print a whole weight vector
    field = OPTIONS_FIELD if name is None else f"{OPTIONS_FIELD}.{name}"
    return ConfigError(None, field, value, rule)


def is_whole_number(value: Any) -> bool:
    """Whether an option value is an integer (``True`` is not, though Python says so).

    >>> [is_whole_number(v) for v in (8, np.int64(8), 8.0, True)]
    [True, True, False, False]
    """
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def whole_number(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, if it is an integer >= ``minimum``.

    >>> whole_number("budget", 10, minimum=1)
    10
    """
    if not is_whole_number(value) or value < minimum:
        raise option_error(name, value, f"must be an integer >= {minimum}")
    return int(value)


def number(name: str, value: Any, minimum: float, maximum: float | None = None,
           strict: bool = False) -> float:
    """``value`` as a float, if it is a finite number >= ``minimum`` (> with ``strict``)
    and <= ``maximum`` when one is given.

    >>> number("sigma0", 0.0, 0, maximum=1, strict=True)
    Traceback (most recent call last):
    ...
    evomerge.errors.ConfigError: field 'optimizer.options.sigma0' = 0.0: must be a number in (0, 1]
    """
    ok = (isinstance(value, (int, float, np.integer, np.floating))
          and not isinstance(value, (bool, np.bool_)) and math.isfinite(value))
    if not ok or value < minimum or (strict and value == minimum) or (
            maximum is not None and value > maximum):
        if maximum is None:
            rule = f"must be a number {'>' if strict else '>='} {minimum}"
        else:
            rule = f"must be a number in {'(' if strict else '['}{minimum}, {maximum}]"
        raise option_error(name, value, rule)
    return float(value)


def flag(name: str, value: Any) -> bool:
    """``value``, if it is true or false.

    >>> flag("diagonal", "yes")
    Traceback (most recent call last):
    ...
    evomerge.errors.ConfigError: field 'optimizer.options.diagonal' = 'yes': must be true or false
    """
    if not isinstance(value, bool):
        raise option_error(name, value, "must be true or false")
    return value


def choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """``value``, if it is one of ``choices``.

    >>> choice("moea", "x", ("nsga2", "nsga3"))
    Traceback (most recent call last):
    ...
    evomerge.errors.ConfigError: field 'optimizer.options.moea' = 'x': must be one of nsga2, nsga3
    """
    if not isinstance(value, str | int | float) or value not in choices:
        raise option_error(name, value, f"must be one of {', '.join(map(str, choices))}")
    return value


def check_known(options: Mapping[str, Any], known: Iterable[str], owner: str) -> None:
    """Refuse the first option not in ``known``, suggesting the nearest known name.

    ``owner`` says whose options these are (``"optimizer 'map'"``, ``"optuna's
    TPESampler"``).

    >>> check_known({"sigma": 0.2}, ["sigma0", "popsize"], "cma")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    evomerge.errors.ConfigError: ... = 0.2: cma has no such option; did you mean 'sigma0'? ...
    """
    known = sorted(known)
    for key, value in options.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise option_error(
                key, value,
                f"{owner} has no such option; {hint}"
                f"Its options: {', '.join(known) if known else '(none)'}",
            )
