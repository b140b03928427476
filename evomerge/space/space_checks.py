"""The rules a space file must meet before any model is bound to it.

Parameter names, which parameters are per model, flags and value ranges are the
operators' :class:`~evomerge.merge.operators.ParamSpec`; nothing here lists them again.
Each failure is a :class:`ConfigError` naming the field, the value and the rule (the
reader of the file adds its name).
"""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING

from evomerge.errors import ConfigError, UnknownNameError
from evomerge.merge.operators import LINES_PARAMS, OPERATORS, MergeOperator, ParamSpec
from evomerge.merge.params import Conditional, setting_values

if TYPE_CHECKING:
    from evomerge.space.model import GeneEntry, Space

#: gene and fixed names under this prefix are LiNeS settings, not operator parameters
LINES_PREFIX = "lines."


def operators(space: Space) -> list[MergeOperator]:
    """The operators of the space's method (or of each method of its choice)."""
    ops = []
    for i, name in enumerate(space.methods):
        field = "merge_method" if len(space.methods) == 1 else f"merge_method.choice[{i}]"
        try:
            ops.append(OPERATORS.get(name))
        except UnknownNameError as exc:
            raise ConfigError(None, field, name, str(exc)) from None
    return ops


def has_param(op: MergeOperator, param: str) -> bool:
    """Whether ``op`` takes ``param`` (LiNeS settings: every task-vector method)."""
    if param.startswith(LINES_PREFIX):
        return op.kind == "delta"
    return any(spec.name == param for spec in op.params)


