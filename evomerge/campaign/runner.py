"""Start, resume and read campaigns: what the ``run``, ``resume`` and ``status`` commands do.

>>> # status = run_campaign("experiments/toy_zoo/campaign.yaml", "runs/toy")
>>> # status = resume_campaign("runs/toy")
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from evomerge.campaign.config import load_campaign
from evomerge.campaign.folder import CampaignFolder, new_folder, open_folder
from evomerge.campaign.loop import CampaignLoop, LoopStatus
from evomerge.execute.base import Executor, WorkerSpec, build_executor

Progress = Callable[[LoopStatus], None]


def prepare_run(campaign_file: Path | str, out: Path | str,
                overrides: dict[str, Any] | None = None,
                storage: str | None = None) -> CampaignFolder:
    """Check the campaign completely and prepare ``out``; nothing is loaded yet."""
    campaign = load_campaign(campaign_file, overrides)
    return new_folder(out, campaign, storage)


def open_executor(folder: CampaignFolder) -> Executor:
    """The campaign's executor with its workers started (Ray joined or started)."""
    config = folder.campaign.config
    spec = WorkerSpec(base=config.models.base, sources=tuple(config.models.sources),
                      evaluation=folder.campaign.evaluation, device=config.executor.device,
                      source=str(folder.campaign.file))
    return build_executor(config.executor.kind, spec, workers=config.executor.workers,
                          **config.executor.options())


def run_folder(folder: CampaignFolder, progress: Progress | None = None,
               resume: bool = False) -> LoopStatus:
    """Run (or continue) the campaign of ``folder`` until its budget is spent."""
    return CampaignLoop(folder, open_executor(folder), progress).run(resume=resume)


def run_campaign(campaign_file: Path | str, out: Path | str,
                 overrides: dict[str, Any] | None = None, storage: str | None = None,
                 progress: Progress | None = None) -> LoopStatus:
    return run_folder(prepare_run(campaign_file, out, overrides, storage), progress)


def resume_campaign(out: Path | str, progress: Progress | None = None) -> LoopStatus:
    """Continue the campaign in ``out``: finished trials are kept, interrupted ones rerun."""
    return run_folder(open_folder(out), progress, resume=True)
