"""Layer routing: the path a token's hidden state takes through the layers of several models.

A routing is the recipe's ``routing`` field (the data-flow merge of Akiba et al. 2024):
a path of hops, each a source model's layer with a scale on the hidden state entering
it, and the model whose embeddings, final norm and head frame the path. A hop may name
:data:`MERGED`, the recipe's own weight merge, so that a parameter-space merge and a
routing between it and another model form one recipe.

The rules a path must keep without any model loaded are checked here when the recipe is
built; those that need the models' layer counts (a layer that exists, the path ending
on the last layer) by :func:`check_layers` when the models are known.

>>> r = Routing.model_validate({"embeddings": "a", "max_length": 4, "path": [
...     {"model": "a", "layer": 0}, {"model": "b", "layer": 1, "scale": 0.5},
...     {"model": "a", "layer": 1}]})
>>> [(h.model, h.layer, h.scale) for h in r.path]
[('a', 0, 1.0), ('b', 1, 0.5), ('a', 1, 1.0)]
>>> check_layers(r, {"a": 2, "b": 2})
>>> check_layers(r, {"a": 3, "b": 2})
Traceback (most recent call last):
...
evomerge.errors.ConfigError: field 'routing.path[2]' = 'a layer 1': the path must end \
with the last layer of the embeddings model 'a' (layer 2) (anchored: true)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator

from evomerge.errors import ConfigError

#: the name a routing uses for its recipe's weight merge (the merge's output model)
MERGED = "<merged>"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Hop(_Strict):
    """One step of the path: ``model``'s layer ``layer``, its input scaled by ``scale``."""

    model: str
    layer: int = Field(ge=0)
    scale: float = 1.0


class Routing(_Strict):
    """The path and the model that frames it.

    ``embeddings``  the model whose embeddings, final norm and head the routed model uses
    ``path``        the hops in order; a layer may appear any number of times
    ``max_length``  the most hops the path may have (a search space sets it)
    ``anchored``    the path starts with the embeddings model's first layer and ends with
                    its last, as in the paper; ``false`` lifts the rule
    """

    embeddings: str
    path: list[Hop] = Field(min_length=1)
    max_length: int | None = Field(None, ge=1)
    anchored: bool = True

    @model_validator(mode="after")
    def _static_rules(self) -> Routing:
        for i, hop in enumerate(self.path):
            if not math.isfinite(hop.scale):
                raise ConfigError(None, f"routing.path[{i}].scale", hop.scale,
                                  "a scale must be a finite number")
        if self.max_length is not None and len(self.path) > self.max_length:
            raise ConfigError(None, "routing.path", f"<{len(self.path)} hops>",
                              f"the path may have at most max_length = {self.max_length} "
                              "hops")
        first = self.path[0]
        if self.anchored and (not same_model(first.model, self.embeddings) or first.layer):
            raise ConfigError(None, "routing.path[0]", _hop_text(first),
                              "the path must start with layer 0 of the embeddings model "
                              f"{self.embeddings!r} (anchored: true)")
        return self

    def models(self) -> list[str]:
        """Every model the routing reads, the embeddings model first, without repeats."""
        return list(dict.fromkeys([self.embeddings, *(h.model for h in self.path)]))

    def plain(self) -> bool:
        """Whether every scale is 1: the routing is then a stack of whole layers (a
        mergekit passthrough merge)."""
        return all(h.scale == 1.0 for h in self.path)


def check_layers(routing: Routing, layer_counts: Mapping[str, int]) -> None:
    """The rules that need the models: every model known, every layer present, and an
    anchored path ending with the embeddings model's last layer.

    ``layer_counts`` maps each model name (as the routing spells it, or any spelling of
    the same folder) to its number of layers.
    """
    counts = {model_key(m): n for m, n in layer_counts.items()}
    for field, model in [("routing.embeddings", routing.embeddings)] + [
            (f"routing.path[{i}].model", h.model) for i, h in enumerate(routing.path)]:
        if model_key(model) not in counts:
            raise ConfigError(None, field, model,
                              f"not among the models given: {sorted(layer_counts)}")
    for i, hop in enumerate(routing.path):
        n = counts[model_key(hop.model)]
        if hop.layer >= n:
            raise ConfigError(None, f"routing.path[{i}].layer", hop.layer,
                              f"model {hop.model!r} has {n} layers (0 to {n - 1})")
    last = routing.path[-1]
    n = counts[model_key(routing.embeddings)]
    if routing.anchored and (not same_model(last.model, routing.embeddings)
                             or last.layer != n - 1):
        raise ConfigError(None, f"routing.path[{len(routing.path) - 1}]", _hop_text(last),
                          "the path must end with the last layer of the embeddings model "
                          f"{routing.embeddings!r} (layer {n - 1}) (anchored: true)")


def check_merged_use(routing: Routing, has_merge: bool) -> None:
    """A hop may name :data:`MERGED` only when the recipe has a weight merge."""
    if has_merge:
        return
    for field, model in [("routing.embeddings", routing.embeddings)] + [
            (f"routing.path[{i}].model", h.model) for i, h in enumerate(routing.path)]:
        if model == MERGED:
            raise ConfigError(None, field, model, f"{MERGED!r} names the recipe's weight "
                              "merge, but the recipe has no 'merge_method'")


def same_model(a: str, b: str) -> bool:
    return model_key(a) == model_key(b)


def model_key(model: str) -> str:
    """One spelling per model folder, so 'runs/a/' and 'runs/a' meet."""
    return model if model == MERGED else os.path.normpath(model)


def _hop_text(hop: Hop) -> str:
    return f"{hop.model} layer {hop.layer}"
