"""Data-flow campaigns: routed candidates built from the worker's resident sources and
scored like any merge; the folder reopens for status and resume."""

from __future__ import annotations

import pytest
import yaml
from campaign_support import DELETE, SPACES, write_campaign

from evomerge.campaign.folder import open_folder
from evomerge.campaign.runner import prepare_run, run_folder
from evomerge.campaign.status import campaign_status


@pytest.mark.parametrize("space", ["dataflow.yaml", "dare_ties_dataflow.yaml"])
def test_a_dataflow_campaign_runs_and_reopens(tiny_zoo, tmp_path, space):
    experts = [str(tiny_zoo.experts[s]) for s in ("add", "read", "reverse")]
    if space == "dataflow.yaml":  # routes between two models
        models = {"models__base": DELETE, "models__sources": experts[:2]}
    else:  # DARE-TIES of the base and two experts, routed with a third
        models = {"models__sources": experts}
    path = write_campaign(tmp_path / "c.yaml", tiny_zoo, space=str(SPACES / space),
                          budget={"evaluations": 4}, **models)
    folder = prepare_run(path, tmp_path / "out")
    status = run_folder(folder)
    assert status.stopped == "budget" and status.evaluations == 4
    assert status.failures == 0
    reopened = open_folder(tmp_path / "out")  # the space inline, its merge file read in
    summary = campaign_status(reopened)
    assert summary["complete"] == 4
    trials = reopened.open_record().trials()
    recipes = [reopened.trial_recipe(t) for t in trials]
    assert all(r.routing is not None and r.routing.path for r in recipes)
    assert (space == "dare_ties_dataflow.yaml") == all(r.merge_method for r in recipes)
    assert all(t.fitness.timings["merge_s"] > 0 for t in trials)  # built, then scored
    assert run_folder(reopened, resume=True).evaluations == 4  # nothing evaluated again


def test_an_inline_dataflow_space_keeps_its_merge_file_in_the_folders_copy(tiny_zoo, tmp_path):
    experts = [str(tiny_zoo.experts[s]) for s in ("add", "read", "reverse")]
    inline = {"dataflow": {"merge": str(SPACES / "dare_ties_layerwise.yaml"),
                           "models": ["merged", "other"], "repeats": 1, "anchored": False,
                           "scales": {"per": "none"}}}
    path = write_campaign(tmp_path / "c.yaml", tiny_zoo, space=inline,
                          models__sources=experts, budget={"evaluations": 2})
    folder = prepare_run(path, tmp_path / "out")
    assert run_folder(folder).evaluations == 2
    saved = yaml.safe_load((tmp_path / "out" / "campaign.yaml").read_text())
    assert saved["space"]["dataflow"]["merge"]["merge_method"] == "dare_ties"
    reopened = open_folder(tmp_path / "out")  # as status and resume open it
    assert campaign_status(reopened)["complete"] == 2
    assert all(not r.routing.anchored for r in map(reopened.trial_recipe,
                                                   reopened.open_record().trials()))
