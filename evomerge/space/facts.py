"""What a space needs to know about its models: tensor names, layers, and group filters.

Tensor groups are the architecture facts' (:func:`~evomerge.checkpoint.tensor_info`);
in a recipe they become mergekit-style substring filters, one per sub-module name
(``self_attn``, ``mlp``, ``input_layernorm``, ``model.norm``, ...). A filter list is
only used after checking, on the bound models' names, that the first filter each tensor
matches is its own group's: substring filters never silently catch a neighbour.

>>> names = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
...          "model.layers.0.mlp.up_proj.weight", "model.layers.0.input_layernorm.weight",
...          "model.norm.weight", "lm_head.weight"]
>>> ModelFacts(tuple(names)).num_layers
1
>>> group_filters(names, ["attention", "mlp", "rest"])
{'attention': ('self_attn',), 'mlp': ('mlp',)}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from evomerge.checkpoint.architecture import filter_matches, layer_prefix, num_layers, \
    tensor_info
from evomerge.errors import ConfigError


@dataclass(frozen=True)
class ModelFacts:
    """The tensor names a space is bound to (shared by all its models) and, optionally,
    each tensor's element count (M2N2's group sizes need them)."""

    tensor_names: tuple[str, ...]
    numel: Mapping[str, int] | None = None

    @property
    def num_layers(self) -> int:
        return num_layers(self.tensor_names)

    @classmethod
    def from_folders(cls, folders: Sequence[Path | str],
                     allow_pickle: bool = False) -> ModelFacts:
        """Read names and shapes from checkpoint headers (no weights), after checking
        that the models can be merged tensor by tensor."""
        from evomerge.checkpoint import CheckpointReader, check_compatible

        readers = [CheckpointReader(f, allow_pickle=allow_pickle) for f in folders]
        try:
            check_compatible(readers)
            first = readers[0]
            names = first.tensor_names()
            numel = {n: _product(first.shape(n)) for n in names}
        finally:
            for reader in readers:
                reader.close()
        return cls(tuple(names), numel)


def _product(shape: Sequence[int]) -> int:
    out = 1
    for size in shape:
        out *= size
    return out


def group_of(name: str) -> str:
    """The space's group of a tensor (the architecture's, with "other" as "rest")."""
    group = tensor_info(name).group
    return "rest" if group == "other" else group


def _token(name: str, dotted: bool) -> str:
    prefix = layer_prefix(name)
    if prefix is None:  # outside the layers: the module path, e.g. "model.norm"
        module = name.rsplit(".", 1)[0]
        return module + "." if dotted else module
    sub = name[len(prefix):].split(".", 1)[0]
    return f".{sub}." if dotted else sub


def group_filters(names: Sequence[str], groups: Sequence[str],
                  field: str = "groups") -> dict[str, tuple[str, ...]]:
    """Substring filters per listed group (``rest`` takes no filter: it is the fallback),
    checked to split ``names`` exactly; plain sub-module names when they do, dotted ones
    (``.mlp.``) otherwise."""
    listed = [g for g in groups if g != "rest"]
    for g in listed:
        if not any(group_of(n) == g for n in names):
            raise ConfigError(None, field, g, "no tensor of the models is in this group "
                              f"(groups they have: {sorted({group_of(n) for n in names})})")
    for dotted in (False, True):
        filters = {g: tuple(dict.fromkeys(_token(n, dotted) for n in names
                                          if group_of(n) == g)) for g in listed}
        clash = _first_clash(names, listed, filters)
        if clash is None:
            return filters
    name, flt = clash
    raise ConfigError(None, field, list(groups),
                      f"tensor {name!r} ({group_of(name)}) also matches filter {flt!r}: "
                      "these models' names cannot be split into these groups by "
                      "substring filters")


def _first_clash(names: Sequence[str], listed: Sequence[str],
                 filters: dict[str, tuple[str, ...]]) -> tuple[str, str] | None:
    """A tensor whose first matching filter is another group's, and that filter."""
    for name in names:
        for g in listed:
            hit = next((f for f in filters[g] if filter_matches(f, name)), None)
            if hit is not None:
                if g != group_of(name):
                    return name, hit
                break
    return None
