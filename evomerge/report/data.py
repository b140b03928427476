"""What a report shows, read from a campaign folder's study and nothing else.

The folder may be finished, still running, or killed: RUNNING trials are listed as
running, and every number comes from the trials that have finished so far.

>>> # data = campaign_data(open_folder("runs/toy")); data.best.number
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evomerge.campaign.choice import best_trials, evaluated_ok
from evomerge.campaign.folder import CAMPAIGN_FILE, CampaignFolder
from evomerge.campaign.study import TrialRecord
from evomerge.export.choose import read_trials
from evomerge.optim.base import ObjectiveSpec

#: the best candidates whose search and test scores the report sets side by side
CHOSEN = 5


@dataclass
class CampaignData:
    folder: CampaignFolder
    trials: list[TrialRecord]  # in trial-number order
    objectives: ObjectiveSpec
    study_attrs: dict[str, Any]
    campaign_text: str
    scored: list[TrialRecord]  # evaluated with scores, each recipe once
    best_order: list[TrialRecord]  # the campaign's best: by the first objective, or the
    #                                Pareto front ordered by it

    @property
    def name(self) -> str:
        return self.folder.campaign.config.name

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives.names) > 1

    @property
    def best(self) -> TrialRecord | None:
        return self.best_order[0] if self.best_order else None

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
        """The candidates a user would take away: the campaign's best few, and every
        candidate the campaign scored on the report tasks."""
        picked = self.best_order[:CHOSEN]
        picked += [t for t in self.scored if t.report and t not in picked]
        return picked


def campaign_data(folder: CampaignFolder) -> CampaignData:
    attrs, trials = read_trials(folder)
    trials = sorted(trials, key=lambda t: t.number)
    objectives = folder.campaign.objectives
    return CampaignData(
        folder=folder, trials=trials, objectives=objectives, study_attrs=attrs,
        campaign_text=(folder.out / CAMPAIGN_FILE).read_text(),
        scored=evaluated_ok(trials), best_order=best_trials(trials, objectives))
