"""Checks of a recipe against the operator registry, before any model is loaded.

Every rule on a parameter's value is its operator's :class:`ParamSpec`; this module only
walks the recipe and asks the specs. A :class:`Recipe` runs these checks when it is
built, so no recipe object exists that breaks them. Each failure is a
:class:`ConfigError` naming the field path, the value and the rule (the reader of a file
adds the file name).
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from evomerge.errors import ConfigError, UnknownNameError
from evomerge.merge.operators import (
    LINES_PARAMS,
    OPERATOR_LIST,
    OPERATORS,
    MergeOperator,
)
from evomerge.merge.params import setting_values

if TYPE_CHECKING:  # the recipe module calls this one; the type is for annotations only
    from evomerge.merge.recipe import Recipe


def operator_of(recipe: Recipe) -> MergeOperator:
    try:
        return OPERATORS.get(recipe.merge_method)
    except UnknownNameError as exc:
        raise ConfigError(None, "merge_method", recipe.merge_method, str(exc)) from None


def _any_method_parameter(name: str) -> bool:
    return any(p.name == name for op in OPERATOR_LIST for p in op.params)


def ignored_settings(recipe: Recipe) -> list[str]:
    """Field paths of the parameters the recipe's method ignores: names another method
    has (``weight`` on ``slerp``, as mergekit's own configs write). mergekit ignores
    them too; a name no method has is refused instead, as the typo it almost always is.

    >>> from evomerge.merge.recipe import Recipe
    >>> ignored_settings(Recipe.model_validate({"merge_method": "slerp", "base_model": "a",
    ...     "models": [{"model": "a"}, {"model": "b", "parameters": {"weight": 0.5}}],
    ...     "parameters": {"t": 0.5}}))
    ['models[1].parameters.weight']
    """
    names = {p.name for p in operator_of(recipe).params}
    return [path for path, name, _ in recipe.all_settings() if name not in names]


def check_recipe(recipe: Recipe) -> None:
    """Raise :class:`ConfigError` at the first rule the recipe breaks."""
    op = operator_of(recipe)
    specs = {p.name: p for p in op.params}
    for path, name, setting in recipe.all_settings():
        spec = specs.get(name)
        if spec is None and _any_method_parameter(name):
            continue  # ignored, as mergekit ignores it (ignored_settings lists these)
        if spec is None:
            close = difflib.get_close_matches(name, list(specs), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(specs)) or "none"
            raise ConfigError(None, path, setting,
                              f"method {op.name!r} has no parameter {name!r}{hint} "
                              f"(its parameters: {known})")
        if not spec.per_model and (".sources[" in path or "models[" in path):
            raise ConfigError(None, path, setting,
                              f"{name!r} is a global parameter of {op.name!r}; "
                              "set it under the top-level 'parameters'")
        for value in setting_values(setting):
            spec.validate(value, path)
    for spec in LINES_PARAMS:
        if recipe.lines is not None:
            spec.validate(getattr(recipe.lines, spec.name), f"lines.{spec.name}")
    if op.needs_base and not recipe.base_model and not any(
            s.base_model for _, _, part in recipe.input_parts() for s in part.slices or []):
        raise ConfigError(None, "base_model", None,
                          f"method {op.name!r} needs a base model; set 'base_model'")
    for field, models, base in _input_groups(recipe):
        if op.kind == "delta":  # the base is the origin of the task vectors, not an input
            inputs = [m for m in models if m != base]
        else:  # weight methods read the base as one more input, as mergekit adds it
            inputs = models + ([base] if base and base not in models else [])
        op.check_model_count(len(inputs), field, models)


def _input_groups(recipe: Recipe) -> list[tuple[str, list[str], str | None]]:
    """(field, models listed, base) for each group of models merged together."""
    groups = []
    for _, at, part in recipe.input_parts():
        if part.models:
            groups.append((f"{at}models", [m.model for m in part.models], recipe.base_model))
        groups += [(f"{at}slices[{i}].sources", [s.model for s in sl.sources],
                    sl.base_model or recipe.base_model)
                   for i, sl in enumerate(part.slices or [])]
    return groups
