"""A campaign process killed (SIGKILL) mid-run resumes: every evaluation recorded once,
the interrupted trial run again under its number, nothing finished evaluated again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
from campaign_support import write_campaign

from evomerge.campaign.folder import open_folder
from evomerge.campaign.runner import run_folder
from evomerge.campaign.status import campaign_status
from evomerge.campaign.study import JOURNAL


def _trials(out):
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / JOURNAL)))
    return optuna.load_study(study_name="tiny-test", storage=storage).trials


def test_a_killed_campaign_resumes_and_records_each_evaluation_once(tiny_zoo, tmp_path):
    path = write_campaign(tmp_path / "c.yaml", tiny_zoo, budget={"evaluations": 8},
                          optimizer={"name": "cma", "options": {"popsize": 4}})
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "evomerge.cli", "run", str(path), "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # kill once 3 finished and one is running
            if (out / JOURNAL).is_file():
                states = [t.state.name for t in _trials(out)]
                if states.count("COMPLETE") >= 3 and "RUNNING" in states:
                    break
            assert proc.poll() is None, "the campaign ended before it was killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = {t.number: (t.state.name, t.user_attrs["uid"], t.values) for t in _trials(out)}
    assert "RUNNING" in {s for s, _, _ in before.values()}

    status = run_folder(open_folder(out), resume=True)
    assert status.stopped == "budget"
    trials = _trials(out)
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len(trials) == 8 and len({t.user_attrs["uid"] for t in trials}) == 8
    for number, (state, uid, values) in before.items():
        assert trials[number].user_attrs["uid"] == uid
        if state == "COMPLETE":  # not evaluated again: the same record
            assert trials[number].values == values
    summary = campaign_status(open_folder(out))
    assert summary["evaluations"] == 8 and summary["running"] == 0
    state = json.loads((out / "optimizer.json").read_text())
    assert len(state["history"]) == 8
