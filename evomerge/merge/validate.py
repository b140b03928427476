"""Checks of a recipe against the operator registry, before any model is loaded.

Each failure is a :class:`ConfigError` naming the file, the field, the value and the rule.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from evomerge.errors import ConfigError, UnknownNameError
from evomerge.merge.params import setting_values
from evomerge.merge.recipe import Recipe, raw_setting


def _literals(setting) -> list:
    return setting_values(raw_setting(setting))


def check_recipe(recipe: Recipe, file: Path | str | None = None) -> None:
    from evomerge.merge.operators import OPERATORS

    try:
        op = OPERATORS.get(recipe.merge_method)
    except UnknownNameError as exc:
        raise ConfigError(file, "merge_method", recipe.merge_method, str(exc)) from None

    specs = {p.name: p for p in op.params}
    for path, name, setting in recipe.all_settings():
        spec = specs.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, list(specs), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(specs)) or "none"
            raise ConfigError(file, path, setting,
                              f"method {op.name!r} has no parameter {name!r}{hint} "
                              f"(its parameters: {known})")
        if not spec.per_model and ".sources[" in path or (
                not spec.per_model and path.startswith("models[")):
            raise ConfigError(file, path, setting,
                              f"{name!r} is a global parameter of {op.name!r}; "
                              "set it under the top-level 'parameters'")
        for v in _literals(setting):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                if spec.low is not None or spec.high is not None:
                    raise ConfigError(file, path, v, f"{name!r} must be a number")
                continue
            if spec.low is not None and v < spec.low or spec.high is not None and v > spec.high:
                lo = "-inf" if spec.low is None else spec.low
                hi = "inf" if spec.high is None else spec.high
                raise ConfigError(file, path, v, f"{name!r} must lie in [{lo}, {hi}]")

    if op.needs_base and not recipe.base_model and not any(
            s.base_model for s in recipe.slices or []):
        raise ConfigError(file, "base_model", None,
                          f"method {op.name!r} needs a base model; set 'base_model'")
    _check_model_count(recipe, op, file)


def _check_model_count(recipe: Recipe, op, file) -> None:
    groups = ([[m.model for m in recipe.models]] if recipe.models
              else [[s.model for s in sl.sources] for sl in recipe.slices])
    for i, names in enumerate(groups):
        where = "models" if recipe.models else f"slices[{i}].sources"
        base = recipe.base_model
        if recipe.slices and recipe.slices[i].base_model:
            base = recipe.slices[i].base_model
        inputs = [n for n in names if not (op.kind == "delta" and n == base)]
        n = len(inputs)
        if n < op.min_models:
            raise ConfigError(file, where, names,
                              f"method {op.name!r} needs at least {op.min_models} "
                              f"model(s) besides the base, got {n}")
        if op.max_models is not None and n > op.max_models and op.kind != "weight":
            raise ConfigError(file, where, names,
                              f"method {op.name!r} takes at most {op.max_models} models")
