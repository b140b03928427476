"""Tiny local models and architecture facts for the search-space tests."""

from pathlib import Path

import pytest

from evomerge.testing.random_models import save_perturbed, save_random_llama

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
SHIPPED = sorted(p.name for p in SPACES.glob("*.yaml"))


def llama_tensor_names(num_layers: int, tied: bool = False) -> tuple[str, ...]:
    """The tensor names a Llama checkpoint with ``num_layers`` layers stores, from its
    transformers config on the meta device (no weights, no download)."""
    import torch
    from transformers import LlamaForCausalLM

    from evomerge.testing.random_models import tiny_llama_config

    config = tiny_llama_config(vocab_size=16, hidden_size=16, num_layers=num_layers,
                               num_heads=2, tie_word_embeddings=tied)
    with torch.device("meta"):
        names = list(LlamaForCausalLM(config).state_dict())
    return tuple(n for n in names if not (tied and n == "lm_head.weight"))


def roles_for(space, models: dict[str, Path]) -> tuple[str | None, list[str]]:
    """(base, sources) of the tiny models for a space's roles: two sources unless the
    space names fewer."""
    roles = space.models
    low, high = roles.count_range()
    n = low if high == low else max(low, 2)
    sources = [str(models[k]) for k in ("a", "b", "c")[:n]]
    return (str(models["base"]) if roles.base else None), sources


@pytest.fixture(scope="session")
def tiny4(tmp_path_factory) -> dict[str, Path]:
    """A random 4-layer base and three seeded "fine-tunes" of it (width 32)."""
    root = tmp_path_factory.mktemp("tiny4")
    base = save_random_llama(root / "base", seed=0, hidden_size=32, num_layers=4)
    models = {"base": base}
    for i, name in enumerate(["a", "b", "c"], start=1):
        models[name] = save_perturbed(base, root / name, seed=i, scale=0.02)
    return models
