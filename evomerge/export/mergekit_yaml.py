"""mergekit YAML, both directions.

The native recipe schema is mergekit's plus a few fields that only evomerge reads
(``format``, ``name``, ``seed``, ``lines``), so import validates and export drops the
native markers, refusing anything mergekit could not reproduce.

>>> mk = {"merge_method": "linear", "models": [{"model": "a", "parameters": {"weight": 1.0}}]}
>>> to_mergekit(from_mergekit(mk)) == mk
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from evomerge.config_io import read_yaml
from evomerge.errors import ConfigError
from evomerge.export.passthrough import passthrough_ok, passthrough_recipe
from evomerge.merge.recipe import NATIVE_FORMAT, Recipe, load_recipe_dict

NATIVE_ONLY_FIELDS = ("format", "name", "seed", "lines")


def is_native(data: dict[str, Any]) -> bool:
    return data.get("format") == NATIVE_FORMAT


def from_mergekit(data: dict[str, Any], file: Path | str | None = None) -> Recipe:
    """A recipe from a mergekit config mapping."""
    for key in NATIVE_ONLY_FIELDS:
        if key in data:
            raise ConfigError(file, key, data[key],
                              f"{key!r} belongs to native recipes; add "
                              f"'format: {NATIVE_FORMAT}' to use it")
    return load_recipe_dict(data, file)


def to_mergekit(recipe: Recipe, file: Path | str | None = None) -> dict[str, Any]:
    """The mergekit config that builds the same model, or a ConfigError saying why not."""
    from evomerge.merge.operators import OPERATORS

    if recipe.routing is not None:
        if passthrough_ok(recipe) and recipe.routing.plain():  # a stack of whole layers
            return to_mergekit(passthrough_recipe(recipe.routing, recipe.dtype), file)
        raise ConfigError(file, "routing", f"{len(recipe.routing.path)} hops",
                          "mergekit has no layer routing: only a path of unscaled layers "
                          "that starts and ends in the embeddings model, with no weight "
                          "merge, exports (as a passthrough stack)")
    if recipe.lines is not None:
        raise ConfigError(file, "lines", recipe.lines.model_dump(),
                          "mergekit has no LiNeS scaling; this recipe cannot be exported")
    op = OPERATORS.get(recipe.merge_method)
    native_params = {p.name for p in op.params if not getattr(p, "mergekit", True)}
    for path, name, setting in recipe.all_settings():
        if name in native_params:
            raise ConfigError(file, path, setting,
                              f"{name!r} is an evomerge-only parameter of {op.name!r}")
    data = recipe.to_dict()
    for key in NATIVE_ONLY_FIELDS:
        data.pop(key, None)
    return data


def load_any_recipe(path: Path | str) -> Recipe:
    """Read a native recipe or a mergekit config (told apart by the ``format`` field)."""
    data = read_yaml(path)
    if is_native(data):
        return load_recipe_dict(data, path)
    return from_mergekit(data, path)


def mergekit_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(to_mergekit(recipe), sort_keys=False)
