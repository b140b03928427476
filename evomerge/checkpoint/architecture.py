"""Architecture facts from tensor names: which layer a tensor belongs to and which block.

Decoder-only checkpoints keep their transformer blocks in one numbered container; the
regexes here are anchored on that container, so a name like ``model.layers.12.mlp.up_proj
.weight`` is layer 12 whatever the family calls its sub-modules. Containers known:

====================================  =====================================================
``model.layers.N.``                   Llama, Mistral, Mixtral, Qwen2/3, Gemma 1/2/3, Phi, Phi-3
``model.language_model.layers.N.``    Gemma 3 (and other) multimodal wrappers
``language_model.model.layers.N.``    LLaVA-style vision-language models: the language model
``vision_tower.encoder.layers.N.``    ... and their vision tower (``vision_tower.vision_model
                                      .encoder.layers.N.``, ``model.vision_tower...`` too;
                                      Mistral 3's ``vision_tower.transformer.layers.N.``)
``vision_model.model.layers.N.``      Llama 4's vision model
``visual.blocks.N.``                  Qwen2-VL's and Qwen2.5-VL's vision tower
``model.visual.blocks.N.``            Qwen3-VL's vision tower (and its projector's
                                      ``model.visual.deepstack_merger_list.N.``)
``model.decoder.layers.N.``           OPT; Whisper's decoder (``model.encoder.layers.N.``:
                                      its encoder)
``encoder.block.N.`` / ``decoder.block.N.``  T5's encoder and decoder
``transformer.h.N.`` / ``h.N.``       GPT-2 (with or without the ``transformer.`` prefix)
``gpt_neox.layers.N.``                GPT-NeoX / Pythia
====================================  =====================================================

A vision-language or encoder-decoder checkpoint has two stacks of blocks (or more);
:func:`layer_stack` tells them apart (a merge interpolates each over its own layers).

Inside a block, the sub-module decides the group: everything under the attention module
(``self_attn.``, ``attn.``, ``attention.``) is ``"attention"`` -- per-head q/k norms included,
as mergekit's ``self_attn`` filter would match them -- everything under the MLP
(``mlp.``, ``block_sparse_moe.``, ``feed_forward.``, OPT's ``fc1``/``fc2``) is ``"mlp"``, and a
block-level module whose name says ``norm`` (or GPT-2's ``ln_1``/``ln_2``) is ``"norm"``.

>>> tensor_info("model.layers.3.self_attn.q_proj.weight")
TensorInfo(layer=3, group='attention')
>>> tensor_info("transformer.h.0.mlp.c_fc.weight")
TensorInfo(layer=0, group='mlp')
>>> tensor_info("lm_head.weight")
TensorInfo(layer=None, group='head')
>>> rename_layer("model.layers.3.mlp.down_proj.weight", 7)
'model.layers.7.mlp.down_proj.weight'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

TensorGroup = Literal["embedding", "attention", "mlp", "norm", "head", "other"]

# The numbered container of transformer blocks; ``prefix`` ends just before the index.
_LAYER_RE = re.compile(
    r"^(?P<prefix>(?:model\.(?:language_model\.|decoder\.|encoder\.)?|gpt_neox\."
    r"|language_model\.model\.|(?:model\.)?vision_tower\.(?:vision_model\.)?encoder\."
    r"|vision_tower\.transformer\.|vision_model\.model\.)layers\.|(?:transformer\.)?h\."
    r"|(?:model\.)?visual\.blocks\.|model\.visual\.deepstack_merger_list\."
    r"|(?:encoder|decoder)\.block\.)"
    r"(?P<layer>\d+)\.(?P<rest>.+)$"
)
_ATTENTION_RE = re.compile(r"^(?:self_attn|attn|attention|self_attention)\.")
_MLP_RE = re.compile(r"^(?:mlp|block_sparse_moe|feed_forward|fc1|fc2)\.")
_BLOCK_NORM_RE = re.compile(r"^(?:[a-z_]*norm[a-z_0-9]*|ln_\d+)\.")

# Outside the blocks: the model's own top-level modules, one parameter deep.
_TOP_RE = re.compile(
    r"^(?:model\.(?:language_model\.|decoder\.)?|transformer\.|gpt_neox\.|language_model\.model\."
    r"|language_model\.)?(?P<module>[a-z_]+)\.[a-z_]+$"
)
_HEAD_MODULES = frozenset({"lm_head", "embed_out"})
TOKEN_EMBEDDING_MODULES = frozenset({"embed_tokens", "wte", "embed_in"})
_POSITION_EMBEDDING_MODULES = frozenset({"wpe", "embed_positions"})
_FINAL_NORM_MODULES = frozenset({"norm", "ln_f", "final_layernorm", "final_layer_norm"})


#: the config.json keys that hold the number of blocks, by family: ``num_hidden_layers``
#: (Llama, Mistral, Qwen, Gemma, Phi, OPT, GPT-NeoX), ``n_layer`` (GPT-2, BLOOM, Falcon's
#: older configs), ``n_layers`` (MPT), ``num_layers`` (GPT-Neo, ChatGLM); multimodal
#: configs keep the language model's under ``text_config``
LAYER_COUNT_KEYS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers")


#: config.json lists with one entry per block (Gemma 2/3, Qwen 3: sliding or full attention;
#: Llama 4: whether a block uses rotary embeddings)
PER_LAYER_KEYS = ("layer_types", "no_rope_layers")

#: config.json lists of block indices (Llama 4: the blocks with experts)
LAYER_INDEX_KEYS = ("moe_layers",)


def with_layer_count(config: dict, sources: list[int],
                     keys: tuple[str, ...] = LAYER_COUNT_KEYS) -> dict:
    """``config`` (a config.json mapping) for a model whose block ``i`` is source block
    ``sources[i]``: every layer-count key of ``keys`` it has set to ``len(sources)``,
    every per-block list re-indexed, in its ``text_config`` too; a copy, the input is
    left alone.

    >>> with_layer_count({"model_type": "gpt2", "n_layer": 2}, [0, 1, 1])
    {'model_type': 'gpt2', 'n_layer': 3}
    >>> with_layer_count({"text_config": {"num_hidden_layers": 2,
    ...                   "layer_types": ["sliding", "full"]}}, [1, 0, 1])
    {'text_config': {'num_hidden_layers': 3, 'layer_types': ['full', 'sliding', 'full']}}
    >>> with_layer_count({"num_hidden_layers": 2, "moe_layers": [1]}, [1, 0, 1])
    {'num_hidden_layers': 3, 'moe_layers': [0, 2]}
    """
    out = dict(config)
    for key in keys:
        if key in out:
            out[key] = len(sources)
    for key in PER_LAYER_KEYS:
        if isinstance(out.get(key), list):
            out[key] = [out[key][i] for i in sources]
    for key in LAYER_INDEX_KEYS:
        if isinstance(out.get(key), list):
            out[key] = [i for i, s in enumerate(sources) if s in out[key]]
    if isinstance(out.get("text_config"), dict):
        out["text_config"] = with_layer_count(out["text_config"], sources, keys)
    return out


def with_vocab_size(config: dict, rows: int) -> dict:
    """``config`` with its vocabulary size (``text_config``'s in a multimodal config) set
    to ``rows``; a copy.

    >>> with_vocab_size({"vocab_size": 64}, 66)
    {'vocab_size': 66}
    """
    out = dict(config)
    if "vocab_size" not in out and isinstance(out.get("text_config"), dict):
        out["text_config"] = with_vocab_size(out["text_config"], rows)
    else:
        out["vocab_size"] = rows
    return out


@dataclass(frozen=True)
class TensorInfo:
    """Where a tensor sits: its block index (``None`` outside the blocks) and its group."""

    layer: int | None
    group: TensorGroup


@lru_cache(maxsize=65536)  # merges ask about the same few hundred names over and over
def tensor_info(name: str) -> TensorInfo:
    """Layer index and group of a tensor name (``"other"`` when no rule applies).

    >>> tensor_info("model.layers.1.post_attention_layernorm.weight")
    TensorInfo(layer=1, group='norm')
    >>> tensor_info("gpt_neox.embed_in.weight")
    TensorInfo(layer=None, group='embedding')
    >>> tensor_info("model.vision_tower.patch_embed.weight")
    TensorInfo(layer=None, group='other')
    """
    m = _LAYER_RE.match(name)
    if m:
        rest = m["rest"]
        if _ATTENTION_RE.match(rest):
            group: TensorGroup = "attention"
        elif _MLP_RE.match(rest):
            group = "mlp"
        elif _BLOCK_NORM_RE.match(rest):
            group = "norm"
        else:
            group = "other"
        return TensorInfo(int(m["layer"]), group)
    top = _TOP_RE.match(name)
    module = top["module"] if top else None
    if module in _HEAD_MODULES:
        return TensorInfo(None, "head")
    if module in TOKEN_EMBEDDING_MODULES or module in _POSITION_EMBEDDING_MODULES:
        return TensorInfo(None, "embedding")
    if module in _FINAL_NORM_MODULES:
        return TensorInfo(None, "norm")
    return TensorInfo(None, "other")


def layer_stack(name: str) -> str | None:
    """The container of the block ``name`` lies in (its name up to the block index), or
    ``None`` outside blocks. Decoder-only models have one; vision-language models two.

    >>> layer_stack("vision_tower.encoder.layers.2.mlp.fc1.weight")
    'vision_tower.encoder.layers.'
    >>> layer_stack("language_model.model.layers.0.mlp.up_proj.weight")
    'language_model.model.layers.'
    """
    m = _LAYER_RE.match(name)
    return m["prefix"] if m else None


def layer_prefix(name: str) -> str | None:
    """The name up to and including the block index and its dot, or ``None`` outside blocks.

    >>> layer_prefix("transformer.h.11.ln_1.weight")
    'transformer.h.11.'
    >>> layer_prefix("model.norm.weight") is None
    True
    """
    m = _LAYER_RE.match(name)
    return f"{m['prefix']}{m['layer']}." if m else None


def rename_layer(name: str, new_layer: int) -> str:
    """The same tensor name in block ``new_layer`` (for frankenmerge / passthrough slices).

    >>> rename_layer("gpt_neox.layers.0.attention.dense.bias", 5)
    'gpt_neox.layers.5.attention.dense.bias'
    """
    m = _LAYER_RE.match(name)
    if m is None:
        raise ValueError(f"tensor {name!r} is not inside a numbered layer; it cannot be renamed")
    if new_layer < 0:
        raise ValueError(f"layer index must be >= 0, but got new_layer={new_layer}")
    return f"{m['prefix']}{new_layer}.{m['rest']}"


def num_layers(names: Iterable[str]) -> int:
    """Number of blocks: one more than the highest block index among ``names`` (0 if none).

    >>> num_layers(["model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight",
    ...             "model.layers.1.mlp.up_proj.weight"])
    2
    """
    layers = [tensor_info(n).layer for n in names]
    return max((i for i in layers if i is not None), default=-1) + 1


def is_token_embedding(name: str) -> bool:
    """Whether ``name`` is the token-embedding matrix (the one an output head can tie to).

    >>> is_token_embedding("transformer.wte.weight"), is_token_embedding("transformer.wpe.weight")
    (True, False)
    """
    top = _TOP_RE.match(name)
    return bool(top) and top["module"] in TOKEN_EMBEDDING_MODULES and name.endswith(".weight")


def is_output_head(name: str) -> bool:
    """Whether ``name`` is an output head's weight matrix (``lm_head.weight``, ``embed_out.weight``).

    >>> is_output_head("lm_head.weight"), is_output_head("lm_head.bias")
    (True, False)
    """
    return tensor_info(name).group == "head" and name.endswith(".weight")


def filter_matches(filter: str | None, name: str) -> bool:
    """mergekit's rule for a per-parameter ``filter``: a plain substring test on the name.

    ``None`` and ``"*"`` match every tensor; an empty tensor name matches only those two.
    (mergekit 0.1.5, ``mergekit.config.evaluate_setting``.)

    >>> filter_matches("self_attn", "model.layers.0.self_attn.q_proj.weight")
    True
    >>> filter_matches("mlp", "model.layers.0.self_attn.q_proj.weight")
    False
    >>> filter_matches("*", "lm_head.weight")
    True
    """
    return filter is None or filter == "*" or (bool(name) and filter in name)
