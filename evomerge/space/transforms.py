"""One coordinate of the box [0, 1] to a gene's value, and back.

``linear`` maps u to ``low + u (high - low)``, ``log`` to ``low (high / low)^u``; both give
exactly ``low`` at 0 and ``high`` at 1 and never leave [low, high]. ``identity`` genes are
set directly by optimizers that do not work in a box (M2N2's coefficients). Categorical
genes (a method, a flag, a model) split [0, 1] into equal bins.

The inverse is exact where it can be: :func:`to_unit` returns a u that
:func:`to_value` maps back to the very same float, so a recipe decoded from a point
encodes to a point that decodes to the same recipe, bit for bit.

>>> to_value(0.5, 0.0, 2.0, "linear"), to_value(0.5, 0.01, 1.0, "log")
(1.0, 0.1)
>>> v = to_value(0.3, -1.0, 2.0, "linear")
>>> to_value(to_unit(v, -1.0, 2.0, "linear"), -1.0, 2.0, "linear") == v
True
>>> category(0.99, 3), category_unit(2, 3)
(2, 0.8333333333333334)
"""

from __future__ import annotations

import math

#: how many floats either side of the plain inverse :func:`to_unit` tries for an exact one
_EXACT_SEARCH = 64


def to_value(u: float, low: float | None, high: float | None, transform: str) -> float:
    """The gene value at box coordinate ``u`` (already inside [0, 1] unless identity)."""
    if transform == "identity":
        return float(u)
    if u <= 0.0:
        return float(low)
    if u >= 1.0:
        return float(high)
    if transform == "log":
        value = low * (high / low) ** u
    else:
        value = low + u * (high - low)
    return min(max(value, low), high)


def _plain_inverse(value: float, low: float, high: float, transform: str) -> float:
    if transform == "log":
        return math.log(value / low) / math.log(high / low)
    return (value - low) / (high - low)


def to_unit(value: float, low: float | None, high: float | None, transform: str) -> float:
    """A box coordinate whose :func:`to_value` is ``value``: exact where one exists
    within a few floats of the plain inverse, else the plain inverse."""
    if transform == "identity":
        return float(value)
    if value <= low:
        return 0.0
    if value >= high:
        return 1.0
    guess = min(max(_plain_inverse(value, low, high, transform), 0.0), 1.0)
    if to_value(guess, low, high, transform) == value:
        return guess
    up = down = guess
    for _ in range(_EXACT_SEARCH):
        up, down = math.nextafter(up, 2.0), math.nextafter(down, -1.0)
        for u in (up, down):
            if 0.0 <= u <= 1.0 and to_value(u, low, high, transform) == value:
                return u
    return guess


def category(u: float, n: int) -> int:
    """The bin of ``u`` among ``n`` equal bins of [0, 1] (u = 1 is the last)."""
    return min(int(u * n), n - 1) if u > 0 else 0


def category_unit(index: int, n: int) -> float:
    """The centre of bin ``index``: where encoding puts a categorical choice."""
    return (index + 0.5) / n
