"""A checkpoint's modules, as mergekit's ``modules`` config key names them.

mergekit splits a model into modules, each with its own stack of layers, and a config may
give each module its own ``models`` or ``slices``. A model with one stack of layers is one
module, ``default``. A vision-language architecture that mergekit defines module by module
has a text decoder, a vision tower and a projector, an encoder-decoder (T5, Whisper) an
encoder and a decoder; their tensors are told apart by name prefix, and each module's
depth sits under its own ``config.json`` key.
Other vision-language checkpoints (LLaVA) have no module names here: mergekit infers
theirs from transformers' internal layout.

>>> split_modules("LlamaForCausalLM", ["model.layers.0.mlp.up_proj.weight", "lm_head.weight"])
{'default': ['model.layers.0.mlp.up_proj.weight', 'lm_head.weight']}
>>> sorted(split_modules("Mistral3ForConditionalGeneration",
...     ["language_model.model.norm.weight", "vision_tower.ln_pre.weight"]))
['multi_modal_projector', 'text_decoder', 'vision_tower']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evomerge.checkpoint.architecture import layer_stack

DEFAULT_MODULE = "default"

@dataclass(frozen=True)
class Module:
    """One module of a modular architecture, from mergekit 0.1.5's definition of it.

    ``prefixes``: its tensors' names start with one of these (the longest prefix of any
    module that matches decides). ``layer_count_key``: the dotted config.json key of its
    depth (``None``: no key holds it; mergekit gives such a module no layers, or a fixed
    number, as Qwen3-VL's projector's three ``deepstack_merger_list.N``). ``late``: name
    prefixes of its tensors outside layers that mergekit lists after the layers (final
    norms, heads): they come from a merge's last slice, every other one from the first. ``last_layer``: name
    prefixes of tensors mergekit lists as layers without a layer index (Qwen2-VL's merger
    MLP, a fixed two "layers" of the same names): every planned layer writes them again
    and the last write stays, so they come from the last slice at ``t = 1``.
    """

    prefixes: tuple[str, ...]
    layer_count_key: str | None
    late: tuple[str, ...] = ()
    last_layer: tuple[str, ...] = ()


def _decoder(prefix: str, key: str) -> Module:
    """A text decoder under ``prefix``: embeddings first, final norm and head last."""
    return Module((prefix,), key, late=(f"{prefix}model.norm.", f"{prefix}lm_head."))


_PROJECTOR = Module(("multi_modal_projector.",), None)


def _qwen_vl(text_key: str) -> dict[str, Module]:
    """Qwen2-VL and Qwen2.5-VL: the merger MLP two layers without an index (mergekit's
    ``override_num_layers: 2``)."""
    return {
        "text_decoder": Module(("model.", "lm_head."), text_key,
                               late=("model.norm.", "lm_head.")),
        "vision_tower": Module(("visual.",), "vision_config.depth"),
        "multi_modal_projector": Module(("visual.merger.",), None,
                                        last_layer=("visual.merger.mlp.",)),
    }


#: mergekit 0.1.5's modular architectures: vision-language (its ``mistral3.json``,
#: ``gemma3vl.json``, ``llama4.json``, ``qwen2_vl.json``, ``qwen2_5_vl.json`` and
#: ``qwen3_vl_dense.json``) and encoder-decoder (``t5.json``, ``whisper.json``)
MODULAR_ARCHITECTURES: dict[str, dict[str, Module]] = {
    "Mistral3ForConditionalGeneration": {
        "text_decoder": _decoder("language_model.", "text_config.num_hidden_layers"),
        "vision_tower": Module(("vision_tower.",), "vision_config.num_hidden_layers"),
        "multi_modal_projector": _PROJECTOR,
    },
    "Gemma3ForConditionalGeneration": {
        "text_decoder": _decoder("language_model.", "text_config.num_hidden_layers"),
        # published checkpoints nest it under ``vision_model.``; transformers 5 does not
        "vision_tower": Module(("vision_tower.",), "vision_config.num_hidden_layers",
                               late=("vision_tower.vision_model.post_layernorm.",
                                     "vision_tower.post_layernorm.")),
        "multi_modal_projector": _PROJECTOR,
    },
    "Llama4ForConditionalGeneration": {
        "text_decoder": _decoder("language_model.", "text_config.num_hidden_layers"),
        "vision_model": Module(("vision_model.",), "vision_config.num_hidden_layers",
                               late=("vision_model.layernorm_post.",
                                     "vision_model.vision_adapter.")),
        "multi_modal_projector": _PROJECTOR,
    },
    # mergekit reads and writes Qwen2-VL's text depth at the top of config.json
    "Qwen2VLForConditionalGeneration": _qwen_vl("num_hidden_layers"),
    "Qwen2_5_VLForConditionalGeneration": _qwen_vl("text_config.num_hidden_layers"),
    "Qwen3VLForConditionalGeneration": {
        "text_decoder": Module(("model.language_model.", "lm_head."),
                               "text_config.num_hidden_layers",
                               late=("model.language_model.norm.", "lm_head.")),
        "vision_tower": Module(("model.visual.",), "vision_config.depth"),
        "multi_modal_projector": Module(("model.visual.merger.",
                                         "model.visual.deepstack_merger_list."), None),
    },
    # T5's encoder depth is ``num_layers`` (mergekit's ``num_hidden_layers``, its alias);
    # the shared embedding (and an untied head) is a module of its own, without layers
    "T5ForConditionalGeneration": {
        "encoder": Module(("encoder.",), "num_layers", late=("encoder.final_layer_norm.",)),
        "decoder": Module(("decoder.",), "num_decoder_layers",
                          late=("decoder.final_layer_norm.",)),
        "shared": Module(("shared.", "lm_head."), None, late=("lm_head.",)),
    },
    # whisper.json's decoder prefix lacks its dot ("model.decoder"), so mergekit 0.1.5
    # finds none of the decoder's tensors; this is the layout it means, with the output
    # projection (stored only when untied) after the decoder's layers
    "WhisperForConditionalGeneration": {
        "decoder": Module(("model.decoder.", "proj_out."), "decoder_layers",
                          late=("model.decoder.layer_norm.", "proj_out.")),
        "encoder": Module(("model.encoder.",), "encoder_layers",
                          late=("model.encoder.layer_norm.",)),
    },
}


def architecture_of(config: dict) -> str | None:
    """The architecture a config.json names (its first), or ``None``.

    >>> architecture_of({"architectures": ["LlamaForCausalLM"]})
    'LlamaForCausalLM'
    """
    return next(iter(config.get("architectures") or []), None)


def module_facts(architecture: str | None, module: str) -> Module | None:
    """``module``'s facts in a modular architecture; ``None`` for the one module of any
    other model (its layer count sits at the top of config.json).

    >>> module_facts("Qwen2VLForConditionalGeneration", "vision_tower").layer_count_key
    'vision_config.depth'
    """
    return MODULAR_ARCHITECTURES.get(architecture or "", {}).get(module)


def split_modules(architecture: str | None, names: Sequence[str]) -> dict[str, list[str]]:
    """Module name -> the tensor names (in ``names``' order) that belong to it.

    Raises ``ValueError`` where the modules cannot be told apart: a tensor outside every
    module of a modular architecture, or several stacks of layers in an architecture
    without module names.
    """
    modules = MODULAR_ARCHITECTURES.get(architecture or "")
    if modules is None:
        stacks = sorted({s for s in map(layer_stack, names) if s is not None})
        if len(stacks) > 1:
            raise ValueError(f"architecture {architecture!r} has several stacks of layers "
                             f"({', '.join(stacks)}) and no module names (mergekit infers "
                             "its modules from transformers' internal layout); merge it "
                             "with 'models'")
        return {DEFAULT_MODULE: list(names)}
    out: dict[str, list[str]] = {m: [] for m in modules}
    for name in names:
        matches = [(len(p), m) for m, f in modules.items() for p in f.prefixes
                   if name.startswith(p)]
        owner = max(matches)[1] if matches else None
        if owner is None:
            raise ValueError(f"tensor {name!r} is in none of the modules of "
                             f"{architecture!r} ({', '.join(modules)})")
        out[owner].append(name)
    return out
