"""A campaign process killed (SIGKILL) three times at random moments and resumed each
time: every evaluation recorded once, nothing finished evaluated again, and in the end
the candidates, scores and best of an uninterrupted run."""

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
    kept = {}  # trial number -> (uid, values) of every trial complete at a kill
    for kill, finished in enumerate((2, 5, 8)):
        args = ["run", path, "--out", out] if kill == 0 else ["resume", out]
        _kill_after(_start(args), out, finished, moments.uniform(0.0, 0.4))
        kept |= {t.number: (t.user_attrs["uid"], t.values) for t in _trials(out)
                 if t.state.name == "COMPLETE"}
    status = run_folder(open_folder(out), resume=True)
    assert status.stopped == "budget"
    summary = campaign_status(open_folder(out))
    assert summary["evaluations"] == 12 and summary["running"] == 0
    state = json.loads((out / "optimizer.json").read_text())
    assert len(state["state"]["history"]) == 12 and state["asked"] is None

    trials = _trials(out)
    assert len(trials) == 12 and all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["uid"] for t in trials}) == 12  # each recorded once
    for number, record in kept.items():  # nothing finished was evaluated again
        assert (trials[number].user_attrs["uid"], trials[number].values) == record
    # the same candidates (uids are random; points and scores are not) and the same best
    assert _points(trials) == _points(_trials(tmp_path / "reference"))
    assert status.best_value == reference.best_value
    best = {t.user_attrs["uid"]: t for t in trials}[status.best_uid]
    assert _points([best]) == _points([t for t in _trials(tmp_path / "reference")
                                       if t.user_attrs["uid"] == reference.best_uid])


def _points(trials) -> list:
    return sorted((json.loads(t.user_attrs["candidate"])["x"], t.values) for t in trials)
