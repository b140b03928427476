"""Parameter settings: scalars, per-layer gradients and tensor-name filters.

A setting means the same thing here as in a mergekit config:

- a scalar applies everywhere;
- a list of numbers is a gradient, interpolated linearly over the layers of a slice
  (``t = i / (n - 1)`` for the i-th of n layers; tensors outside layers use ``t = 0``);
- a list of ``{filter, value}`` entries picks the first whose filter is a substring of the
  tensor name (``*`` or no filter matches everything); its value may be a gradient.

:func:`parse_setting` turns the YAML form into this typed form (conditionals become
:class:`Conditional`), checking its shape only; what values a parameter accepts is its
operator's :class:`~evomerge.merge.operators.ParamSpec`'s rule.

>>> resolve_setting(parse_setting([0.0, 1.0]), "model.layers.1.mlp.up_proj.weight", t=0.25)
0.25
>>> resolve_setting(parse_setting([{"filter": "self_attn", "value": 0.9}, {"value": 0.1}]),
...                 "model.layers.0.mlp.up_proj.weight", t=0.0)
0.1
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict

from evomerge.checkpoint.architecture import filter_matches

Scalar = Union[bool, int, float]

SHAPES = ("a number, true or false, a list of numbers (a gradient over the layers), "
          "or a list of {filter, value} entries")


class Conditional(BaseModel):
    """A value applied to tensors whose name contains ``filter`` (mergekit syntax)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    filter: str | None = None
    value: Union[Scalar, list[Scalar]]


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (bool, int, float))


def _numbers(v: Any) -> Any:
    """``v`` with number-like text read as numbers, at any depth: YAML 1.1 reads ``1e-5``
    (no dot) as text, and mergekit reads such text as the number it spells."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    if isinstance(v, list):
        return [_numbers(x) for x in v]
    if isinstance(v, dict) and "value" in v:
        return {**v, "value": _numbers(v["value"])}
    return v


def _conditional(entry: Any, where: str) -> Conditional:
    if isinstance(entry, Conditional):
        return entry
    if not isinstance(entry, dict):
        raise ValueError(f"{where}must be a {{filter, value}} entry, got {entry!r}")
    unknown = sorted(set(entry) - {"filter", "value"})
    if unknown:
        raise ValueError(f"{where}unknown key(s) {unknown}: an entry has 'filter' and 'value'")
    if "value" not in entry:
        raise ValueError(f"{where}an entry needs a 'value'")
    flt, value = entry.get("filter"), entry["value"]
    if flt is not None and not isinstance(flt, str):
        raise ValueError(f"{where}'filter' must be text, got {flt!r}")
    if _is_scalar(value) or (isinstance(value, list) and value
                             and all(_is_scalar(v) for v in value)):
        return Conditional(filter=flt, value=value)
    raise ValueError(f"{where}'value' must be a number, true or false, or a non-empty "
                     f"list of numbers, got {value!r}")


def parse_setting(setting: Any) -> Any:
    """A setting in typed form; any other shape raises ``ValueError`` saying which.

    >>> parse_setting({"filter": "mlp", "value": 0.5})
    Conditional(filter='mlp', value=0.5)
    >>> parse_setting(["1e-5", 1e-3])
    [1e-05, 0.001]
    >>> parse_setting("heavy")
    Traceback (most recent call last):
    ...
    ValueError: must be a number, true or false, a list of numbers (a gradient over the layers), or a list of {filter, value} entries
    """
    setting = _numbers(setting)
    if _is_scalar(setting) or isinstance(setting, Conditional):
        return setting
    if isinstance(setting, dict):
        return _conditional(setting, "")
    if isinstance(setting, list) and setting:
        if all(_is_scalar(v) for v in setting):
            return list(setting)
        if all(isinstance(v, (dict, Conditional)) for v in setting):
            return [_conditional(v, f"entry [{i}]: ") for i, v in enumerate(setting)]
    raise ValueError(f"must be {SHAPES}")


#: a parameter setting as a recipe holds it, checked for shape when the recipe is read
Setting = Annotated[Any, BeforeValidator(parse_setting)]
Settings = dict[str, Setting]


def _interpolate(values: list, t: float) -> Scalar:
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return values[int(t * (len(values) - 1))]  # booleans pick, never blend
    scaled = t * (len(values) - 1)
    i0 = int(scaled)
    i1 = min(len(values) - 1, i0 + 1)
    frac = scaled - i0
    return (1 - frac) * values[i0] + frac * values[i1]


def resolve_setting(setting: Any, tensor_name: str, t: float) -> Scalar | None:
    """The value a typed setting takes for one tensor at gradient position ``t``; None
    when no filter matches."""
    if setting is None:
        return None
    if _is_scalar(setting):
        return setting
    if isinstance(setting, Conditional):
        setting = [setting]
    if all(_is_scalar(v) for v in setting):
        return _interpolate(setting, t)
    for cond in setting:
        if filter_matches(cond.filter, tensor_name):
            return resolve_setting(cond.value, tensor_name, t)
    return None


def setting_values(setting: Any) -> list[Scalar]:
    """Every literal value a typed setting can produce (checked before any merge); a
    gradient only ever blends between these, so checking them checks every value."""
    if _is_scalar(setting):
        return [setting]
    if isinstance(setting, Conditional):
        return setting_values(setting.value)
    return [v for entry in setting for v in setting_values(entry)]


def plain_setting(setting: Any) -> Any:
    """A typed setting as plain data (conditionals as ``{filter, value}`` dicts)."""
    if isinstance(setting, Conditional):
        return setting.model_dump(exclude_none=True)
    if isinstance(setting, list):
        return [plain_setting(v) for v in setting]
    return setting
