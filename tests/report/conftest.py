"""Fixtures of the export and report tests: models, tasks and finished campaigns."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_support import run_scripted, write_campaign

from evomerge.testing.random_models import save_perturbed, save_random_llama
from evomerge.zoo.data import write_task_data
from evomerge.zoo.lm_eval_tasks import write_task_yamls


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """A random tiny Llama (2 layers, width 32) and two seeded "fine-tunes" of it."""
    root = tmp_path_factory.mktemp("models")
    base = save_random_llama(root / "base", seed=0, hidden_size=32, num_layers=2)
    return {"base": base, "a": save_perturbed(base, root / "expert_a", seed=1, scale=0.02),
            "b": save_perturbed(base, root / "expert_b", seed=2, scale=0.02)}


@pytest.fixture(scope="session")
def task_dir(tmp_path_factory) -> Path:
    """The zoo's foreign_add task (search and test splits of 8 documents), as lm-eval YAML."""
    root = tmp_path_factory.mktemp("tasks")
    files = write_task_data(root / "data", ["foreign_add"], 8, 8, seed=0)
    write_task_yamls(root / "tasks", files)
    return root / "tasks"


@pytest.fixture(scope="session")
def finished(tmp_path_factory, models, task_dir):
    """A finished one-objective campaign: 10 evaluations (the 3rd failed), the best two
    scored on the report tasks."""
    root = tmp_path_factory.mktemp("finished")
    path = write_campaign(root / "campaign.yaml", models, task_dir)
    return run_scripted(path, root / "out")


@pytest.fixture(scope="session")
def two_objectives(tmp_path_factory, models, task_dir):
    """A finished campaign with two objectives (the weights' sum and the second weight)."""
    root = tmp_path_factory.mktemp("two")
    path = write_campaign(root / "campaign.yaml", models, task_dir,
                          objectives=["score", "zoo_foreign_add_mc_search/acc"],
                          budget={"evaluations": 12})
    return run_scripted(path, root / "out", fail_at=None)
