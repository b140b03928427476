"""Gene values to a recipe mapping, recording where each value was written.

The recipe is in the form the merge engine resolves exactly:

- no per-layer genes: mergekit's ``models`` list; per-model genes in each model's
  ``parameters``, the others (and ``fixed``) at the top level;
- per-layer genes: one ``slices`` entry per run of layers no block boundary cuts, every
  model in each (the base too, as mergekit needs it); per-model genes in each source's
  ``parameters``, the others in the slice's. Tensors outside the layers follow mergekit's
  rule: embeddings take the first slice's values, the final norm and head the last's;
- per-group genes: a ``{filter, value}`` list in mergekit syntax, one entry per
  sub-module name of the group (checked on the models' names), ``rest`` last without a
  filter. A list without ``rest`` falls through to ``fixed`` (or the default);
- passthrough: one source per slice (the one a ``choose`` gene picks, else
  ``layers_from``); neighbouring slices that agree are joined.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evomerge.merge.operators import OPERATORS, MergeOperator
from evomerge.merge.params import plain_setting
from evomerge.space.space_checks import LINES_PREFIX
from evomerge.space.transforms import category

if TYPE_CHECKING:
    from evomerge.space.bound import BoundSpace
    from evomerge.space.layout import EntryLayout

#: where each value went: (entry index, placement index) -> path into the recipe mapping
Sites = dict[tuple[int, int], tuple]


def method_at(bound: BoundSpace, x: list[float]) -> MergeOperator:
    methods = bound.space.methods
    if bound.method_coord is None:
        return OPERATORS.get(methods[0])
    return OPERATORS.get(methods[category(x[bound.method_coord], len(methods))])


def assemble(bound: BoundSpace, x: list[float]) -> tuple[dict[str, Any], Sites]:
    """The recipe mapping of box point ``x`` (inside the box) and its value sites."""
    op = method_at(bound, x)
    active = [e for e in bound.layouts if e.active(op)]
    sites: Sites = {}
    recipe: dict[str, Any] = {"merge_method": op.name}
    if bound.base is not None:
        recipe["base_model"] = bound.base
    per_layer = op.name == "passthrough" or any("layer" in e.entry.per for e in active)
    if per_layer:
        recipe["slices"] = _slices(bound, op, active, x, sites)
    else:
        recipe["models"] = [
            _with_params({"model": m}, _params(bound, active, x, i, None, sites,
                                               ("models", i, "parameters")))
            for i, m in enumerate(bound.inputs)]
    top = _params(bound, active, x, None, None, sites, ("parameters",),
                  fallback=bound.space.fixed)
    for name, setting in bound.space.fixed.items():
        if not name.startswith(LINES_PREFIX) and _has(op, name):
            top.setdefault(name, plain_setting(setting))
    if top:
        recipe["parameters"] = top
    lines = _lines(bound, active, x, sites)
    if lines and op.kind == "delta":
        recipe["lines"] = lines
    for key in ("seed", "dtype", "out_dtype"):
        value = getattr(bound.space, key)
        if value is not None:
            recipe[key] = value
    return recipe, sites


def _has(op: MergeOperator, name: str) -> bool:
    return any(spec.name == name for spec in op.params)


def _with_params(item: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    if params:
        item["parameters"] = params
    return item


def _params(bound: BoundSpace, entries: list[EntryLayout], x: list[float],
            model: int | None, segment: tuple[int, int] | None, sites: Sites,
            path: tuple, fallback: dict | None = None) -> dict[str, Any]:
    """Settings at one level: a model's (``model`` given) or a shared one (None), in
    slice ``segment`` (None: the ``models`` form or the top level). A model's settings
    in a slice include its genes without a layer axis; a slice's shared settings only
    the per-layer ones (the others sit at the top level)."""
    out: dict[str, Any] = {}
    for e in entries:
        per = e.entry.per
        if e.entry.choose or e.param.startswith(LINES_PREFIX):
            continue
        if ("model" in per) != (model is not None):
            continue
        if ("layer" in per) != (segment is not None) and not (
                model is not None and segment is not None):
            continue
        picked = [k for k, p in enumerate(e.placements)
                  if p.model == model and (p.layers is None or
                                           p.layers[0] <= segment[0] < p.layers[1])]
        extra = (fallback or {}).get(e.param)
        out[e.param] = _setting(e, picked, x, sites, path + (e.param,), extra)
    return out


def _setting(e: EntryLayout, picked: list[int], x: list[float], sites: Sites,
             path: tuple, extra: Any) -> Any:
    """A scalar, or a ``{filter, value}`` list over the entry's groups."""
    if "group" not in e.entry.per:
        (k,) = picked
        sites.setdefault((e.index, k), path)
        return e.value(x[e.coords[k]])
    items: list[dict[str, Any]] = []
    for k in picked:
        group = e.placements[k].group
        value = e.value(x[e.coords[k]])
        sites.setdefault((e.index, k), path + (len(items), "value"))
        if group == "rest":
            items.append({"value": value})
        else:
            items.extend({"filter": f, "value": value} for f in e.filters[group])
    if extra is not None:
        plain = plain_setting(extra)
        items.extend(plain if isinstance(plain, list) and plain and isinstance(plain[0], dict)
                     else [plain] if isinstance(plain, dict) else [{"value": plain}])
    return items


