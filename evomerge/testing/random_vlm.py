"""Random tiny vision-language checkpoints, for tests of merging them.

Saved as transformers writes them: LLaVA's language model blocks under
``language_model.model.layers.N``, its vision tower's under
``vision_tower.encoder.layers.N``, and the ``multi_modal_projector`` between them;
Mistral 3's the same but for its vision tower's ``vision_tower.transformer.layers.N``;
Llama 4's vision model under ``vision_model.model.layers.N``; Qwen2.5-VL's and
Qwen3-VL's as transformers writes them too. Gemma 3 and Qwen2-VL are
saved as their published checkpoints are laid out, which mergekit 0.1.5 reads (Gemma 3's
vision tower under ``vision_tower.vision_model.``; Qwen2-VL's text depth at the top of
config.json too).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> path = save_random_llava(d / "vlm", seed=0)
>>> from evomerge.checkpoint.reader import CheckpointReader
>>> names = CheckpointReader(path).tensor_names()
>>> "vision_tower.encoder.layers.2.mlp.fc1.weight" in names
True
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def save_initialised(model_class, config, seed: int, out_dir: Path | str) -> Path:
    """Save ``model_class(config)`` initialised from ``seed``; the caller's RNG is left
    alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    return out


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
    return save_initialised(LlavaForConditionalGeneration, config, seed, out_dir)


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
    return save_initialised(Mistral3ForConditionalGeneration, config, seed, out_dir)


def _sizes(hidden_size: int) -> dict:
    return dict(hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                num_attention_heads=4)


def save_random_gemma3(out_dir: Path | str, seed: int = 0, text_layers: int = 2,
                       vision_layers: int = 3, hidden_size: int = 32) -> Path:
    """Save a randomly initialised Gemma 3 (SigLIP vision tower without its head, as
    Gemma 3 has none)."""
    from safetensors.torch import load_file, save_file
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    text = dict(vocab_size=64, num_hidden_layers=text_layers, num_key_value_heads=2,
                head_dim=hidden_size // 4, sliding_window=8, **_sizes(hidden_size))
    vision = dict(num_hidden_layers=vision_layers, image_size=28, patch_size=14,
                  vision_use_head=False, **_sizes(hidden_size))
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                          image_token_index=63, boi_token_index=61, eoi_token_index=62)
    out = save_initialised(Gemma3ForConditionalGeneration, config, seed, out_dir)
    # transformers 5 drops the vision tower's ``vision_model.`` level that published
    # checkpoints (and mergekit's definition) have; put it back
    for f in out.glob("*.safetensors"):
        tensors = load_file(f)
        save_file({n.replace("vision_tower.", "vision_tower.vision_model.", 1): t
                   for n, t in tensors.items()}, f, metadata={"format": "pt"})
    return out


def save_random_llama4(out_dir: Path | str, seed: int = 0, text_layers: int = 2,
                       vision_layers: int = 3, hidden_size: int = 32) -> Path:
    """Save a randomly initialised Llama 4 (two experts in every text layer)."""
    from transformers import Llama4Config, Llama4ForConditionalGeneration

    text = dict(vocab_size=64, num_hidden_layers=text_layers, num_key_value_heads=2,
                head_dim=hidden_size // 4, intermediate_size_mlp=2 * hidden_size,
                num_local_experts=2, interleave_moe_layer_step=1, **_sizes(hidden_size))
    vision = dict(num_hidden_layers=vision_layers, image_size=28, patch_size=14,
                  vision_output_dim=hidden_size, projector_input_dim=hidden_size,
                  projector_output_dim=hidden_size, pixel_shuffle_ratio=0.5,
                  **_sizes(hidden_size))
    config = Llama4Config(text_config=text, vision_config=vision, image_token_index=63,
                          boi_token_index=61, eoi_token_index=62)
    return save_initialised(Llama4ForConditionalGeneration, config, seed, out_dir)


def save_random_qwen2_vl(out_dir: Path | str, seed: int = 0, text_layers: int = 2,
                         vision_layers: int = 3, hidden_size: int = 32) -> Path:
    """Save a randomly initialised Qwen2-VL."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    text = dict(vocab_size=64, num_hidden_layers=text_layers, num_key_value_heads=2,
                rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]},
                **_sizes(hidden_size))
    vision = dict(depth=vision_layers, embed_dim=hidden_size // 2, hidden_size=hidden_size,
                  num_heads=2, mlp_ratio=2, patch_size=2, temporal_patch_size=2,
                  spatial_merge_size=1)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, vocab_size=64,
                           image_token_id=60, video_token_id=61, vision_start_token_id=62,
                           vision_end_token_id=63)
    out = save_initialised(Qwen2VLForConditionalGeneration, config, seed, out_dir)
    # published Qwen2-VL configs keep the text depth at the top, where mergekit 0.1.5
    # reads it; transformers 5 writes it under ``text_config`` only
    written = json.loads((out / "config.json").read_text())
    written["num_hidden_layers"] = text_layers
    (out / "config.json").write_text(json.dumps(written, indent=2))
    return out


def _qwen_vl_tokens() -> dict:
    return dict(image_token_id=60, video_token_id=61, vision_start_token_id=62,
                vision_end_token_id=63)


def save_random_qwen2_5_vl(out_dir: Path | str, seed: int = 0, text_layers: int = 2,
                           vision_layers: int = 3, hidden_size: int = 32) -> Path:
    """Save a randomly initialised Qwen2.5-VL (its last vision block with full
    attention, the others windowed)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    text = dict(vocab_size=64, num_hidden_layers=text_layers, num_key_value_heads=2,
                rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]},
                **_sizes(hidden_size))
    vision = dict(depth=vision_layers, hidden_size=hidden_size // 2,
                  out_hidden_size=hidden_size, intermediate_size=hidden_size, num_heads=2,
                  patch_size=2, temporal_patch_size=2, spatial_merge_size=1,
                  fullatt_block_indexes=[vision_layers - 1], window_size=4)
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, vocab_size=64,
                              **_qwen_vl_tokens())
    return save_initialised(Qwen2_5_VLForConditionalGeneration, config, seed, out_dir)


def save_random_qwen3_vl(out_dir: Path | str, seed: int = 0, text_layers: int = 2,
                         vision_layers: int = 3, hidden_size: int = 32) -> Path:
    """Save a randomly initialised Qwen3-VL (dense), with the three deepstack mergers
    mergekit 0.1.5's definition has (one after each of the first three vision blocks)."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    text = dict(vocab_size=64, num_hidden_layers=text_layers, num_key_value_heads=2,
                head_dim=hidden_size // 4, rope_scaling={
                    "rope_type": "default", "mrope_section": [1, 1, 2],
                    "mrope_interleaved": True},
                **_sizes(hidden_size))
    vision = dict(depth=vision_layers, hidden_size=hidden_size // 2,
                  out_hidden_size=hidden_size, intermediate_size=hidden_size, num_heads=2,
                  patch_size=2, temporal_patch_size=2, spatial_merge_size=1,
                  num_position_embeddings=16, deepstack_visual_indexes=[0, 1, 2])
    config = Qwen3VLConfig(text_config=text, vision_config=vision, **_qwen_vl_tokens())
    return save_initialised(Qwen3VLForConditionalGeneration, config, seed, out_dir)
