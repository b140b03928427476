"""The genes of a space bound to models: one coordinate of the box each, with its name,
bounds and transform, and where each entry's values go (model, layers, tensor group).

Layer blocks must divide the layer count, as mergekit's evolutionary merge requires of
its layer granularity: a ragged last block would weigh one part of the model differently
from the rest without saying so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from evomerge.errors import ConfigError
from evomerge.merge.operators import MergeOperator, ParamSpec
from evomerge.space.facts import ModelFacts, group_filters
from evomerge.space.space_checks import gene_bounds, has_param, operators, spec_of

if TYPE_CHECKING:
    from evomerge.space.model import GeneEntry, LayerShare, Space


@dataclass(frozen=True)
class Gene:
    """One coordinate of the box. ``choices`` makes it categorical (equal bins of [0, 1])."""

    name: str
    low: float | None = None
    high: float | None = None
    transform: str = "linear"
    choices: tuple = ()

    @property
    def categorical(self) -> bool:
        return bool(self.choices)

    def describe(self) -> str:
        if self.categorical:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.transform == "identity":
            return "any number (set directly)"
        return f"[{self.low:g}, {self.high:g}] {self.transform}"


@dataclass(frozen=True)
class Placement:
    """Where one value of an entry goes: an input model (index into the model axis),
    a layer range [start, end), a tensor group; None where the entry has no such axis."""

    model: int | None
    layers: tuple[int, int] | None
    group: str | None


@dataclass
class EntryLayout:
    """A file's gene entry over the bound models."""

    index: int
    entry: GeneEntry
    spec: ParamSpec | None
    bounds: tuple[float, float] | None
    placements: list[Placement]
    coords: list[int] = field(default_factory=list)
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def param(self) -> str | None:
        return self.entry.param

    def active(self, op: MergeOperator) -> bool:
        return self.entry.choose is not None or has_param(op, self.entry.param)

    def value(self, u: float):
        """The setting a coordinate means for this entry (its own bounds and transform)."""
        from evomerge.space.transforms import category, to_value

        if self.spec is not None and self.spec.is_flag:
            return (False, True)[category(u, 2)]
        low, high = self.bounds or (None, None)
        return to_value(u, low, high, self.entry.transform)


def layer_blocks(entry: GeneEntry, n_layers: int, field: str) -> list[tuple[int, int]]:
    """The entry's layer ranges: blocks of ``entry.block`` layers (within its share)."""
    k = entry.block
    if n_layers == 0:
        raise ConfigError(None, field, entry.per,
                          "the models have no numbered layers to search per layer")
    if k > n_layers or n_layers % k:
        divisors = [d for d in range(1, n_layers + 1) if n_layers % d == 0]
        raise ConfigError(None, f"{field}.block", k,
                          f"blocks of {k} layers do not divide the models' {n_layers} "
                          f"layers ({n_layers} = {n_layers // k} x {k} + {n_layers % k}); "
                          f"use one of {divisors}")
    blocks = [(a, a + k) for a in range(0, n_layers, k)]
    if entry.layers is None:
        return blocks
    return _share(entry.layers, blocks)


