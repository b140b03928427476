"""Fixtures of the evaluation tests: the local lm-eval tasks and a tiny random Llama."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_support import GEN_TASK, MC_TASK, load, write_task

from evomerge.testing.random_models import save_random_llama


@pytest.fixture(scope="session")
def task_dir(tmp_path_factory) -> Path:
    """A folder with the two tiny tasks, readable from any working directory."""
    folder = tmp_path_factory.mktemp("tasks")
    write_task(folder, MC_TASK, "tiny_mc")
    write_task(folder, GEN_TASK, "tiny_gen")
    return folder


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory) -> Path:
    """A tiny random Llama (hidden 32, 2 layers) with its char tokenizer."""
    return save_random_llama(tmp_path_factory.mktemp("base") / "model", seed=0)


@pytest.fixture
def tiny(base_dir):
    """A fresh (model, tokenizer) pair of the base model."""
    return load(base_dir)
