"""A checkpoint's modules, as mergekit's ``modules`` config key names them.

mergekit splits a model into modules, each with its own stack of layers, and a config may
give each module its own ``models`` or ``slices``. A model with one stack of layers is one
module, ``default``. A vision-language architecture that mergekit defines module by module
has a text decoder, a vision tower and a projector; their tensors sit under one prefix
each in the checkpoint, and their layer counts under one ``config.json`` section each.
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
    """One module of a modular architecture: the prefix of its tensors in the checkpoint,
    the ``config.json`` section holding its layer count (``None``: it has no layers), and
    whether all its tensors outside layers come from a merge's first slice (mergekit lists
    them as the module's "pre" weights; else only embeddings do, the rest from the last)."""

    prefix: str
    config_section: str | None
    loose_from_first_slice: bool


#: mergekit 0.1.5's modular architectures (its ``mistral3.json``)
MODULAR_ARCHITECTURES: dict[str, dict[str, Module]] = {
    "Mistral3ForConditionalGeneration": {
        "text_decoder": Module("language_model.", "text_config", False),
        "vision_tower": Module("vision_tower.", "vision_config", True),
        "multi_modal_projector": Module("multi_modal_projector.", None, True),
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

    >>> module_facts("Mistral3ForConditionalGeneration", "vision_tower").config_section
    'vision_config'
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
        owner = next((m for m, f in modules.items() if name.startswith(f.prefix)), None)
        if owner is None:
            raise ValueError(f"tensor {name!r} is in none of the modules of "
                             f"{architecture!r} ({', '.join(modules)})")
        out[owner].append(name)
    return out
