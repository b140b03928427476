"""The campaign's record: an optuna study, one trial per candidate.

A trial holds the candidate's genes as parameters (``FloatDistribution(0, 1)`` per gene
name, clipped onto the box; the exact point is in the ``candidate`` attribute), is
RUNNING while evaluated, COMPLETE with the objective values, FAIL with the error. User
attributes: ``uid``, ``recipe_hash``, ``metrics`` (every objective the evaluation
reported, and each as ``metric:<name>`` to sort by), ``merge_s``, ``eval_s``, ``worker``,
``error``, ``reused_from`` (a recipe evaluated before), and ``candidate`` / ``fitness`` as
JSON text; the per-document scores are the system attribute ``evomerge:sample_scores``.
With fidelity levels, each level a candidate finishes adds intermediate values and the
attribute ``fidelity`` (the level and its scores); a candidate stopped between levels is
PRUNED, its scores those of its last level.
From these a resumed campaign restores its records exactly. The study's metric names are
the objectives' names. The study's own attributes hold
the campaign's config hash and the package versions.

The default storage is optuna's ``JournalFileBackend`` file ``OUT/study.journal``
(append-only, locked, survives a killed process); any optuna storage URL works too, and
``optuna-dashboard OUT/study.journal`` shows a campaign live. optuna is imported here and
in :mod:`~evomerge.campaign.journal` only.

>>> # record = StudyRecord.open("runs/c", "toy", ["maximize"])
>>> # number = record.start(candidate, genes, recipe_hash)
>>> # record.finish(number, fitness, objectives)
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from evomerge.errors import ConfigError
from evomerge.optim.base import ObjectiveSpec
from evomerge.records import Candidate, Fitness

JOURNAL = "study.journal"
REPORT_PREFIX = "report:"
SAMPLE_SCORES = "evomerge:sample_scores"
#: the last fidelity level a trial finished: ``{"level", "objectives", "documents"}``
FIDELITY = "fidelity"


class NoStudyYet(ConfigError):
    """The campaign's storage holds no study of its name (a run killed while starting)."""


@dataclass
class TrialRecord:
    """One trial as the campaign reads it back."""

    number: int
    state: str  # RUNNING | COMPLETE | FAIL | PRUNED | WAITING
    candidate: Candidate
    fitness: Fitness | None
    recipe_hash: str | None
    reused_from: str | None
    worker: str | None
    started: Any
    finished: Any
    #: its scores on the report tasks, when it was chosen for them (see ``report:<uid>``)
    report: dict[str, Any] | None = None
    #: the last fidelity level it finished and that level's scores (``fidelity``)
    level: int | None = None
    level_fitness: Fitness | None = None

    @property
    def done(self) -> bool:
        return self.state in ("COMPLETE", "FAIL", "PRUNED")


def storage_url(out: Path | str, storage: str | None = None) -> str:
    """The storage a campaign folder uses: ``storage`` when given, else its journal."""
    return storage or f"journal:{Path(out).resolve() / JOURNAL}"


