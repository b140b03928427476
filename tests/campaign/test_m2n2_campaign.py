"""M2N2 in a campaign: members are coefficient matrices of a coefficient space, scored
per document; the archive comes back on resume, and a space M2N2 cannot breed in is
refused before anything runs."""

from __future__ import annotations

import numpy as np
import pytest
from campaign_support import SPACES, write_campaign

from evomerge.campaign.config import load_campaign
from evomerge.campaign.folder import open_folder
from evomerge.campaign.runner import prepare_run, run_folder
from evomerge.errors import ConfigError
from evomerge.merge.recipe import Recipe


def _m2n2(tiny_zoo, tmp_path, space="m2n2_coefficients.yaml", **changes):
    return write_campaign(tmp_path / "c.yaml", tiny_zoo, space=str(SPACES / space),
                          optimizer={"name": "m2n2", "options": {"population": 3}},
                          **changes)


def test_an_m2n2_campaign_breeds_children_from_scored_sources(tiny_zoo, tmp_path):
    folder = prepare_run(_m2n2(tiny_zoo, tmp_path, budget={"evaluations": 6}),
                         tmp_path / "out")
    form = folder.campaign.form
    assert form.shape == (len(form.groups), 3)  # base and two experts
    status = run_folder(folder)
    assert status.stopped == "budget" and status.failures == 0
    trials = open_folder(folder.out).open_record().trials()
    roles = [t.candidate.meta["m2n2"]["role"] for t in trials]
    assert roles[:3] == ["start"] * 3 and "child" in roles  # the sources, then children
    for t in trials:
        assert t.candidate.x is None and t.fitness.sample_scores  # M2N2's per-doc scores
        assert isinstance(folder.trial_recipe(t), Recipe)
    starts = [folder.trial_recipe(t) for t in trials[:3]]
    coefficients = [form.coefficients(r) for r in starts]
    assert [np.argmax(c[0]) for c in coefficients] == [0, 1, 2]  # each source alone
    resumed = run_folder(open_folder(folder.out, {"budget.evaluations": 8}), resume=True)
    assert resumed.evaluations == 8


def test_m2n2_needs_a_coefficient_space(tiny_zoo, tmp_path):
    path = _m2n2(tiny_zoo, tmp_path, space="ties_layerwise.yaml")
    with pytest.raises(ConfigError, match="coefficient space") as err:
        load_campaign(path)
    assert str(path) in str(err.value)
