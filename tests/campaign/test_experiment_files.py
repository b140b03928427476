"""The recipe campaign files under experiments/: every toy file loads as a campaign over
the tiny zoo (the proving zoo's paths and task names mapped onto it), and every
full-scale file parses as a campaign file."""

from __future__ import annotations

import pytest
import yaml
from campaign_support import REPO

from evomerge.campaign.config import CampaignConfig, campaign_from_dict

EXPERIMENTS = REPO / "experiments"
KEPT = {"toy_zoo", "m2n2_digits"}  # older experiments with their own checks
TOY = sorted(p for p in EXPERIMENTS.glob("*/toy*.yaml") if p.parent.name not in KEPT)
FULL = sorted(p for p in EXPERIMENTS.glob("*/full*.yaml") if p.parent.name not in KEPT)
PROVING = "runs/zoo_proving/"
# the proving zoo's reading skill and cross-skill target, and the tiny zoo's
RENAMES = (("expert_glyph", "expert_read"), ("zoo_glyph_add_", "zoo_foreign_add_"),
           ("zoo_glyph_", "zoo_read_"))


def _onto(node, root: str):
    """``node`` with the proving zoo's paths and names replaced by the tiny zoo's."""
    if isinstance(node, dict):
        return {k: _onto(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_onto(v, root) for v in node]
    if isinstance(node, str):
        for old, new in RENAMES:
            node = node.replace(old, new)
        return root + node.removeprefix(PROVING) if node.startswith(PROVING) else node
    return node


def test_every_recipe_has_a_toy_and_a_full_scale_file():
    recipes = {p.parent.name for p in TOY}
    assert recipes == {p.parent.name for p in FULL}
    assert len(recipes) >= 6
    assert all((EXPERIMENTS / r / "README.md").is_file() for r in recipes)


@pytest.mark.parametrize("path", TOY, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_toy_campaign_loads_over_the_zoo(tiny_zoo, path):
    data = yaml.safe_load(path.read_text())
    assert PROVING in path.read_text()  # written for the proving zoo
    campaign = campaign_from_dict(_onto(data, str(tiny_zoo.root) + "/"), path)
    assert campaign.config.name == data["name"]


@pytest.mark.parametrize("path", FULL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_full_scale_campaign_parses(path):
    config = CampaignConfig.from_dict(yaml.safe_load(path.read_text()), path)
    assert config.budget is not None
