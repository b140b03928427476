"""Shared fixtures: one ``tiny`` zoo per test session, and campaign files over it."""

from __future__ import annotations

from pathlib import Path

import pytest
from campaign_support import write_campaign

from evomerge.zoo.build import Zoo, build_zoo


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory) -> Zoo:
    """A zoo of the ``tiny`` preset (seed 0): base, four experts, data and task YAMLs."""
    return build_zoo(tmp_path_factory.mktemp("zoo") / "tiny", preset="tiny", seed=0)


@pytest.fixture
def campaign_file(tiny_zoo, tmp_path) -> Path:
    """A valid campaign over the tiny zoo: random search, 4 documents, 6 evaluations."""
    return write_campaign(tmp_path / "campaign.yaml", tiny_zoo)
