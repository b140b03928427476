"""Tiny local Llama checkpoints shared by the merge tests."""

from pathlib import Path

import pytest
from routing_support import save_pair

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


@pytest.fixture(scope="session")
def routing_pair(tmp_path_factory) -> tuple[str, str, dict]:
    """Two unrelated tiny Llamas (3 layers) for the routing tests: their folders and the
    loaded models, which the tests route through and never change."""
    from evomerge.merge.routed_model import load_sources

    a, b = save_pair(tmp_path_factory.mktemp("routing_pair"))
    return str(a), str(b), load_sources([a, b])
