"""A campaign folder ``OUT``: what a run leaves there and how a resume finds it again.

::

    OUT/campaign.yaml     the campaign as it ran (absolute paths, the space inline)
    OUT/run.json          the study's name and storage URL (null: OUT/study.journal)
    OUT/study.journal     the record (optuna JournalFileBackend), unless a URL was given
    OUT/optimizer.json    the optimizer's state after its last ask or tell, and the
                          candidate it last proposed until that one has its trial

Derived files are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evomerge.campaign.config import Campaign, campaign_from_dict, set_field
from evomerge.campaign.study import JOURNAL, StudyRecord, TrialRecord, storage_url
from evomerge.config_io import read_yaml
from evomerge.errors import ConfigError
from evomerge.merge.recipe import Recipe, load_recipe_dict
from evomerge.records import Candidate

CAMPAIGN_FILE = "campaign.yaml"
RUN_FILE = "run.json"
OPTIMIZER_FILE = "optimizer.json"
RUN_FORMAT = "evomerge/run-v1"


@dataclass
class CampaignFolder:
    out: Path
    campaign: Campaign
    storage: str | None  # None: the folder's own journal

    @property
    def url(self) -> str:
        return storage_url(self.out, self.storage)

    def open_record(self, create: bool = False) -> StudyRecord:
        name = self.campaign.config.name
        if not create:
            return StudyRecord.open(self.url, name)
        attrs = {"config_hash": self.campaign.config_hash(), "format": RUN_FORMAT,
                 "objectives": list(self.campaign.objectives.names),
                 "seed": self.campaign.config.seed, "versions": StudyRecord.versions()}
        objectives = self.campaign.objectives
        return StudyRecord.open(self.url, name, list(objectives.directions), attrs,
                                metric_names=list(objectives.names))

    def trial_recipe(self, trial: TrialRecord) -> Recipe:
        """The recipe a trial evaluated: decoded again from its point, or the recipe the
        trial recorded where the optimizer proposed one without a point (M2N2)."""
        if trial.candidate.recipe is not None:
            return load_recipe_dict(trial.candidate.recipe, self.out / CAMPAIGN_FILE)
        return self.campaign.decode(trial.candidate).recipe

    def save_optimizer(self, state: dict[str, Any],
                       asked: Candidate | None = None) -> None:
        """Keep the optimizer's state; ``asked``: a candidate it proposed whose trial is
        not recorded yet (written first, so that a kill in between loses nothing)."""
        data = {"state": state, "asked": None if asked is None else asked.to_dict()}
        write_atomic(self.out / OPTIMIZER_FILE, json.dumps(data))

    def load_optimizer(self) -> tuple[dict[str, Any] | None, Candidate | None]:
        """The saved state and the candidate asked but not yet recorded, if any."""
        path = self.out / OPTIMIZER_FILE
        if not path.is_file():
            return None, None
        data = json.loads(path.read_text())
        asked = data.get("asked")
        return data["state"], None if asked is None else Candidate.from_dict(asked)


def new_folder(out: Path | str, campaign: Campaign, storage: str | None) -> CampaignFolder:
    """Prepare ``out`` for a new campaign; refuses a folder holding another one."""
    out = Path(out)
    if (out / CAMPAIGN_FILE).exists() or (out / RUN_FILE).exists() or (out / JOURNAL).exists():
        raise ConfigError(None, "--out", str(out),
                          "the folder holds a campaign already: continue it with "
                          f"`evomerge resume {out}`, or choose another folder")
    if out.exists() and not out.is_dir():
        raise ConfigError(None, "--out", str(out), "is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / CAMPAIGN_FILE, campaign.to_yaml())
    write_atomic(out / RUN_FILE, json.dumps({"format": RUN_FORMAT, "storage": storage,
                                             "study": campaign.config.name,
                                             "config_hash": campaign.config_hash()},
                                            indent=2))
    return CampaignFolder(out, campaign, storage)


def open_folder(out: Path | str, overrides: dict[str, Any] | None = None) -> CampaignFolder:
    """The campaign folder ``out`` as a run left it (its campaign checked again);
    ``overrides`` (dotted fields, as ``load_campaign`` takes them) change the campaign
    for the runs to come and are written into ``OUT/campaign.yaml``."""
    out = Path(out)
    if not (out / RUN_FILE).is_file() or not (out / CAMPAIGN_FILE).is_file():
        raise ConfigError(None, "DIR", str(out),
                          f"not a campaign folder (it has no {RUN_FILE} and {CAMPAIGN_FILE})")
    run = json.loads((out / RUN_FILE).read_text())
    data = read_yaml(out / CAMPAIGN_FILE)
    for dotted, value in (overrides or {}).items():
        set_field(data, dotted, value)
    campaign = campaign_from_dict(data, out / CAMPAIGN_FILE)
    if overrides:
        write_atomic(out / CAMPAIGN_FILE, campaign.to_yaml())
    return CampaignFolder(out, campaign, run.get("storage"))


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
