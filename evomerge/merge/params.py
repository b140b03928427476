"""Parameter settings: scalars, per-layer gradients and tensor-name filters.

A setting means the same thing here as in a mergekit config:

- a scalar applies everywhere;
- a list of numbers is a gradient, interpolated linearly over the layers of a slice
  (``t = i / (n - 1)`` for the i-th of n layers; tensors outside layers use ``t = 0``);
- a list of ``{filter, value}`` entries picks the first whose filter is a substring of the
  tensor name (``*`` or no filter matches everything); its value may be a gradient.

>>> resolve_setting([0.0, 1.0], "model.layers.1.mlp.up_proj.weight", t=0.25)
0.25
>>> resolve_setting([{"filter": "self_attn", "value": 0.9}, {"value": 0.1}],
...                 "model.layers.0.mlp.up_proj.weight", t=0.0)
0.1
"""

from __future__ import annotations

from typing import Any, Union

from evomerge.checkpoint.architecture import filter_matches

Scalar = Union[bool, int, float]
Setting = Union[Scalar, list, dict]


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (bool, int, float))


def _interpolate(values: list, t: float) -> Scalar:
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return values[int(t * (len(values) - 1))]  # booleans pick, never blend
    scaled = t * (len(values) - 1)
    i0 = int(scaled)
    i1 = min(len(values) - 1, i0 + 1)
    frac = scaled - i0
    return (1 - frac) * values[i0] + frac * values[i1]


def resolve_setting(setting: Setting | None, tensor_name: str, t: float) -> Scalar | None:
    """The value a setting takes for one tensor at gradient position ``t``; None if unset."""
    if setting is None:
        return None
    if _is_scalar(setting):
        return setting
    if isinstance(setting, dict):
        setting = [setting]
    if isinstance(setting, list):
        if not setting:
            return None
        if all(_is_scalar(v) for v in setting):
            return _interpolate(setting, t)
        for cond in setting:
            if filter_matches(cond.get("filter"), tensor_name):
                return resolve_setting(cond["value"], tensor_name, t)
        return None
    raise TypeError(f"unexpected parameter setting {setting!r}")


def setting_values(setting: Setting) -> list[Scalar]:
    """Every literal value a setting can produce (for bounds checks before any merge)."""
    if _is_scalar(setting):
        return [setting]
    if isinstance(setting, dict):
        return setting_values(setting["value"])
    out: list[Scalar] = []
    for v in setting:
        out.extend(setting_values(v) if not _is_scalar(v) else [v])
    return out
