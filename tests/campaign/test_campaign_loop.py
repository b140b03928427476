"""The campaign loop: one trial per candidate in the optuna study, failures recorded and
survived, recipes evaluated once, Ctrl-C leaves a record a resume completes."""

from __future__ import annotations

import json
import math
import time

import optuna
from campaign_support import ScriptedExecutor, weight_sum, write_campaign

from evomerge.campaign.config import load_campaign
from evomerge.campaign.folder import new_folder, open_folder
from evomerge.campaign.loop import CampaignLoop
from evomerge.campaign.runner import run_campaign
from evomerge.campaign.study import JOURNAL
from evomerge.records import Fitness


def _trials(out):
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / JOURNAL)))
    return optuna.load_study(study_name="tiny-test", storage=storage).trials


def test_a_local_run_records_every_evaluation_as_a_trial(campaign_file, tmp_path):
    out = tmp_path / "out"
    seen = []
    status = run_campaign(campaign_file, out, progress=lambda s: seen.append(s.evaluations))
    assert status.stopped == "budget" and status.evaluations == 6 and status.failures == 0
    assert seen[-1] == 6
    for name in ("campaign.yaml", "run.json", "study.journal", "optimizer.json"):
        assert (out / name).is_file()
    trials = _trials(out)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6
    uids = {t.user_attrs["uid"] for t in trials}
    assert len(uids) == 6
    for t in trials:
        attrs = t.user_attrs
        assert sorted(t.params) == sorted(t.distributions) and len(t.params) == 2
        assert t.values == [attrs["metrics"]["score"]]
        assert attrs["merge_s"] > 0 and attrs["eval_s"] > 0 and attrs["worker"]
        assert len(attrs["recipe_hash"]) == 16
        assert attrs["metric:score"] == attrs["metrics"]["score"]
        samples = json.loads(t.system_attrs["evomerge:sample_scores"])
        assert len(samples["zoo_foreign_add_mc_search"]) == 4  # limit: 4 documents
        assert "sample_scores" not in attrs
        x = json.loads(attrs["candidate"])["x"]
        assert list(t.params.values()) == [min(max(v, 0.0), 1.0) for v in x]
    best = max(trials, key=lambda t: t.values[0])
    assert status.best_value == best.values[0]
    assert status.best_uid == best.user_attrs["uid"]
    state = json.loads((out / "optimizer.json").read_text())
    assert len(state["state"]["history"]) == 6 and state["asked"] is None


def test_failed_candidates_are_fail_trials_and_the_run_goes_on(campaign_file, tmp_path):
    folder = new_folder(tmp_path / "out", load_campaign(campaign_file), None)

    def flaky(recipe):
        fitness = weight_sum(recipe)
        if fitness.objectives["score"] > 1.0:
            return Fitness.failed("CUDA out of memory", worker="scripted")
        return fitness

    status = CampaignLoop(folder, ScriptedExecutor(flaky)).run()
    trials = _trials(tmp_path / "out")
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert status.evaluations == 6 == len(trials)
    assert status.failures == len(failed) > 0
    assert all(t.user_attrs["error"] == "CUDA out of memory" for t in failed)
    assert all(t.state.name == "COMPLETE" for t in trials if t not in failed)


def test_a_recipe_evaluated_before_is_reused_not_evaluated(tiny_zoo, tmp_path):
    # a space of two recipes: TIES with or without normalisation
    space = {"merge_method": "ties", "models": {"base": "base"},
             "fixed": {"weight": 0.5, "density": 0.5}, "genes": [{"param": "normalize"}]}
    path = write_campaign(tmp_path / "c.yaml", tiny_zoo, space=space,
                          budget={"evaluations": 3})
    folder = new_folder(tmp_path / "out", load_campaign(path), None)
    executor = ScriptedExecutor(lambda r: Fitness.ok(
        {"score": float(r["parameters"]["normalize"])}, directions={"score": "maximize"}))
    status = CampaignLoop(folder, executor, reuse_limit=5).run()
    assert status.stopped == "converged"  # a third distinct recipe does not exist
    assert len(executor.evaluated) == status.evaluations == 2
    trials = _trials(tmp_path / "out")
    evaluated = [t for t in trials if "reused_from" not in t.user_attrs]
    reused = [t for t in trials if "reused_from" in t.user_attrs]
    assert len({t.user_attrs["recipe_hash"] for t in evaluated}) == 2
    assert len(reused) == status.reused >= 5
    by_uid = {t.user_attrs["uid"]: t for t in evaluated}
    for t in reused:
        first = by_uid[t.user_attrs["reused_from"]]
        assert t.user_attrs["recipe_hash"] == first.user_attrs["recipe_hash"]
        assert t.values == first.values