def _segments(bound: BoundSpace, active: list[EntryLayout]) -> list[tuple[int, int]]:
    cuts = {0, bound.num_layers}
    for e in active:
        for p in e.placements:
            if p.layers is not None:
                cuts.update(p.layers)
    ordered = sorted(cuts)
    return list(zip(ordered, ordered[1:]))


def _slices(bound: BoundSpace, op: MergeOperator, active: list[EntryLayout],
            x: list[float], sites: Sites) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for s, seg in enumerate(_segments(bound, active)):
        path = ("slices", s)
        if op.name == "passthrough":
            model = _chosen(bound, active, x, seg)
            i = bound.inputs.index(model)
            params = _params(bound, active, x, i, seg, sites, path + ("sources", 0, "parameters"))
            sources = [_with_params({"model": model, "layer_range": list(seg)}, params)]
        else:
            sources = []
            for i, model in enumerate(bound.inputs):
                params = _params(bound, active, x, i, seg, sites,
                                 path + ("sources", i, "parameters"))
                sources.append(_with_params({"model": model, "layer_range": list(seg)}, params))
            if bound.base is not None and bound.base not in bound.inputs:
                sources.append({"model": bound.base, "layer_range": list(seg)})
        item = _with_params({"sources": sources},
                            _params(bound, active, x, None, seg, sites, path + ("parameters",)))
        out.append(item)
    return _joined(out, sites) if op.name == "passthrough" else out


def _chosen(bound: BoundSpace, active: list[EntryLayout], x: list[float],
            seg: tuple[int, int]) -> str:
    for e in active:
        if e.entry.choose:
            for k, p in enumerate(e.placements):
                if p.layers[0] <= seg[0] < p.layers[1]:
                    return bound.sources[category(x[e.coords[k]], len(bound.sources))]
    return bound.role_model(bound.space.layers_from)


def _joined(slices: list[dict[str, Any]], sites: Sites) -> list[dict[str, Any]]:
    """Neighbouring one-source slices with the same model and settings as one slice."""
    out: list[dict[str, Any]] = []
    moved: dict[int, int] = {}
    for s, item in enumerate(slices):
        prev = out[-1] if out else None
        if prev is not None and _same_but_range(prev, item):
            prev["sources"][0]["layer_range"][1] = item["sources"][0]["layer_range"][1]
        else:
            out.append(item)
        moved[s] = len(out) - 1
    for key, path in sites.items():
        if path[0] == "slices":
            sites[key] = ("slices", moved[path[1]]) + path[2:]
    return out


def _same_but_range(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def strip(item):
        src = {k: v for k, v in item["sources"][0].items() if k != "layer_range"}
        return src, item.get("parameters")
    return strip(a) == strip(b)


def _lines(bound: BoundSpace, active: list[EntryLayout], x: list[float],
           sites: Sites) -> dict[str, float]:
    out = {k[len(LINES_PREFIX):]: float(v) for k, v in bound.space.fixed.items()
           if k.startswith(LINES_PREFIX)}
    for e in active:
        if e.param and e.param.startswith(LINES_PREFIX):
            name = e.param[len(LINES_PREFIX):]
            out[name] = e.value(x[e.coords[0]])
            sites[(e.index, 0)] = ("lines", name)
    return out
