"""Random tiny LLaVA-style vision-language checkpoints, for tests of merging them.

Saved as transformers writes them: the language model's blocks under
``language_model.model.layers.N``, the vision tower's under
``vision_tower.encoder.layers.N``, and the ``multi_modal_projector`` between them.

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