def _storage(url: str):
    """The optuna storage at ``url`` and a function making its last writes durable."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url.startswith("journal:"):
        from evomerge.campaign.journal import DeferredSyncJournal

        journal = DeferredSyncJournal(url[len("journal:"):])
        return optuna.storages.JournalStorage(journal), journal.sync
    return optuna.storages.get_storage(url), lambda: None  # a database commits each write


class StudyRecord:
    """A campaign's optuna study: start, finish and read back trials."""

    def __init__(self, storage, study, name: str, sync=lambda: None):
        self.storage, self.study, self.name = storage, study, name
        self.study_id = storage.get_study_id_from_name(name)
        #: makes the writes so far durable; called once per finished record
        self.sync = sync

    @classmethod
    def open(cls, url: str, name: str, directions: list[str] | None = None,
             attrs: dict[str, Any] | None = None,
             metric_names: list[str] | None = None) -> StudyRecord:
        """Open the study ``name`` at ``url``; ``directions`` given: create it when missing."""
        import optuna

        storage, sync = _storage(url)
        if directions is None:
            try:
                study = optuna.load_study(study_name=name, storage=storage)
            except KeyError:
                raise NoStudyYet(None, "study", name, f"{url} holds none of that name: the "
                                 "campaign has no study yet (it stopped before recording "
                                 "its first candidate); run or resume it first") from None
        else:
            study = optuna.create_study(study_name=name, storage=storage,
                                        directions=list(directions), load_if_exists=True)
            if metric_names and study.metric_names != list(metric_names):
                with warnings.catch_warnings():  # experimental in optuna, stable in use
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.set_metric_names(list(metric_names))  # names in optuna-dashboard
        record = cls(storage, study, name, sync)
        for key, value in (attrs or {}).items():
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)
        sync()
        return record

    @staticmethod
    def versions() -> dict[str, str]:
        return {p: version(p) for p in ("evomerge", "optuna", "torch", "transformers")}

    # -- writing ---------------------------------------------------------------------

    def start(self, candidate: Candidate, genes: list[str], recipe_hash: str | None) -> int:
        """A RUNNING trial for ``candidate``; returns its number."""
        from optuna.distributions import FloatDistribution
        from optuna.trial import TrialState, create_trial

        params, dists = {}, {}
        if candidate.x is not None:
            for name, value in zip(genes, candidate.x):
                params[name] = min(max(float(value), 0.0), 1.0)
                dists[name] = FloatDistribution(0.0, 1.0)
        template = create_trial(state=TrialState.RUNNING, params=params, distributions=dists,
                                user_attrs={"uid": candidate.uid, "recipe_hash": recipe_hash,
                                            "candidate": _json(_slim(candidate))})
        # not synced on its own: a resume finds the candidate in optimizer.json if its
        # trial is lost, and the trial's end syncs it with everything before
        trial_id = self.storage.create_new_trial(self.study_id, template_trial=template)
        return self.storage.get_trial(trial_id).number

    def finish(self, number: int, fitness: Fitness, objectives: ObjectiveSpec,
               reused_from: str | None = None) -> None:
        """Close a trial: COMPLETE with the objective values, FAIL or PRUNED."""
        from optuna.trial import TrialState

        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        attrs = {
            "metrics": dict(fitness.objectives),
            **{f"metric:{k}": v for k, v in fitness.objectives.items()},  # sortable
            "merge_s": fitness.timings.get("merge_s"),
            "eval_s": fitness.timings.get("eval_s"),
            "worker": fitness.worker,
            "fitness": _json({**fitness.to_dict(), "sample_scores": {}}),
        }
        # per-document scores are large: a system attribute, which optuna-dashboard
        # does not send to the browser on every refresh
        self.storage.set_trial_system_attr(trial_id, SAMPLE_SCORES,
                                           _json(fitness.sample_scores))
        if fitness.error:
            attrs["error"] = fitness.error
        if reused_from:
            attrs["reused_from"] = reused_from
        for key, value in attrs.items():
            self.storage.set_trial_user_attr(trial_id, key, value)
        if fitness.is_ok:
            values = [float(fitness.objectives[n]) for n in objectives.names]
            self.study.tell(number, values, state=TrialState.COMPLETE)
        else:
            state = TrialState.PRUNED if fitness.status == "pruned" else TrialState.FAIL
            self.study.tell(number, state=state)
        self.sync()

    def record_level(self, number: int, level: int, fitness: Fitness,
                     steps: dict[int, float]) -> None:
        """A fidelity level the candidate finished: its intermediate values, its scores
        so far (``fidelity``, and the per-document scores a next level builds on)."""
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        for step, value in steps.items():
            self.storage.set_trial_intermediate_value(trial_id, step, value)
        self.storage.set_trial_system_attr(trial_id, SAMPLE_SCORES,
                                           _json(fitness.sample_scores))
        self.storage.set_trial_user_attr(trial_id, FIDELITY, {
            "level": level, "objectives": dict(fitness.objectives),
            "documents": sum(map(len, fitness.sample_scores.values()))})
        self.sync()

    def frozen_trial(self, number: int):
        """The optuna trial as a pruner reads it."""
        return self.storage.get_trial(
            self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number))

    def mark_interrupted(self, number: int) -> None:
        """A RUNNING trial whose evaluation a stop cut short (it stays RUNNING: a resume
        evaluates it again under its number)."""
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        self.storage.set_trial_user_attr(trial_id, "interrupted", True)
        self.sync()

    def set_report(self, uid: str, fitness: Fitness) -> None:
        """Record a candidate's scores on the report tasks."""
        self.study.set_user_attr(REPORT_PREFIX + uid, {
            "objectives": dict(fitness.objectives), "error": fitness.error,
            "eval_s": fitness.timings.get("eval_s"), "worker": fitness.worker})
        self.sync()

    # -- reading ---------------------------------------------------------------------

    def trials(self) -> list[TrialRecord]:
        reports = self.reports()
        out = [_read_trial(t) for t in self.study.get_trials(deepcopy=False)]
        for t in out:
            t.report = reports.get(t.candidate.uid)
        return out

    def reports(self) -> dict[str, dict[str, Any]]:
        """uid -> its scores on the report tasks."""
        return {k[len(REPORT_PREFIX):]: v for k, v in self.study.user_attrs.items()
                if k.startswith(REPORT_PREFIX)}

    @property
    def user_attrs(self) -> dict[str, Any]:
        return self.study.user_attrs

    def set_attr(self, key: str, value: Any) -> None:
        self.study.set_user_attr(key, value)
        self.sync()


def _read_trial(trial) -> TrialRecord:
    attrs = trial.user_attrs
    candidate = Candidate.from_dict(json.loads(attrs["candidate"]))
    fitness = level_fitness = None
    samples = json.loads(trial.system_attrs.get(SAMPLE_SCORES, "{}"))
    if "fitness" in attrs:
        fitness = Fitness.from_dict(json.loads(attrs["fitness"]))
        fitness.sample_scores = samples
    level = attrs.get(FIDELITY)
    if level is not None:
        level_fitness = Fitness.ok(level["objectives"], sample_scores=samples)
    return TrialRecord(
        number=trial.number, state=trial.state.name, candidate=candidate, fitness=fitness,
        recipe_hash=attrs.get("recipe_hash"), reused_from=attrs.get("reused_from"),
        worker=attrs.get("worker"), started=trial.datetime_start,
        finished=trial.datetime_complete,
        level=None if level is None else level["level"], level_fitness=level_fitness)


def _slim(candidate: Candidate) -> dict[str, Any]:
    """The candidate without its recipe (the space decodes it again from ``x``)."""
    data = candidate.to_dict()
    data["recipe"] = None
    return data


def _json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, default=_plain, allow_nan=True)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    raise TypeError(f"cannot record {type(value).__name__} in the study")
