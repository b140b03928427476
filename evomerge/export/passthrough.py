"""A layer path of unscaled hops as mergekit's passthrough merge: the one kind of routing
mergekit can build (a stack of whole layers, the embeddings and head from the path's
first and last model).

>>> # passthrough_recipe(recipe.routing).to_dict()["slices"]
"""

from __future__ import annotations

from typing import Any

from evomerge.errors import ConfigError
from evomerge.merge.recipe import Recipe, load_recipe_dict
from evomerge.merge.routing import MERGED, Routing, same_model


def passthrough_recipe(routing: Routing, dtype: str | None = None) -> Recipe:
    """The unscaled path as a passthrough merge: a one-source slice per run of
    consecutive layers of one model, in path order."""
    if not routing.plain():
        raise ConfigError(None, "routing.path", "<scaled>", "a passthrough merge stacks "
                          "whole layers; this path scales the hidden state")
    slices: list[dict[str, Any]] = []
    for hop in routing.path:
        last = slices[-1]["sources"][0] if slices else None
        if last and same_model(last["model"], hop.model) and last["layer_range"][1] == hop.layer:
            last["layer_range"][1] += 1
        else:
            slices.append({"sources": [{"model": hop.model,
                                        "layer_range": [hop.layer, hop.layer + 1]}]})
    data: dict[str, Any] = {"merge_method": "passthrough", "slices": slices}
    if dtype is not None:
        data["dtype"] = dtype
    return load_recipe_dict(data)



def passthrough_ok(recipe: Recipe | None) -> bool:
    """mergekit takes the embeddings from the first slice and the head from the last:
    the same model only when the path starts and ends in the embeddings model."""
    if recipe is None or recipe.routing is None or recipe.merge_method is not None:
        return False
    r = recipe.routing
    return (MERGED not in r.models() and same_model(r.path[0].model, r.embeddings)
            and same_model(r.path[-1].model, r.embeddings))
