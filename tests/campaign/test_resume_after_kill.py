"""A campaign process killed (SIGKILL) mid-run resumes: every evaluation recorded once,
the interrupted trial run again under its number, nothing finished evaluated again; killed
three times at random moments, it ends with the records of an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import optuna
from campaign_support import write_campaign

from evomerge.campaign.folder import open_folder
from evomerge.campaign.runner import prepare_run, run_folder
from evomerge.campaign.status import campaign_status
from evomerge.campaign.study import JOURNAL


def _trials(out):
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / JOURNAL)))
    try:
        return optuna.load_study(study_name="tiny-test", storage=storage).trials
    except KeyError:  # the journal is there, the study not yet
        return []


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
    assert len(state["state"]["history"]) == 8 and state["asked"] is None


def _start(args):
    return subprocess.Popen([sys.executable, "-m", "evomerge.cli", *map(str, args), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_after(proc, out, finished: int, delay: float) -> None:
    """SIGKILL ``proc`` ``delay`` seconds after ``finished`` trials are complete."""
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if (out / JOURNAL).is_file():
                states = [t.state.name for t in _trials(out)]
                if states.count("COMPLETE") >= finished:
                    break
            assert proc.poll() is None, "the campaign ended before it was killed"
            time.sleep(0.02)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()


def test_killed_three_times_it_ends_as_an_uninterrupted_run(tiny_zoo, tmp_path):
    path = write_campaign(tmp_path / "c.yaml", tiny_zoo, budget={"evaluations": 12},
                          optimizer={"name": "cma", "options": {"popsize": 4}})
    reference = run_folder(prepare_run(path, tmp_path / "reference"))
    assert reference.stopped == "budget"
    out = tmp_path / "out"
    moments = random.Random(7)
    for kill, finished in enumerate((2, 5, 8)):
        args = ["run", path, "--out", out] if kill == 0 else ["resume", out]
        _kill_after(_start(args), out, finished, moments.uniform(0.0, 0.4))
    status = run_folder(open_folder(out), resume=True)
    assert status.stopped == "budget"

    trials = _trials(out)
    assert len(trials) == 12 and all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["uid"] for t in trials}) == 12  # each recorded once
    # the same candidates (uids are random; points and scores are not) and the same best
    assert _points(trials) == _points(_trials(tmp_path / "reference"))
    assert status.best_value == reference.best_value
    best = {t.user_attrs["uid"]: t for t in trials}[status.best_uid]
    assert _points([best]) == _points([t for t in _trials(tmp_path / "reference")
                                       if t.user_attrs["uid"] == reference.best_uid])


def _points(trials) -> list:
    return sorted((json.loads(t.user_attrs["candidate"])["x"], t.values) for t in trials)
