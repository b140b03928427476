"""A space as text: its genes over bound models, or as a formula of n sources and L layers.

>>> from evomerge.space.model import Space
>>> space = Space.from_dict({"merge_method": "ties", "models": {"base": "base"},
...     "genes": [{"param": "density", "per": ["model", "layer"], "block": 2}]})
>>> print(describe(space))  # doctest: +NORMALIZE_WHITESPACE
method ties; models: base 'base', n sources (n >= 1); L layers
  entry    per                   values           genes
  density  model, 2-layer block  [0, 1] linear    n x L/2
dim = n x L/2
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evomerge.space.space_checks import gene_bounds, has_param, operators, spec_of

if TYPE_CHECKING:
    from evomerge.space.bound import BoundSpace
    from evomerge.space.model import GeneEntry, Space


def describe(space: Space) -> str:
    """The space's gene entries, each with its count as a formula of n and L."""
    rows = [("entry", "per", "values", "genes")]
    terms: dict[tuple[str, ...], int] = {}
    if len(space.methods) > 1:
        rows.append(("merge_method", "", "one of " + ", ".join(space.methods), "1"))
        terms[()] = 1
    for i, entry in enumerate(space.genes):
        coef, symbols = _count(space, entry)
        rows.append((entry.label, _per(entry), _values(space, entry, f"genes[{i}]"),
                     _product(coef, symbols) if not entry.tie else f"0 (reads {entry.tie}'s)"))
        if not entry.tie:
            terms[symbols] = terms.get(symbols, 0) + coef
    total = " + ".join(_product(c, s) for s, c in sorted(terms.items(), key=lambda t: len(t[0])))
    return "\n".join([_header(space), *_table(rows), f"dim = {total}"])


def describe_bound(bound: BoundSpace) -> str:
    """Every gene of a bound space: index, name, bounds or choices; then the count."""
    space = bound.space
    models = []
    if bound.base is not None:
        models.append(f"base = {bound.base}")
    models.append("sources = " + ", ".join(bound.sources))
    head = f"method {' / '.join(space.methods)}; {bound.num_layers} layers; " + \
        "; ".join(models)
    rows = [("#", "gene", "values")] + [
        (str(i), g.name, g.describe()) for i, g in enumerate(bound.genes)]
    return "\n".join([head, *_table(rows), f"dim = {bound.dim}"])


def _header(space: Space) -> str:
    roles = space.models
    low, high = roles.count_range()
    if isinstance(roles.sources, list):
        sources = "sources " + ", ".join(repr(s) for s in roles.sources)
    elif low == high:
        sources = f"{low} sources"
    else:
        sources = f"n sources (n >= {low}" + (f", <= {high})" if high else ")")
    base = f"base {roles.base!r}, " if roles.base else ""
    return f"method {' / '.join(space.methods)}; models: {base}{sources}; L layers"


def _per(entry: GeneEntry) -> str:
    parts = []
    for axis in entry.per:
        if axis == "layer":
            parts.append("layer" if entry.block == 1 else f"{entry.block}-layer block")
        elif axis == "group":
            parts.append("group (" + ", ".join(entry.group_list) + ")")
        else:
            parts.append(axis)
    if entry.layers is not None:
        side = "bottom" if entry.layers.bottom is not None else "top"
        parts.append(f"{side} {entry.layers.bottom or entry.layers.top:g} of the layers")
    return ", ".join(parts) or "one value"


def _values(space: Space, entry: GeneEntry, field: str) -> str:
    if entry.choose:
        return "one of the sources"
    spec = spec_of(space, entry.param, f"{field}.param")
    if spec.is_flag:
        return "true or false"
    bounds = gene_bounds(entry, spec, field)
    text = "any number (set directly)" if bounds is None else \
        f"[{bounds[0]:g}, {bounds[1]:g}] {entry.transform}"
    having = [op.name for op in operators(space) if has_param(op, entry.param)]
    return text if len(having) == len(space.methods) else f"{text} ({', '.join(having)} only)"


def _count(space: Space, entry: GeneEntry) -> tuple[int, tuple[str, ...]]:
    """How many genes an entry has: a whole number times symbols of n and L."""
    number, symbols = 1, []
    if "model" in entry.per:
        low, high = space.models.count_range()
        extra = 1 if space.models.base and operators(space)[0].kind == "weight" else 0
        if low == high:
            number *= low + extra
        else:
            symbols.append("(n+1)" if extra else "n")
    if "layer" in entry.per:
        layers = "L" if entry.block == 1 else f"L/{entry.block}"
        if entry.layers is not None:
            share = entry.layers.bottom or entry.layers.top
            layers = f"round({share:g} {layers})"
        symbols.append(layers)
    return number * max(1, len(entry.group_list)), tuple(symbols)


def _product(number: int, symbols: tuple[str, ...]) -> str:
    return " x ".join(([str(number)] if number != 1 or not symbols else []) + list(symbols))


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
            for r in rows]
