"""Tiny local Llama checkpoints shared by the merge tests."""

from pathlib import Path

import pytest

from evomerge.testing.random_models import save_perturbed, save_random_llama


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """A random base and three seeded "fine-tunes" of it (3 layers, width 32)."""
    root = tmp_path_factory.mktemp("tiny_models")
    base = save_random_llama(root / "base", seed=0, hidden_size=32, num_layers=3)
    models = {"base": base}
    for i, name in enumerate(["a", "b", "c"], start=1):
        models[name] = save_perturbed(base, root / name, seed=i, scale=0.02)
    return models