def _share(share: LayerShare, blocks: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The lowest or highest ``share`` of the blocks: at least one, rounded half up."""
    fraction = share.bottom if share.bottom is not None else share.top
    count = max(1, int(fraction * len(blocks) + 0.5))
    return blocks[:count] if share.bottom is not None else blocks[-count:]


def model_axis(space: Space, op: MergeOperator, base: str | None,
               sources: list[str]) -> list[str]:
    """The models a per-model gene has a value for: the sources, and for weight methods
    (which read the base as one more input) the base first."""
    if op.kind == "weight" and base is not None and op.name != "passthrough":
        return [base, *sources]
    return list(sources)


def lay_out(space: Space, facts: ModelFacts, inputs: list[str], sources: list[str],
            labels: dict[str, str]) -> tuple[list[Gene], list[EntryLayout], int | None]:
    """(genes, entry layouts, index of the method gene or None)."""
    genes: list[Gene] = []
    method_coord = None
    if len(space.methods) > 1:
        method_coord = 0
        genes.append(Gene("merge_method", choices=tuple(space.methods)))
    layouts: list[EntryLayout] = []
    by_label: dict[str, EntryLayout] = {}
    n_layers = facts.num_layers
    for i, entry in enumerate(space.genes):
        field = f"genes[{i}]"
        spec = None if entry.choose else spec_of(space, entry.param, f"{field}.param")
        bounds = None if spec is None else gene_bounds(entry, spec, field)
        models = inputs if "model" in entry.per else [None]
        blocks = layer_blocks(entry, n_layers, field) if "layer" in entry.per else [None]
        groups = entry.group_list or [None]
        layout = EntryLayout(i, entry, spec, bounds, [
            Placement(None if m is None else inputs.index(m), b, g)
            for m in models for b in blocks for g in groups])
        if "group" in entry.per:
            layout.filters = group_filters(facts.tensor_names, entry.group_list,
                                           f"{field}.groups")
        if entry.choose and len(sources) < 2:
            raise ConfigError(None, f"{field}.choose", entry.choose,
                              f"choosing a model needs two or more sources, got {len(sources)}")
        if entry.tie:
            layout.coords = list(by_label[entry.tie].coords)
        else:
            for p in layout.placements:
                layout.coords.append(len(genes))
                genes.append(_gene(entry, spec, bounds, p, inputs, sources, labels))
        layouts.append(layout)
        by_label[entry.label] = layout
    return genes, layouts, method_coord


def _gene(entry: GeneEntry, spec: ParamSpec | None, bounds, p: Placement,
          inputs: list[str], sources: list[str], labels: dict[str, str]) -> Gene:
    parts = [labels[inputs[p.model]]] if p.model is not None else []
    cell = cell_name(p.layers, p.group)
    parts += [cell] if cell else []
    name = entry.label + (f"[{', '.join(parts)}]" if parts else "")
    if entry.choose:
        return Gene(name, choices=tuple(labels[s] for s in sources))
    if spec.is_flag:
        return Gene(name, choices=(False, True))
    low, high = bounds or (None, None)
    return Gene(name, low, high, entry.transform)


def cell_name(layers: tuple[int, int] | None, group: str | None) -> str:
    """"layers 8-11, mlp", "layer 3", "attention", or "" for the whole model."""
    parts = []
    if layers is not None:
        a, b = layers
        parts.append(f"layer {a}" if b - a == 1 else f"layers {a}-{b - 1}")
    if group is not None:
        parts.append(group)
    return ", ".join(parts)


def check_coverage(space: Space, layouts: list[EntryLayout]) -> None:
    """A required parameter searched for some groups only needs a fixed value for the rest."""
    for layout in layouts:
        entry, spec = layout.entry, layout.spec
        if spec is None or "group" not in entry.per or "rest" in entry.group_list:
            continue
        if spec.default is None and entry.param not in space.fixed:
            raise ConfigError(None, f"genes[{layout.index}].groups", entry.group_list,
                              f"{entry.param!r} has no default: tensors outside these "
                              "groups need a value; add 'rest' or fix it in 'fixed'")


def check_counts(space: Space, base: str | None, sources: list[str]) -> None:
    """The bound models against the space's roles and its methods' model counts."""
    low, high = space.models.count_range()
    n = len(sources)
    if n < low or (high is not None and n > high):
        want = f"exactly {low}" if low == high else \
            f"at least {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(None, "sources", n,
                          f"the space takes {want} source model(s), got {n}")
    if space.models.base is not None and base is None:
        raise ConfigError(None, "base", None,
                          f"the space has a base role ({space.models.base!r}); bind a base model")
    if space.models.base is None and base is not None:
        raise ConfigError(None, "base", base, "the space has no base role")
    for op in operators(space):
        if op.name != "passthrough":
            op.check_model_count(len(model_axis(space, op, base, sources)), "sources", n)
