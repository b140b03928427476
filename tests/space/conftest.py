"""Tiny local models for the search-space tests."""

from pathlib import Path

import pytest

from evomerge.testing.random_models import save_perturbed, save_random_llama


@pytest.fixture(scope="session")
def tiny4(tmp_path_factory) -> dict[str, Path]:
    """A random 4-layer base (width 32) and three seeded "fine-tunes" of it: a, b, c."""
    root = tmp_path_factory.mktemp("tiny4")
    base = save_random_llama(root / "base", seed=0, hidden_size=32, num_layers=4)
    tuned = {name: save_perturbed(base, root / name, seed=seed, scale=0.02)
             for seed, name in enumerate("abc", start=1)}
    return {"base": base, **tuned}
