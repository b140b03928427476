"""Shared fixtures: one ``tiny`` zoo built once per test session."""

from __future__ import annotations

import pytest

from evomerge.zoo.build import Zoo, build_zoo


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory) -> Zoo:
    """A zoo of the ``tiny`` preset (seed 0): base, four experts, data and task YAMLs."""
    return build_zoo(tmp_path_factory.mktemp("zoo") / "tiny", preset="tiny", seed=0)