def test_ctrl_c_leaves_running_trials_that_resume_evaluates_once(campaign_file, tmp_path):
    out = tmp_path / "out"
    folder = new_folder(out, load_campaign(campaign_file), None)
    first = ScriptedExecutor(weight_sum, interrupt_at=4)
    status = CampaignLoop(folder, first).run()
    assert status.stopped == "interrupted" and first.closed
    states = [t.state.name for t in _trials(out)]
    assert states == ["COMPLETE"] * 3 + ["RUNNING"]
    assert [t.user_attrs.get("interrupted") for t in _trials(out)] == [None] * 3 + [True]
    interrupted = _trials(out)[3].user_attrs["uid"]

    second = ScriptedExecutor(weight_sum)
    status = CampaignLoop(open_folder(out), second).run(resume=True)
    assert status.stopped == "budget" and status.evaluations == 6
    assert second.evaluated[0] == interrupted  # the interrupted candidate runs first
    assert set(first.evaluated).isdisjoint(second.evaluated)
    trials = _trials(out)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6
    assert trials[3].user_attrs["uid"] == interrupted  # under its own trial number
    assert len({t.user_attrs["uid"] for t in trials}) == 6
    for t in trials:
        assert math.isclose(t.values[0], weight_sum(_recipe(folder, t)).objectives["score"])


def _recipe(folder, trial):
    x = json.loads(trial.user_attrs["candidate"])["x"]
    return folder.campaign.space.decode(x).recipe.to_dict()


def test_an_hours_budget_stops_the_search_and_counts_earlier_runs(tiny_zoo, tmp_path):
    from campaign_support import write_campaign

    def slow_sum(recipe):
        time.sleep(0.25)
        return weight_sum(recipe)

    path = write_campaign(tmp_path / "c.yaml", tiny_zoo, budget={"hours": 1.0 / 3600})
    out = tmp_path / "out"
    status = CampaignLoop(new_folder(out, load_campaign(path), None),
                          ScriptedExecutor(slow_sum)).run()
    # one second: the candidate in flight when the second is up still finishes
    assert status.stopped == "hours" and 2 <= status.evaluations <= 6
    assert status.elapsed_s >= 1.0
    again = ScriptedExecutor(slow_sum)
    status = CampaignLoop(open_folder(out), again).run(resume=True)
    assert status.stopped == "hours" and again.evaluated == []  # its hour was spent


def test_a_documents_budget_counts_every_scored_document_across_runs(tiny_zoo, tmp_path):
    from dataclasses import replace

    from campaign_support import write_campaign

    def four_documents(recipe):
        return replace(weight_sum(recipe),
                       sample_scores={"t": {str(i): 1.0 for i in range(4)}})

    path = write_campaign(tmp_path / "c.yaml", tiny_zoo, budget={"documents": 10})
    out = tmp_path / "out"
    status = CampaignLoop(new_folder(out, load_campaign(path), None),
                          ScriptedExecutor(four_documents)).run()
    assert status.stopped == "documents" and status.evaluations == 3
    assert status.documents == 12
    again = ScriptedExecutor(four_documents)
    status = CampaignLoop(open_folder(out), again).run(resume=True)
    assert status.stopped == "documents" and again.evaluated == []  # counted from the study
