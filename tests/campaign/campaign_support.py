"""Helpers of the campaign tests: campaign files over the tiny zoo, reading a record."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from evomerge.records import Fitness

REPO = Path(__file__).resolve().parents[2]
SPACES = REPO / "search_spaces"


def campaign_dict(zoo, **changes: Any) -> dict[str, Any]:
    data = {
        "format": "evomerge/campaign-v1",
        "name": "tiny-test",
        "models": {"base": str(zoo.base),
                   "sources": [str(zoo.experts["add"]), str(zoo.experts["read"])]},
        "space": str(SPACES / "task_arithmetic.yaml"),
        "optimizer": {"name": "random"},
        "evaluation": {"lm_eval": {
            "include_paths": [str(zoo.task_dir)],
            "search_tasks": [{"name": "zoo_foreign_add_mc_search", "limit": 4}]}},
        "budget": {"evaluations": 6},
        "executor": {"kind": "local", "workers": 1, "device": "cpu"},
        "seed": 0,
    }
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            node.pop(last)
        else:
            node[last] = copy.deepcopy(value)
    return data


DELETE = object()


def write_campaign(path: Path, zoo, **changes: Any) -> Path:
    path.write_text(yaml.safe_dump(campaign_dict(zoo, **changes), sort_keys=False))
    return path


class ScriptedExecutor:
    """An executor scoring each recipe with ``score(recipe) -> Fitness`` in process, and
    raising KeyboardInterrupt (as Ctrl-C would) at the ``interrupt_at``-th result."""

    workers = 1

    def __init__(self, score, interrupt_at: int | None = None):
        self.score, self.interrupt_at = score, interrupt_at
        self.queue: list[tuple[str, dict]] = []
        self.evaluated: list[str] = []
        self.closed = False

    def submit(self, uid, recipe, split="search", job=None):
        self.queue.append((uid, recipe))

    @property
    def pending(self):
        return len(self.queue)

    def results(self, timeout=None):
        if not self.queue:
            return []
        if self.interrupt_at is not None and len(self.evaluated) + 1 == self.interrupt_at:
            raise KeyboardInterrupt
        uid, recipe = self.queue.pop(0)
        self.evaluated.append(uid)
        return [(uid, self.score(recipe))]

    def close(self):
        self.closed = True


def weight_sum(recipe: dict) -> Fitness:
    """A stand-in score: the sum of the recipe's model weights (deterministic, cheap)."""
    total = sum(float(m.get("parameters", {}).get("weight", 0.0)) for m in recipe["models"])
    return Fitness.ok({"score": total}, directions={"score": "maximize"},
                      timings={"merge_s": 0.0, "eval_s": 0.0}, worker="scripted")
