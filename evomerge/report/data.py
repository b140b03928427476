"""What a report shows, read from a campaign folder's study and nothing else.

The folder may be finished, still running, or killed: RUNNING trials are listed as
running, and every number comes from the trials that have finished so far.

>>> # data = campaign_data(open_folder("runs/toy")); data.best.number
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from evomerge.campaign.folder import CAMPAIGN_FILE, CampaignFolder
from evomerge.campaign.study import TrialRecord
from evomerge.export.choose import pareto_front, ranked
from evomerge.export.scores import recorded_report_metrics
from evomerge.optim.base import ObjectiveSpec

#: the best candidates whose search and test scores the report sets side by side
CHOSEN = 5


@dataclass
class WorkerTime:
    """Seconds a worker spent merging, evaluating, and between candidates."""

    merge_s: float = 0.0
    eval_s: float = 0.0
    idle_s: float = 0.0
    candidates: int = 0


@dataclass
class CampaignData:
    folder: CampaignFolder
    trials: list[TrialRecord]  # in trial-number order
    objectives: ObjectiveSpec
    report_metrics: dict[int, dict[str, float]]  # trial number -> report-task metrics
    study_attrs: dict[str, Any]
    campaign_text: str
    ranked: list[TrialRecord] = field(default_factory=list)
    front: list[TrialRecord] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.folder.campaign.config.name

    @property
    def best(self) -> TrialRecord | None:
        return self.ranked[0] if self.ranked else None

    @property
    def evaluated(self) -> list[TrialRecord]:
        """Finished evaluations in the order they finished (reused results excluded)."""
        done = [t for t in self.trials if t.done and not t.reused_from and t.finished]
        return sorted(done, key=lambda t: (t.finished, t.number))

    @property
    def failures(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == "FAIL"]

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)

    def chosen(self) -> list[TrialRecord]:
        """The candidates a user would take away: the best few and the Pareto front."""
        picked = {t.number: t for t in self.ranked[:CHOSEN]}
        if len(self.objectives.names) > 1:
            picked.update({t.number: t for t in self.front})
        return sorted(picked.values(), key=lambda t: self.ranked.index(t))


def campaign_data(folder: CampaignFolder) -> CampaignData:
    record = folder.open_record()
    trials = sorted(record.trials(), key=lambda t: t.number)
    objectives = folder.campaign.objectives
    return CampaignData(
        folder=folder, trials=trials, objectives=objectives,
        report_metrics=recorded_report_metrics(record), study_attrs=dict(record.user_attrs),
        campaign_text=(folder.out / CAMPAIGN_FILE).read_text(),
        ranked=ranked(trials, objectives), front=pareto_front(trials, objectives))


def worker_times(trials: list[TrialRecord]) -> dict[str, WorkerTime]:
    """Per worker: merge and evaluation seconds as the trials recorded them, and idle
    time: the rest of the span from the worker's first start to its last finish."""
    out: dict[str, WorkerTime] = {}
    spans: dict[str, list[float]] = {}
    for t in trials:
        if t.fitness is None or t.reused_from or t.worker is None:
            continue
        w = out.setdefault(t.worker, WorkerTime())
        w.merge_s += t.fitness.timings.get("merge_s") or 0.0
        w.eval_s += t.fitness.timings.get("eval_s") or 0.0
        w.candidates += 1
        began, ended = _span(t)
        if began is not None:
            span = spans.setdefault(t.worker, [began, ended])
            span[0], span[1] = min(span[0], began), max(span[1], ended)
    for worker, (began, ended) in spans.items():
        w = out[worker]
        w.idle_s = max(0.0, (ended - began) - w.merge_s - w.eval_s)
    return out


def _span(trial: TrialRecord) -> tuple[float | None, float | None]:
    """When the worker started and finished the candidate (epoch seconds): its own
    clock where the fitness recorded it, else the trial's start and finish."""
    timings = trial.fitness.timings if trial.fitness else {}
    if "began" in timings and "ended" in timings:
        return float(timings["began"]), float(timings["ended"])
    if isinstance(trial.started, dt.datetime) and isinstance(trial.finished, dt.datetime):
        return trial.started.timestamp(), trial.finished.timestamp()
    return None, None

