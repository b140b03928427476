"""Random tiny vision-language checkpoints, for tests of merging them.

Saved as transformers writes them: LLaVA's language model blocks under
``language_model.model.layers.N``, its vision tower's under
``vision_tower.encoder.layers.N``, and the ``multi_modal_projector`` between them;
Mistral 3's the same but for its vision tower's ``vision_tower.transformer.layers.N``.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> path = save_random_llava(d / "vlm", seed=0)
>>> from evomerge.checkpoint.reader import CheckpointReader
>>> names = CheckpointReader(path).tensor_names()
>>> "vision_tower.encoder.layers.2.mlp.fc1.weight" in names
True
"""

from __future__ import annotations

from pathlib import Path

import torch


def save_random_llava(out_dir: Path | str, seed: int = 0, text_layers: int = 2,
                      vision_layers: int = 3, hidden_size: int = 32) -> Path:
    """Save a randomly initialised LLaVA (Llama text model, CLIP vision tower)."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    text = LlamaConfig(vocab_size=64, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                       num_hidden_layers=text_layers, num_attention_heads=4,
                       num_key_value_heads=2)
    vision = CLIPVisionConfig(hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                              num_hidden_layers=vision_layers, num_attention_heads=4,
                              image_size=28, patch_size=14, projection_dim=hidden_size)
    config = LlavaConfig(text_config=text, vision_config=vision, image_token_index=63)
    with torch.random.fork_rng(devices=[]):  # seeded init; the caller's RNG is left alone
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    return out


def save_random_mistral3(out_dir: Path | str, seed: int = 0, text_layers: int = 2,
                         vision_layers: int = 3, hidden_size: int = 32) -> Path:
    """Save a randomly initialised Mistral 3 (Mistral text model, Pixtral vision tower)."""
    from transformers import (
        Mistral3Config,
        Mistral3ForConditionalGeneration,
        MistralConfig,
        PixtralVisionConfig,
    )

    sizes = dict(hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                 num_attention_heads=4, head_dim=hidden_size // 4)
    text = MistralConfig(vocab_size=64, num_hidden_layers=text_layers, num_key_value_heads=2,
                         **sizes)
    vision = PixtralVisionConfig(num_hidden_layers=vision_layers, image_size=28,
                                 patch_size=14, **sizes)
    config = Mistral3Config(text_config=text, vision_config=vision, image_token_index=63,
                            spatial_merge_size=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Mistral3ForConditionalGeneration(config)
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    return out
