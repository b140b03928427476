"""Helpers of the export and report tests: small finished campaigns, made fast.

The models are random tiny Llamas (a base and two seeded "fine-tunes"), the tasks the
zoo's ``foreign_add`` task written without training anything, and candidates are scored
by a script instead of lm-eval, so a campaign of a dozen trials takes about a second.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from evomerge.campaign.config import load_campaign
from evomerge.campaign.folder import new_folder
from evomerge.campaign.loop import CampaignLoop
from evomerge.execute.base import Executor
from evomerge.records import Fitness

REPO = Path(__file__).resolve().parents[2]
SEARCH_TASK, REPORT_TASK = "zoo_foreign_add_mc_search", "zoo_foreign_add_mc_test"
SEARCH_ACC, REPORT_ACC = f"{SEARCH_TASK}/acc", f"{REPORT_TASK}/acc"
SETTINGS = "5c41p7ed0000abcd"  # the evaluation settings hash scripted scores carry
FAILING_ERROR = "RuntimeError: CUDA out of memory (scripted)"
TRACEBACK = 'Traceback (most recent call last):\n  File "run.py", line 1, in <module>\n'



def campaign_dict(models: dict[str, Path], task_dir: Path, **fields: Any) -> dict[str, Any]:
    data = {
        "format": "evomerge/campaign-v1",
        "name": "report-test",
        "models": {"base": str(models["base"]),
                   "sources": [str(models["a"]), str(models["b"])]},
        "space": str(REPO / "search_spaces" / "task_arithmetic.yaml"),
        "optimizer": {"name": "random"},
        "evaluation": {"lm_eval": {
            "include_paths": [str(task_dir)],
            "search_tasks": [{"name": SEARCH_TASK, "limit": 4}],
            "report_tasks": [{"name": REPORT_TASK, "limit": 4}]}},
        "budget": {"evaluations": 10},
        "executor": {"kind": "local", "workers": 1, "device": "cpu"},
        "report": {"best": 2},
        "seed": 0,
    }
    data.update(fields)
    return data


def weights(recipe: dict[str, Any]) -> list[float]:
    """Each source's weight: its own, else the recipe's (a space may fix it there)."""
    shared = recipe.get("parameters", {}).get("weight", 1.0)
    return [float(m.get("parameters", {}).get("weight", shared)) for m in recipe["models"]]


class ScriptedExecutor(Executor):
    """Scores a recipe from its weights as it is submitted: ``score`` = their sum on the
    search split, ``zoo_foreign_add_mc_search/acc`` = the second weight (a trade-off with
    the first for two objectives), the report split a tenth lower. The ``fail_at``-th
    search candidate fails as a worker out of memory would. Results come back one a
    call, in the order submitted."""

    workers = 1

    def __init__(self, fail_at: int | None = None):
        self.fail_at = fail_at
        self.scored: list[tuple[str, Fitness]] = []
        self.searched = 0

    def submit(self, uid, recipe, split="search"):
        self.scored.append((uid, self._score(recipe, split)))

    @property
    def pending(self):
        return len(self.scored)

    def results(self, timeout=None):
        return [self.scored.pop(0)] if self.scored else []

    def _score(self, recipe: dict[str, Any], split: str) -> Fitness:
        began = time.time()
        if split == "search":
            self.searched += 1
            if self.searched == self.fail_at:
                return Fitness.failed(f"{TRACEBACK}{FAILING_ERROR}", worker="scripted",
                                      timings={"merge_s": 0.001})
        a, b = weights(recipe)
        drop = 0.1 if split == "report" else 0.0
        acc = SEARCH_ACC if split == "search" else REPORT_ACC
        timings = {"merge_s": 0.002, "eval_s": 0.005, "began": began,
                   "ended": began + 0.008, "ready_at": began}
        return Fitness.ok({"score": a + b - drop, acc: b - drop},
                          directions={"score": "maximize", acc: "maximize"},
                          timings=timings, worker="scripted", settings_hash=SETTINGS)


def run_scripted(campaign_path: Path, out: Path, fail_at: int | None = 3):
    """Run the campaign file at ``campaign_path`` into ``out`` with the scripted executor."""
    folder = new_folder(out, load_campaign(campaign_path), None)
    CampaignLoop(folder, ScriptedExecutor(fail_at)).run()
    return folder


def write_campaign(path: Path, models, task_dir, **fields: Any) -> Path:
    path.write_text(yaml.safe_dump(campaign_dict(models, task_dir, **fields), sort_keys=False))
    return path
