"""The campaign's journal: every line readable by optuna at once, one disk sync per
finished record instead of one per line."""

from __future__ import annotations

import os

import optuna

from evomerge.campaign.study import StudyRecord, storage_url
from evomerge.optim.base import ObjectiveSpec
from evomerge.records import Candidate, Fitness


def _stock_study(path):
    """The study as optuna's own journal reader sees it."""
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(path)))
    return optuna.load_study(study_name="j", storage=storage)


def test_each_record_is_synced_once_and_readable_before_its_sync(tmp_path, monkeypatch):
    record = StudyRecord.open(storage_url(tmp_path), "j", ["maximize"])
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))

    number = record.start(Candidate(uid="c0", x=[0.25, 0.5]), ["a", "b"], "h0")
    assert len(synced) == 0  # the start is synced with the trial's end
    fitness = Fitness.ok({"score": 0.75}, timings={"merge_s": 0.1, "eval_s": 0.2},
                         worker="w0", sample_scores={"t": {"d0": 1.0}})
    record.finish(number, fitness, ObjectiveSpec(("score",), ("maximize",)))
    assert len(synced) == 1  # the start, seven attributes and the end: one sync

    # written lines reach other readers at once (a killed driver loses none of them)
    record.study.set_user_attr("late", 1)  # written, not synced
    assert len(synced) == 1
    study = _stock_study(tmp_path / "study.journal")
    assert study.user_attrs["late"] == 1
    (trial,) = study.trials
    assert trial.state.name == "COMPLETE" and trial.values == [0.75]
    assert trial.user_attrs["worker"] == "w0" and trial.user_attrs["metric:score"] == 0.75