def spec_of(space: Space, param: str, field: str) -> ParamSpec:
    """The ParamSpec of ``param`` in the space's method(s); unknown names fail."""
    if param.startswith(LINES_PREFIX):
        name = param[len(LINES_PREFIX):]
        specs = {s.name: s for s in LINES_PARAMS}
        if name not in specs:
            raise ConfigError(None, field, param, f"LiNeS has no setting {name!r} "
                              f"(its settings: {', '.join(f'lines.{s}' for s in specs)})")
        if not any(op.kind == "delta" for op in operators(space)):
            raise ConfigError(None, field, param,
                              "LiNeS scales task vectors; the space's method has none")
        return specs[name]
    for op in operators(space):
        for spec in op.params:
            if spec.name == param:
                return spec
    known = sorted({s.name for op in operators(space) for s in op.params})
    close = difflib.get_close_matches(param, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    methods = " / ".join(space.methods)
    raise ConfigError(None, field, param, f"method {methods!r} has no parameter {param!r}"
                      f"{hint} (its parameters: {', '.join(known)}, lines.alpha, lines.beta)")


def gene_bounds(entry: GeneEntry, spec: ParamSpec, field: str) -> tuple[float, float] | None:
    """The entry's (low, high): its own, else the spec's range; None for identity genes
    and flags."""
    if spec.integer:  # a gene's values are continuous
        raise ConfigError(None, field, spec.name,
                          f"{spec.name!r} takes whole numbers only; set it under 'fixed'")
    if spec.is_flag or entry.transform == "identity":
        if entry.bounds is not None:
            what = "a flag (a choice of true or false)" if spec.is_flag else \
                "an identity gene (optimizers set its value directly)"
            raise ConfigError(None, f"{field}.bounds", list(entry.bounds),
                              f"{spec.name!r} is {what}; it takes no bounds")
        return None
    if entry.bounds is None:
        if spec.low is None or spec.high is None:
            raise ConfigError(None, f"{field}.bounds", None,
                              f"{spec.name!r} has no finite range in its ParamSpec; "
                              "give bounds: [low, high]")
        low, high = spec.low, spec.high
    else:
        low, high = entry.bounds
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise ConfigError(None, f"{field}.bounds", [low, high],
                          f"`low < high` must hold for finite bounds, but got "
                          f"(low={low}, high={high})")
    if (spec.low is not None and low < spec.low) or (spec.high is not None and high > spec.high):
        lo = "-inf" if spec.low is None else spec.low
        hi = "inf" if spec.high is None else spec.high
        raise ConfigError(None, f"{field}.bounds", [low, high],
                          f"must lie inside the range of {spec.name!r}, [{lo}, {hi}]")
    if entry.transform == "log" and low <= 0:
        raise ConfigError(None, f"{field}.bounds", [low, high],
                          "a log transform needs low > 0")
    return low, high


def check_space(space: Space) -> None:
    """Raise :class:`ConfigError` at the first rule the space breaks."""
    ops = operators(space)
    if len(space.methods) != len(set(space.methods)):
        raise ConfigError(None, "merge_method.choice", space.methods, "lists a method twice")
    if len({op.kind for op in ops}) > 1:
        raise ConfigError(None, "merge_method.choice", space.methods,
                          "mixes task-vector and weight methods; their model inputs differ")
    _check_roles(space, ops)
    labels: dict[str, int] = {}
    for i, entry in enumerate(space.genes):
        field = f"genes[{i}]"
        if entry.label in labels:
            raise ConfigError(None, f"{field}.param", entry.label,
                              f"genes[{labels[entry.label]}] already searches {entry.label!r}; "
                              "give each parameter one entry (or a 'name' and a 'tie')")
        labels[entry.label] = i
        if entry.choose is not None:
            _check_choose(space, entry, field)
        else:
            _check_param_entry(space, entry, field)
    for i, entry in enumerate(space.genes):
        if entry.tie is not None:
            _check_tie(space, entry, labels, f"genes[{i}].tie")
    _check_fixed(space)
    _check_layers_from(space)


def _check_layers_from(space: Space) -> None:
    if space.methods != ["passthrough"]:
        if space.layers_from is not None:
            raise ConfigError(None, "layers_from", space.layers_from,
                              "only a passthrough space takes its layers from one model")
        return
    if space.models.base is not None:
        raise ConfigError(None, "models.base", space.models.base,
                          "a passthrough space takes each layer from one source; it has "
                          "no base")
    roles = space.models.sources
    if space.layers_from is not None and (
            not isinstance(roles, list) or space.layers_from not in roles):
        raise ConfigError(None, "layers_from", space.layers_from,
                          f"must be one of the named source roles {roles}")
    whole = any(e.choose and e.layers is None for e in space.genes)
    if space.layers_from is None and not whole:
        raise ConfigError(None, "layers_from", None,
                          "some layers have no 'choose' gene: name the source role "
                          "they come from")


def _check_roles(space: Space, ops: list[MergeOperator]) -> None:
    roles = space.models
    for op in ops:
        if op.needs_base and roles.base is None:
            raise ConfigError(None, "models.base", None,
                              f"method {op.name!r} needs a base model; name its role "
                              "(e.g. 'base: base')")
    if isinstance(roles.sources, list):
        names = roles.sources + ([roles.base] if roles.base else [])
        if not roles.sources or len(set(names)) != len(names):
            raise ConfigError(None, "models.sources", roles.sources,
                              "must name one or more roles, each once, none the base's")
    low, high = roles.count_range()
    if high is not None and high < low:
        raise ConfigError(None, "models.sources.max", high, f"must be >= min ({low})")
    if low < 1:
        raise ConfigError(None, "models.sources", low, "a space needs at least one source")
    if high is not None and low == high:
        for op in ops:
            if op.name != "passthrough":  # one source per slice, whichever the genes pick
                op.check_model_count(_inputs(op, low, roles.base), "models.sources",
                                 roles.sources)


def _inputs(op: MergeOperator, n_sources: int, base: str | None) -> int:
    """How many inputs ``op`` takes with ``n_sources`` sources (weight methods read the base)."""
    return n_sources + (1 if base and op.kind == "weight" else 0)


def _check_param_entry(space: Space, entry: GeneEntry, field: str) -> None:
    if entry.param is None:
        raise ConfigError(None, field, None, "give 'param' (a parameter) or 'choose: model'")
    spec = spec_of(space, entry.param, f"{field}.param")
    if entry.param.startswith(LINES_PREFIX) and entry.per:
        raise ConfigError(None, f"{field}.per", entry.per,
                          "LiNeS settings are one value for the whole merge")
    if "model" in entry.per and not spec.per_model:
        raise ConfigError(None, f"{field}.per", entry.per,
                          f"{entry.param!r} is one value for all models (a global "
                          "parameter); drop 'model'")
    _check_axes(entry, field)
    if entry.layers is not None:
        raise ConfigError(None, f"{field}.layers", entry.layers.model_dump(exclude_none=True),
                          "a layer share is for 'choose: model' genes")
    gene_bounds(entry, spec, field)


def _check_axes(entry: GeneEntry, field: str) -> None:
    if len(set(entry.per)) != len(entry.per):
        raise ConfigError(None, f"{field}.per", entry.per, "lists an axis twice")
    if entry.block != 1 and "layer" not in entry.per:
        raise ConfigError(None, f"{field}.block", entry.block,
                          "a block size needs 'layer' in 'per'")
    if entry.groups is not None and "group" not in entry.per:
        raise ConfigError(None, f"{field}.groups", entry.groups,
                          "tensor groups need 'group' in 'per'")
    groups = entry.group_list
    if len(set(groups)) != len(groups) or ("rest" in groups and groups[-1] != "rest"):
        raise ConfigError(None, f"{field}.groups", groups,
                          "each group once, and 'rest' (every other tensor) last")
    outside = [g for g in groups if g in ("embedding", "head")]
    if outside and "layer" in entry.per:
        raise ConfigError(None, f"{field}.groups", groups,
                          f"{outside[0]!r} tensors lie outside the layers; a per-layer "
                          "gene cannot split them")


def _check_choose(space: Space, entry: GeneEntry, field: str) -> None:
    if space.methods != ["passthrough"]:
        raise ConfigError(None, f"{field}.choose", entry.choose,
                          "choosing which model a block of layers comes from needs "
                          "merge_method 'passthrough'")
    if entry.param is not None or entry.per != ["layer"] or entry.groups or entry.bounds \
            or entry.tie or entry.transform != "linear":
        raise ConfigError(None, field, entry.model_dump(exclude_defaults=True),
                          "a 'choose: model' gene takes per: [layer] and optionally "
                          "'block', 'layers' and 'name', nothing else")


def _check_tie(space: Space, entry: GeneEntry, labels: dict[str, int], field: str) -> None:
    if entry.tie not in labels or entry.tie == entry.label:
        raise ConfigError(None, field, entry.tie,
                          f"must name another gene entry (entries: {', '.join(labels)})")
    target = space.genes[labels[entry.tie]]
    if target.tie is not None or target.choose is not None:
        raise ConfigError(None, field, entry.tie,
                          "must name an entry with coordinates of its own (not tied, "
                          "not a model choice)")
    if target.layout() != entry.layout():
        raise ConfigError(None, field, entry.tie,
                          f"a tied entry needs the same per, block and groups as "
                          f"{entry.tie!r}")


def _check_fixed(space: Space) -> None:
    genes = {e.param: e for e in space.genes if e.param}
    per_layer = any("layer" in e.per or e.choose for e in space.genes)
    for name, setting in space.fixed.items():
        field = f"fixed.{name}"
        spec = spec_of(space, name, field)
        if name.startswith(LINES_PREFIX) and not isinstance(setting, (int, float)):
            raise ConfigError(None, field, setting, "a LiNeS setting is one number")
        if name.startswith(LINES_PREFIX) and name in genes:
            raise ConfigError(None, field, setting, f"{name!r} is also a gene")
        for value in setting_values(setting):
            spec.validate(value, field)
        gene = genes.get(name)
        covers_all = gene is not None and (
            "group" not in gene.per or "rest" in gene.group_list)
        if covers_all:
            raise ConfigError(None, field, setting,
                              f"{name!r} is also a gene that sets every tensor; fix it "
                              "or search it, not both")
        if per_layer and _is_gradient(setting):
            raise ConfigError(None, field, setting,
                              "a gradient cannot go with per-layer genes, which split the "
                              "layers into slices (a gradient would restart in each); "
                              "give a number or search it per layer")


def _is_gradient(setting) -> bool:
    if isinstance(setting, Conditional):
        return isinstance(setting.value, list)
    if isinstance(setting, list):
        return any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in setting) \
            or any(_is_gradient(v) for v in setting)
    return False
