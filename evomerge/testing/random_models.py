"""Random tiny Llama checkpoints and seeded "fine-tunes" of them, for tests and benchmarks.

These are not trained; they exist so that merges, checkpoint I/O and evaluation can be
exercised on real Hugging Face folders without a hub.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> base = save_random_llama(d / "base", seed=0)
>>> ft = save_perturbed(base, d / "ft", seed=1, scale=0.01)
>>> sorted(p.name for p in ft.iterdir())[:2]
['config.json', 'generation_config.json']
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import LlamaForCausalLM

from evomerge.testing.char_tokenizer import build_char_tokenizer
from evomerge.testing.tiny_llama import tiny_llama_config


def save_random_llama(out_dir: Path | str, seed: int = 0, dtype: torch.dtype = torch.float32,
                      **config_kw) -> Path:
    """Save a randomly initialised Llama (with a char tokenizer) as an HF folder."""
    out = Path(out_dir)
    tok = build_char_tokenizer()
    config = tiny_llama_config(vocab_size=len(tok), **config_kw)
    with torch.random.fork_rng(devices=[]):  # seeded init; the caller's RNG is left alone
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).to(dtype)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def save_perturbed(base_dir: Path | str, out_dir: Path | str, seed: int, scale: float = 0.01,
                   dtype: torch.dtype | None = None) -> Path:
    """Save ``base + scale * N(0, 1)`` noise on every weight: a stand-in for a fine-tune."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype or "auto")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            p.add_((noise * scale).to(p.dtype))
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out)
    return out


def save_edited_copy(src_dir: Path | str, out_dir: Path | str,
                     edit: Callable[[dict[str, torch.Tensor]], object]) -> Path:
    """Copy the single-file model folder ``src_dir`` to ``out_dir`` with its tensors changed
    by ``edit(tensors)`` (which edits the name -> tensor dict in place): a broken or
    mismatched checkpoint for a test.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> base = save_random_llama(d / "base", seed=0)
    >>> headless = save_edited_copy(base, d / "headless", lambda t: t.pop("lm_head.weight"))
    >>> from safetensors import safe_open
    >>> "lm_head.weight" in safe_open(headless / "model.safetensors", "pt").keys()
    False
    """
    from safetensors.torch import load_file, save_file

    out = Path(out_dir)
    shutil.copytree(src_dir, out)
    tensors = load_file(out / "model.safetensors")
    edit(tensors)
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    return out
