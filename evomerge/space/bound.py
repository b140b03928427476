"""A space bound to models: ``decode(x) -> recipe`` and ``encode(recipe) -> x``.

Optimizers see the box [0, 1]^dim; only the space knows what a coordinate means.
``decode`` clips a point outside the box back onto it and says so in the result (never
wrapping it round); ``encode`` is its exact inverse on the space's recipes:
``decode(encode(r)) == r`` bit for bit, and ``encode(decode(x)) == x`` to float
tolerance for numeric genes inside the box (a categorical gene encodes to the centre of
its bin; a parameter the decoded method lacks encodes to 0.5).

>>> from evomerge.space.facts import ModelFacts
>>> from evomerge.space.model import Space
>>> space = Space.from_dict({"merge_method": "task_arithmetic", "models": {"base": "base"},
...     "genes": [{"param": "weight", "per": ["model"], "bounds": [0, 1]}]})
>>> bound = space.bind("m/base", ["m/a", "m/b"], facts=ModelFacts(("lm_head.weight",)))
>>> [g.name for g in bound.genes]
['weight[a]', 'weight[b]']
>>> recipe, clipped = bound.decode([0.25, 1.5])
>>> [m.parameters["weight"] for m in recipe.models], [c.used for c in clipped]
([0.25, 1.0], [1.0])
>>> bound.encode(recipe)
[0.25, 1.0]
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from evomerge.errors import ConfigError
from evomerge.merge.recipe import Recipe, load_recipe_dict
from evomerge.records import Candidate
from evomerge.space.assemble import assemble, method_at
from evomerge.space.facts import ModelFacts
from evomerge.space.layout import check_counts, check_coverage, lay_out, model_axis
from evomerge.space.space_checks import operators
from evomerge.space.transforms import category_unit, to_unit

if TYPE_CHECKING:
    from evomerge.space.model import Space


@dataclass(frozen=True)
class Clip:
    """A coordinate of a decoded point that lay outside [0, 1], and the value used."""

    index: int
    gene: str
    given: float
    used: float

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "gene": self.gene, "given": self.given, "used": self.used}


class Decoded(NamedTuple):
    recipe: Recipe
    clipped: tuple[Clip, ...]


class BoundSpace:
    """A :class:`Space` over a base and sources: its genes, ``dim``, decode and encode."""

    def __init__(self, space: Space, base: str | None, sources: list[str], *,
                 facts: ModelFacts | None = None, file: Path | str | None = None):
        self.space, self.file = space, file
        self.base = None if base is None else str(base)
        self.sources = [str(s) for s in sources]
        try:
            check_counts(space, self.base, self.sources)
            if facts is None:
                facts = ModelFacts.from_folders(([self.base] if self.base else [])
                                                + self.sources)
            self.facts = facts
            self.num_layers = facts.num_layers
            self.inputs = model_axis(space, operators(space)[0], self.base, self.sources)
            self.labels = model_labels(([self.base] if self.base else []) + self.sources)
            self.genes, self.layouts, self.method_coord = lay_out(
                space, facts, self.inputs, self.sources, self.labels)
            check_coverage(space, self.layouts)
        except ConfigError as exc:
            raise ConfigError(file, exc.field, exc.value, exc.rule) from None

    @property
    def dim(self) -> int:
        return len(self.genes)

    def role_model(self, role: str) -> str:
        """The model bound to a named source role."""
        return self.sources[self.space.models.source_names(len(self.sources)).index(role)]

    # -- decode ----------------------------------------------------------------------

    def decode(self, x: Sequence[float]) -> Decoded:
        """The recipe at point ``x``, and the coordinates clipped onto the box."""
        unit, clipped = self._clipped(x)
        data, _ = assemble(self, unit)
        return Decoded(load_recipe_dict(data, self.file), clipped)

    def decode_candidate(self, candidate: Candidate) -> Candidate:
        """``candidate`` with its ``recipe`` filled (and ``meta["clipped"]`` when a
        coordinate was clipped)."""
        if candidate.x is None:
            raise ConfigError(None, "x", None, f"candidate {candidate.uid} carries no point "
                              "to decode")
        recipe, clipped = self.decode(candidate.x)
        meta = dict(candidate.meta)
        if clipped:
            meta["clipped"] = [c.to_dict() for c in clipped]
        return replace(candidate, recipe=recipe.to_dict(), meta=meta)

    def _clipped(self, x: Sequence[float]) -> tuple[list[float], tuple[Clip, ...]]:
        values = list(x)
        if len(values) != self.dim:
            raise ConfigError(None, "x", f"<{len(values)} numbers>",
                              f"needs {self.dim}, one per gene")
        unit, clips = [], []
        for i, (gene, value) in enumerate(zip(self.genes, values)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
                    or math.isnan(value):
                raise ConfigError(None, f"x[{i}]", value, f"gene {gene.name!r} needs a number")
            value = float(value)
            if gene.transform == "identity" and not gene.categorical:
                if not math.isfinite(value):
                    raise ConfigError(None, f"x[{i}]", value,
                                      f"gene {gene.name!r} needs a finite number")
            elif not 0.0 <= value <= 1.0:
                used = min(max(value, 0.0), 1.0)
                clips.append(Clip(i, gene.name, value, used))
                value = used
            unit.append(value)
        return unit, tuple(clips)

    # -- encode ----------------------------------------------------------------------

    def encode(self, recipe: Recipe | dict[str, Any]) -> list[float]:
        """The point that decodes to ``recipe``; a recipe this space cannot make is
        refused with the first field where it differs."""
        if not isinstance(recipe, Recipe):
            recipe = load_recipe_dict(recipe)
        data = _content(recipe)
        x = [0.5] * self.dim
        if self.method_coord is not None:
            methods = self.space.methods
            if data["merge_method"] not in methods:
                raise _outside("merge_method", data["merge_method"], f"one of {methods}")
            x[self.method_coord] = category_unit(methods.index(data["merge_method"]),
                                                 len(methods))
        self._encode_choices(data, x)
        _, sites = assemble(self, x)
        done: set[int] = set()
        # an entry with coordinates of its own first; a tied one where that entry is
        # not part of the decoded method
        for (entry, k), path in sorted(sites.items(),
                                       key=lambda item: bool(self.layouts[item[0][0]].entry.tie)):
            layout = self.layouts[entry]
            if layout.coords[k] not in done:
                x[layout.coords[k]] = self._unit(layout, k, _read(data, path), path)
                done.add(layout.coords[k])
        made = _content(self.decode(x).recipe)
        if made != data:
            path, want, got = _first_difference(data, made)
            raise _outside(path, want, f"this space makes {got!r} here")
        return x

    def _encode_choices(self, data: dict[str, Any], x: list[float]) -> None:
        """Which source each ``choose`` block comes from, read off the slices."""
        op = method_at(self, x)
        for layout in self.layouts:
            if not (layout.entry.choose and layout.active(op)):
                continue
            for k, p in enumerate(layout.placements):
                model = _model_at_layer(data, p.layers[0])
                if model not in self.sources:
                    raise _outside(f"slices (layer {p.layers[0]})", model,
                                   f"one of the sources {self.sources}")
                x[layout.coords[k]] = category_unit(self.sources.index(model),
                                                    len(self.sources))

    def _unit(self, layout, k: int, value: Any, path: tuple) -> float:
        gene = self.genes[layout.coords[k]]
        where = _path_text(path)
        if gene.categorical:
            if value not in gene.choices or type(value) is not bool:
                raise _outside(where, value, f"one of {list(gene.choices)}")
            return category_unit(gene.choices.index(value), len(gene.choices))
        low, high = layout.bounds or (None, None)
        if low is not None and not low <= value <= high:
            raise _outside(where, value, f"gene {gene.name!r} spans [{low}, {high}]")
        return to_unit(float(value), low, high, layout.entry.transform)


def model_labels(models: Sequence[str]) -> dict[str, str]:
    """Short names for gene names: folder names, whole paths where two share a name."""
    names = [os.path.basename(os.path.normpath(m)) or m for m in models]
    return {m: n if names.count(n) == 1 else m for m, n in zip(models, names)}


def _content(recipe: Recipe) -> dict[str, Any]:
    """What a recipe makes: everything but its label and format marker."""
    return {k: v for k, v in recipe.to_dict().items() if k not in ("format", "name")}


def _outside(field: str, value: Any, rule: str) -> ConfigError:
    return ConfigError(None, field, value, f"the recipe is not in this space: {rule}")


def _read(data: Any, path: tuple) -> Any:
    node = data
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            raise _outside(_path_text(path), None, "this space sets a value here") from None
    return node


def _path_text(path: tuple) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def _model_at_layer(data: dict[str, Any], layer: int) -> str | None:
    start = 0
    for item in data.get("slices") or []:
        src = item["sources"][0]
        length = src["layer_range"][1] - src["layer_range"][0]
        if start <= layer < start + length:
            return src["model"]
        start += length
    return None


def _first_difference(want: Any, got: Any, path: tuple = ()) -> tuple[str, Any, Any]:
    if isinstance(want, dict) and isinstance(got, dict):
        for key in list(want) + [k for k in got if k not in want]:
            if want.get(key) != got.get(key):
                return _first_difference(want.get(key), got.get(key), path + (key,))
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for i, (a, b) in enumerate(zip(want, got)):
            if a != b:
                return _first_difference(a, b, path + (i,))
    return _path_text(path) or "recipe", want, got
