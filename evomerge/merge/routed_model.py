"""A routed model in memory: a recipe's layer path over resident source models.

:func:`build_routed` makes a Hugging Face causal LM whose decoder runs the path's hops
(:mod:`evomerge.merge.routed_layers`) between the embeddings model's embeddings and its
final norm and head. Nothing is copied: the hops share the sources' layer parameters,
the frame shares the embeddings model's modules, and building one is a matter of
shallow copies (microseconds per hop), so a worker switches from one routed candidate
to the next without moving weights. The model runs through transformers' ordinary
``forward`` and ``generate`` (each hop with its own cache slot), so any evaluator scores
it like any model.

The sources stay usable and unchanged; several routed models over them may coexist.
A recipe with a weight merge routes through its merged model, passed as
``sources[MERGED]`` (a :class:`~evomerge.merge.live.LiveMerger` live model).

>>> # sources = load_sources(["runs/a", "runs/b"]); model = build_routed(recipe, sources)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from evomerge.errors import ConfigError
from evomerge.merge.recipe import Recipe
from evomerge.merge.routed_layers import (
    STORED_LAYERS,
    decoder_of,
    install_hops,
    path_config,
    route_stored,
)
from evomerge.merge.routing import MERGED, Routing, check_layers, model_key


def build_routed(recipe: Recipe | Routing, sources: Mapping[str, torch.nn.Module], *,
                 into: torch.nn.Module | None = None) -> torch.nn.Module:
    """The routed model of ``recipe``'s routing over ``sources`` (model name, as the
    routing spells it or any spelling of the same folder, -> a loaded causal LM of a
    Llama-like architecture; the recipe's merge under ``MERGED``).

    ``into``, a routed model built before over the same embeddings model, is rebuilt in
    place and returned: a worker's evaluator then keeps its wrapper around one module,
    as it does for weight merges built in place."""
    routing = recipe if isinstance(recipe, Routing) else _routing_of(recipe)
    models = {model_key(name): model for name, model in sources.items()}
    check_layers(routing, {name: m.config.num_hidden_layers for name, m in sources.items()})
    frame = models[model_key(routing.embeddings)]
    for model in routing.models():
        _check_fits(frame, models[model_key(model)], routing.embeddings, model)
    layers = [decoder_of(models[model_key(h.model)]).layers[h.layer] for h in routing.path]
    types = [_layer_type(models[model_key(h.model)], h.layer) for h in routing.path]
    config = path_config(frame.config, None if None in types else types, len(layers))
    if into is not None and into.get_input_embeddings() is not frame.get_input_embeddings():
        raise ConfigError(None, "routing.embeddings", routing.embeddings, "the model to "
                          "rebuild in place was built over another embeddings model")
    shell = into if into is not None else _shell(frame)
    install_hops(shell, layers, [h.scale for h in routing.path], config)
    return shell


def load_sources(models: Sequence[str | Path], *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> dict[str, torch.nn.Module]:
    """Model folders loaded once, in eval mode, keyed by the names given."""
    from transformers import AutoModelForCausalLM

    out = {}
    for name in models:
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, device_map=device)
        out[str(name)] = model.eval()
    return out


def resident_sources(merger) -> dict[str, torch.nn.Module]:
    """A causal LM per model a :class:`~evomerge.merge.live.LiveMerger` holds, whose
    parameters are the merger's resident tensors (no second copy): the sources a
    worker's routed candidates run through, keyed as the merger keys its models."""
    out = {}
    for name, tensors in merger.weights.items():
        model = merger.new_model()
        missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
        tied = getattr(model.config, "tie_word_embeddings", False)
        if unexpected or [m for m in missing if not (tied and m == "lm_head.weight")]:
            raise ConfigError(None, "models", name, "its tensors do not fill a model of its "
                              f"architecture (missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]})")
        if tied:  # assign replaced the embedding; the head must read the new one
            model.tie_weights()
        out[name] = model.eval()
    return out


def routed_from_folders(recipe: Recipe, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """The routed model of ``recipe`` from its model folders: the routed models loaded,
    and the recipe's weight merge, when it has one, built in memory first."""
    routing = _routing_of(recipe)
    sources = load_sources([m for m in routing.models() if m != MERGED], device=device,
                           dtype=dtype)
    if recipe.merge_method is not None:
        from evomerge.merge.live import merged_from_folders

        sources[MERGED] = merged_from_folders(recipe, device=device, dtype=dtype)
    return build_routed(recipe, sources)


def model_from_folders(recipe: Recipe, *, device: str | torch.device = "cpu",
                       dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """The model ``recipe`` makes, in memory, from its model folders: its routed model
    when it routes, else its weight merge."""
    if recipe.routing is not None:
        return routed_from_folders(recipe, device=device, dtype=dtype)
    from evomerge.merge.live import merged_from_folders

    return merged_from_folders(recipe, device=device, dtype=dtype)


def load_routed(folder: str | Path, *, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A routed checkpoint (:mod:`evomerge.export.routed`) loaded without running the code
    it ships: its base architecture from transformers, its stored layers, its path."""
    import json

    import transformers

    config_file = Path(folder) / "config.json"
    data = json.loads(config_file.read_text())
    routing = data.pop("evomerge_routing", None)
    if routing is None:
        raise ConfigError(config_file, "evomerge_routing", None,
                          "not a routed checkpoint (no 'evomerge_routing' in its config)")
    for key in ("model_type", "auto_map", "architectures"):
        data.pop(key, None)
    config = transformers.AutoConfig.for_model(routing["base_model_type"], **data)
    stored = path_config(config, routing.get("stored_layer_types"), len(routing["stored"]))
    model_class = getattr(transformers, routing["base_architecture"])
    model = model_class.from_pretrained(
        folder, config=stored, dtype=dtype, device_map=device,
        key_mapping={rf"^model\.{STORED_LAYERS}\.": "model.layers."})
    route_stored(model, [(k, s) for k, s in routing["path"]], config)
    return model.eval()


def _routing_of(recipe: Recipe) -> Routing:
    if recipe.routing is None:
        raise ConfigError(None, "routing", None, "the recipe has no routing to build")
    return recipe.routing


def _shell(frame: torch.nn.Module) -> torch.nn.Module:
    """A shallow copy of ``frame`` and of its decoder, each with its own submodule
    table, so that installing the path leaves ``frame`` as it was."""
    shell = copy.copy(frame)
    shell.__dict__["_modules"] = dict(frame._modules)
    decoder = decoder_of(frame)
    prefix = next(name for name, child in frame._modules.items() if child is decoder)
    own = copy.copy(decoder)
    own.__dict__["_modules"] = dict(decoder._modules)
    shell._modules[prefix] = own
    return shell


def _layer_type(model: torch.nn.Module, layer: int) -> str | None:
    types = getattr(model.config, "layer_types", None)
    return None if types is None else types[layer]


def _check_fits(frame: torch.nn.Module, model: torch.nn.Module, frame_name: str,
                name: str) -> None:
    """A hop's layer must read and write the frame's hidden states."""
    a, b = frame.config, model.config
    for key in ("model_type", "hidden_size"):
        if getattr(a, key, None) != getattr(b, key, None):
            raise ConfigError(None, "routing.path", name,
                              f"its {key} is {getattr(b, key, None)!r}, the embeddings "
                              f"model {frame_name!r} has {getattr(a, key, None)!r}: a "
                              "path may only join layers of one architecture and width")
