"""Tiny model folders shared by the checkpoint tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evomerge.testing.random_models import save_random_llama


@pytest.fixture(scope="session")
def llama_fp32(tmp_path_factory) -> Path:
    """Untied tiny Llama (hidden 32, 2 layers), float32."""
    return save_random_llama(tmp_path_factory.mktemp("models") / "llama32", seed=0)


@pytest.fixture(scope="session")
def llama_tied(tmp_path_factory) -> Path:
    """Tiny Llama whose output head is tied to the token embedding (no lm_head stored)."""
    return save_random_llama(tmp_path_factory.mktemp("models") / "tied", seed=3,
                             tie_word_embeddings=True)


def _logits(model_dir: Path) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto",
                                                       output_loading_info=True)
    # A weight transformers had to initialise itself would make the comparison meaningless.
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    ids = torch.tensor([[1, 5, 9, 14, 20, 33, 7, 2]])
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture(scope="session")
def logits_of():
    """``logits_of(folder)``: transformers loads the folder and scores a fixed sequence."""
    return _logits
