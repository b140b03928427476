"""Helpers of the campaign tests: campaign files over the tiny zoo, reading a record."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

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
