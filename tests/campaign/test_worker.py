"""The in-process worker: a recipe that cannot be built, or a score that is not a number,
is a failed Fitness with the error text; the worker goes on with the next candidate."""

from __future__ import annotations

import pytest

from evomerge.evaluate import Scores
from evomerge.evaluate.base import Evaluator
from evomerge.evaluate.config import load_evaluation_config
from evomerge.execute import WorkerSpec, build_executor


class Constant(Evaluator):
    """Reports one fixed value, NaN included."""

    kind = "constant"

    def __init__(self, value):
        self.value = value

    def objectives(self):
        return {"score": "maximize"}

    def settings(self):
        return {"kind": self.kind}

    def score(self, model, tokenizer):
        return Scores({"score": self.value})


@pytest.fixture(scope="module")
def executor(tiny_zoo):
    evaluation = load_evaluation_config({"lm_eval": {
        "include_paths": [str(tiny_zoo.task_dir)],
        "search_tasks": [{"name": "zoo_add_mc_search", "limit": 2}]}})
    spec = WorkerSpec(base=str(tiny_zoo.base), sources=(str(tiny_zoo.experts["add"]),),
                      evaluation=evaluation, device="cpu")
    with build_executor("local", spec) as ex:
        yield ex


def _recipe(zoo, weight=0.5, model=None):
    return {"merge_method": "task_arithmetic", "base_model": str(zoo.base),
            "models": [{"model": str(model or zoo.experts["add"]),
                        "parameters": {"weight": weight}}]}


def test_a_candidate_is_built_scored_and_timed(executor, tiny_zoo):
    executor.submit("a", _recipe(tiny_zoo))
    [(uid, fitness)] = executor.results()
    assert uid == "a" and fitness.is_ok and executor.pending == 0
    assert 0.0 <= fitness.objectives["score"] <= 1.0
    assert fitness.timings["merge_s"] > 0 and fitness.timings["eval_s"] > 0
    assert fitness.worker


def test_a_recipe_that_cannot_be_built_fails_alone(executor, tiny_zoo):
    executor.submit("bad", _recipe(tiny_zoo, model=tiny_zoo.experts["sort"]))
    executor.submit("good", _recipe(tiny_zoo, weight=1.0))
    [(uid, fitness)] = executor.results()
    assert uid == "bad" and fitness.status == "failed"
    assert "not among the resident sources" in fitness.error
    [(uid, fitness)] = executor.results()
    assert uid == "good" and fitness.is_ok


def test_a_score_that_is_not_a_number_is_a_failure(executor, tiny_zoo):
    executor.results()  # nothing pending: nothing returned
    worker = executor._worker
    kept = worker.evaluators["search"]
    try:
        worker.evaluators["search"] = Constant(float("nan"))
        fitness = worker.evaluate(_recipe(tiny_zoo))
    finally:
        worker.evaluators["search"] = kept
    assert fitness.status == "failed" and "not finite" in fitness.error
    assert fitness.timings["merge_s"] > 0
