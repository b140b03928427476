"""``evomerge run``, ``status`` and ``resume``: a run from the command line, and bad
input that exits 2 with one message and leaves no campaign folder behind."""

from __future__ import annotations

import json

import pytest
from campaign_support import write_campaign

from evomerge.cli import main


def test_run_then_status_then_resume(campaign_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(campaign_file), "--out", str(out), "--budget", "3",
                 "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "stopped (budget): 3 evaluations, 0 failed" in said
    assert main(["status", str(out), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["evaluations"] == 3 and status["budget"]["evaluations"] == 3
    assert status["complete"] == 3 and status["failed"] == status["running"] == 0
    assert status["best"]["uid"] in said
    assert main(["status", str(out)]) == 0
    assert "evaluations 3 / 3" in capsys.readouterr().out
    assert main(["resume", str(out), "--quiet"]) == 0  # the budget is spent: no evaluation
    assert "stopped (budget): 3 evaluations" in capsys.readouterr().out


@pytest.mark.parametrize(("changes", "args", "message"), [
    ({"optimiser": {"name": "cma"}}, [], "'optimiser'"),
    ({"models__base": "no/such/folder"}, [], "no such model folder"),
    ({"optimizer": {"name": "cmaa"}}, [], "did you mean 'cma'"),
    ({"optimizer": {"name": "cma", "options": {"popsize": 1}}}, [], "popsize"),
    ({}, ["--budget", "0"], "--budget"),
    ({}, ["--workers", "0"], "--workers"),
])
def test_bad_input_exits_2_and_starts_nothing(tiny_zoo, tmp_path, capsys, changes, args,
                                              message):
    path = write_campaign(tmp_path / "c.yaml", tiny_zoo, **changes)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_an_out_folder_holding_a_campaign_is_refused(campaign_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "campaign.yaml").write_text("name: other\n")
    assert main(["run", str(campaign_file), "--out", str(out), "--quiet"]) == 2
    assert "evomerge resume" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["campaign.yaml"]


def test_status_of_a_folder_without_a_campaign_exits_2(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    assert "not a campaign folder" in capsys.readouterr().err


def test_status_shows_the_report_tasks_of_a_multi_objective_campaign():
    from evomerge.campaign.cli import _report_scores

    assert _report_scores({"score": 0.5}, "score") == "  report 0.5"
    # objectives named by search task: the report's tasks are others, each shown
    report = {"score": 0.6, "t_test/acc": 0.7, "u_test/acc": 0.5}
    assert _report_scores(report, "t_search/acc") == "  report t_test/acc 0.7, u_test/acc 0.5"
    assert _report_scores(None, "score") == ""
