"""Export a routed model: a standard checkpoint when it is a plain layer stack, else a
checkpoint that stores its path and scales and ships the code that runs them.

- Every scale 1 (:meth:`Routing.plain`): the path is a stack of whole layers, so the
  folder is an ordinary checkpoint of the frame's architecture, its layers duplicated in
  path order and ``num_hidden_layers`` the path's length; any transformers loads it. When
  the routing reads only model folders and starts and ends in the embeddings model, the
  same model is a mergekit passthrough merge, and ``mergekit_config.yml`` says so.
- Otherwise each distinct layer is stored once (``model.stored_layers.<k>``), the config
  keeps the path as (stored layer, scale) pairs under ``evomerge_routing``, and the
  folder ships ``modeling_evomerge_routed.py`` (named in ``auto_map``): transformers loads
  it with ``trust_remote_code=True``, and :func:`evomerge.merge.routed_model.load_routed`
  loads it without running any code from the folder. Its ``model_type`` is one
  transformers does not know, so a load without either fails instead of silently
  building the wrong model.

>>> # export_routed(build_routed(recipe, sources), "out/routed", recipe=recipe)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from evomerge.checkpoint.writer import CheckpointWriter, check_target
from evomerge.export.passthrough import passthrough_ok, passthrough_recipe
from evomerge.merge import routed_layers
from evomerge.merge.recipe import Recipe
from evomerge.merge.routed_layers import STORED_LAYERS, decoder_of
from evomerge.merge.routing import MERGED

ROUTED_MODEL_TYPE = "evomerge_routed"
MODELING_FILE = "modeling_evomerge_routed.py"

_MODEL_CLASS = '''

# -- the routed model classes, written by evomerge.export.routed --------------------------

from transformers import {config_class}, {model_class}  # noqa: E402


class EvomergeRoutedConfig({config_class}):
    model_type = "{model_type}"


class EvomergeRoutedForCausalLM({model_class}):
    """{model_class} whose decoder runs a routing path over its stored layers."""

    config_class = EvomergeRoutedConfig

    def __init__(self, config):
        routing = config.evomerge_routing
        stored = path_config(config, routing.get("stored_layer_types"),
                             len(routing["stored"]))
        super().__init__(stored)
        route_stored(self, [(k, s) for k, s in routing["path"]], config)
'''


def export_routed(model: torch.nn.Module, out_dir: Path | str, *,
                  recipe: Recipe | None = None, copy_from: Path | str | None = None,
                  overwrite: bool = False, max_shard_bytes: int = 5 * 2**30) -> Path:
    """Write ``model`` (from :func:`~evomerge.merge.routed_model.build_routed`) to
    ``out_dir`` atomically. ``recipe`` (the one it was built from) is recorded, names
    the stored layers and gives the mergekit config; ``copy_from`` is the folder whose
    tokenizer and generation config travel with it (default: the embeddings model's)."""
    hops = list(decoder_of(model).layers)
    plain = all(h.scale == 1.0 for h in hops)
    copy_from = copy_from or _tokenizer_folder(recipe)
    with CheckpointWriter(out_dir, max_shard_bytes=max_shard_bytes, overwrite=overwrite,
                          copy_from=copy_from) as writer:
        _add_frame(writer, model)
        config = model.config.to_dict()
        if plain:
            for i, hop in enumerate(hops):
                _add_layer(writer, f"model.layers.{i}.", hop.layer)
            config["architectures"] = [type(model).__name__]
            mergekit = passthrough_recipe(recipe.routing, recipe.dtype) if passthrough_ok(
                recipe) else None
            if mergekit is not None:
                from evomerge.export.mergekit_yaml import mergekit_yaml

                writer.write_text("mergekit_config.yml", mergekit_yaml(mergekit))
        else:
            stored = _stored_layers(hops)
            for k, first in enumerate(stored.firsts):
                _add_layer(writer, f"model.{STORED_LAYERS}.{k}.", hops[first].layer)
            config.update(_routed_config(model, config, stored, recipe))
            writer.write_text(MODELING_FILE, modeling_code(model))
        writer.write_config(config)
        if recipe is not None:
            writer.write_text("evomerge_recipe.yaml", recipe.to_yaml())
    return Path(out_dir)


def export_recipe(recipe: Recipe, out_dir: Path | str, *, device: str = "cpu",
                  dtype: torch.dtype = torch.float32, **options: Any) -> Path:
    """Build a routed recipe from its model folders and export it (``options`` as for
    :func:`export_routed`)."""
    from evomerge.merge.routed_model import routed_from_folders

    check_target(Path(out_dir), options.get("overwrite", False))  # before any model loads
    model = routed_from_folders(recipe, device=device, dtype=dtype)
    return export_routed(model, out_dir, recipe=recipe, **options)


def modeling_code(model: torch.nn.Module) -> str:
    """The shipped modeling file: :mod:`evomerge.merge.routed_layers` as it is, and the
    routed classes over ``model``'s own architecture."""
    text = Path(routed_layers.__file__).read_text()
    return text + _MODEL_CLASS.format(config_class=type(model.config).__name__,
                                      model_class=type(model).__name__,
                                      model_type=ROUTED_MODEL_TYPE)


class _Stored:
    """The distinct layers of a path: each hop's stored index, and the first hop of each."""

    def __init__(self) -> None:
        self.index_of_hop: list[int] = []
        self.firsts: list[int] = []


def _stored_layers(hops: list[torch.nn.Module]) -> _Stored:
    out, seen = _Stored(), {}
    for i, hop in enumerate(hops):
        key = tuple(id(p) for p in hop.layer.parameters())  # the layer's own weights
        if key not in seen:
            seen[key] = len(out.firsts)
            out.firsts.append(i)
        out.index_of_hop.append(seen[key])
    return out


def _routed_config(model: torch.nn.Module, config: dict[str, Any], stored: _Stored,
                   recipe: Recipe | None) -> dict[str, Any]:
    types = config.get("layer_types")
    hops = decoder_of(model).layers
    path = recipe.routing.path if recipe is not None else None
    return {
        "model_type": ROUTED_MODEL_TYPE,
        "architectures": ["EvomergeRoutedForCausalLM"],
        "auto_map": {"AutoConfig": f"{MODELING_FILE[:-3]}.EvomergeRoutedConfig",
                     "AutoModelForCausalLM": f"{MODELING_FILE[:-3]}.EvomergeRoutedForCausalLM"},
        "evomerge_routing": {
            "base_model_type": config["model_type"],
            "base_architecture": type(model).__name__,
            "stored": [{"model": path[i].model, "layer": path[i].layer} if path else {"hop": i}
                       for i in stored.firsts],
            "stored_layer_types": [types[i] for i in stored.firsts] if types else None,
            "path": [[k, hop.scale] for k, hop in zip(stored.index_of_hop, hops)],
        },
    }


def _add_frame(writer: CheckpointWriter, model: torch.nn.Module) -> None:
    """Everything outside the layers: embeddings, final norm, head (once when tied)."""
    tied = getattr(model.config, "tie_word_embeddings", False)
    seen = set()
    for name, tensor in model.state_dict().items():
        if id(tensor) in seen or (tied and name == "lm_head.weight"):
            continue
        seen.add(id(tensor))
        writer.add(name, tensor.detach().contiguous())


def _add_layer(writer: CheckpointWriter, prefix: str, layer: torch.nn.Module) -> None:
    for name, tensor in layer.state_dict().items():
        writer.add(prefix + name, tensor.detach())


def _tokenizer_folder(recipe: Recipe | None) -> str | None:
    if recipe is None:
        return None
    if recipe.tokenizer_source:
        return recipe.tokenizer_source
    frame = recipe.routing.embeddings if recipe.routing else None
    if frame and frame != MERGED:
        return frame
    return recipe.base_model or (recipe.source_models() or [None])[0]

