"""Hops: layers visited along a routing path, sharing their parameters, each with its own
key-value cache slot.

A decoder runs its ``layers`` in order, and each layer's attention keys the cache by its
``layer_idx``. A path that visits one layer twice needs two cache slots but one copy of
the weights: each hop holds a shallow copy of the layer whose submodule table is its
own, with its own shallow copy of the attention carrying the hop's position as
``layer_idx``. (A plain ``copy.copy`` shares the ``_modules`` dict: replacing the
attention on the copy would silently replace it on the source layer too.)

This file imports only torch and the standard library, because a routed checkpoint
ships it as its modeling code (:mod:`evomerge.export.routed`): the code that routes in
memory and the code a folder loads with are one text.

>>> import torch
>>> class Attn(torch.nn.Module):
...     def __init__(self):
...         super().__init__(); self.layer_idx = 0; self.proj = torch.nn.Linear(2, 2)
>>> class Layer(torch.nn.Module):
...     def __init__(self):
...         super().__init__(); self.self_attn = Attn()
>>> layer = Layer()
>>> hop = RoutedHop(layer, index=3, scale=0.5)
>>> hop.layer.self_attn.layer_idx, layer.self_attn.layer_idx
(3, 0)
>>> hop.layer.self_attn.proj is layer.self_attn.proj, list(hop.parameters())
(True, [])
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

#: the attribute a routed checkpoint's decoder keeps its stored (distinct) layers under
STORED_LAYERS = "stored_layers"


class RoutedHop(torch.nn.Module):
    """Position ``index`` of a path: ``layer`` with its input scaled by ``scale``.

    The layer is held unregistered, so the hop owns no parameters: they stay with the
    module that owns the layer (a resident source model, or a checkpoint's stored
    layers), and a path that visits a layer twice holds its weights once.
    """

    def __init__(self, layer: torch.nn.Module, index: int, scale: float = 1.0):
        super().__init__()
        self.__dict__["layer"] = own_copy(layer, index)
        self.index = index
        self.scale = float(scale)
        if hasattr(layer, "attention_type"):  # decoders that pick a mask per layer read it
            self.attention_type = layer.attention_type

    def forward(self, *args, **kwargs):
        if self.scale != 1.0:  # skipped at 1, so an unscaled hop is bit-identical
            if args:
                args = (args[0] * self.scale, *args[1:])
            else:  # decoders that pass the hidden state by name
                kwargs["hidden_states"] = kwargs["hidden_states"] * self.scale
        return self.layer(*args, **kwargs)

    def train(self, mode: bool = True) -> RoutedHop:
        super().train(mode)
        self.layer.train(mode)  # unregistered, so Module.train would not reach it
        return self

    def extra_repr(self) -> str:
        return f"index={self.index}, scale={self.scale}, layer={type(self.layer).__name__}"


def own_copy(module: torch.nn.Module, index: int) -> torch.nn.Module:
    """A shallow copy of ``module`` with a submodule table of its own, in which every
    submodule that holds a ``layer_idx`` is copied the same way and given ``index``.
    Parameters and buffers stay shared."""
    out = copy.copy(module)
    out.__dict__["_modules"] = dict(module._modules)
    if hasattr(module, "layer_idx"):
        out.__dict__["layer_idx"] = index
    for name, child in module._modules.items():
        if child is not None and any(hasattr(m, "layer_idx") for m in child.modules()):
            out._modules[name] = own_copy(child, index)
    return out


def decoder_of(causal_lm: torch.nn.Module) -> torch.nn.Module:
    """The module that holds the decoder layers (``model`` in Llama-like models)."""
    decoder = getattr(causal_lm, getattr(causal_lm, "base_model_prefix", "model"), None)
    if decoder is None or not isinstance(getattr(decoder, "layers", None),
                                         torch.nn.ModuleList):
        raise TypeError(f"{type(causal_lm).__name__} keeps no decoder layers at "
                        "'model.layers'; routing supports Llama-like decoders")
    return decoder


def path_config(config, layer_types: Sequence[str] | None, length: int):
    """``config`` for a decoder of ``length`` layers, with one layer type per layer."""
    out = copy.deepcopy(config)
    out.num_hidden_layers = length
    if layer_types is not None:
        out.layer_types = list(layer_types)
    return out


def install_hops(causal_lm: torch.nn.Module, layers: Sequence[torch.nn.Module],
                 scales: Sequence[float], config) -> None:
    """Make ``causal_lm`` run ``layers`` in order, hop ``i`` scaling its input by
    ``scales[i]``, under ``config`` (its layer count is the path's: the decoder loop and
    the cache read it)."""
    decoder = decoder_of(causal_lm)
    decoder.layers = torch.nn.ModuleList(
        RoutedHop(layer, i, scale) for i, (layer, scale) in enumerate(zip(layers, scales)))
    # the attention kind the model was built with (the masks are made for it); a config
    # read from a file has none until a model is built from it
    implementation = getattr(causal_lm.config, "_attn_implementation", None)
    if implementation is not None:
        config._attn_implementation = implementation
    causal_lm.config = config
    decoder.config = config


def route_stored(causal_lm: torch.nn.Module, path: Sequence[tuple[int, float]],
                 config) -> None:
    """Route a model built with its distinct layers as ``model.layers``: they move to
    ``model.stored_layers`` (where a routed checkpoint stores them) and the path of
    (stored index, scale) pairs becomes ``model.layers``."""
    decoder = decoder_of(causal_lm)
    stored = decoder.layers
    setattr(decoder, STORED_LAYERS, stored)
    install_hops(causal_lm, [stored[k] for k, _ in path], [s for _, s in path], config)
