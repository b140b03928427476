"""Several evaluators as separate objectives, model-side objectives, and the registry."""

from __future__ import annotations

import pytest
import torch
from eval_support import DATA, MC_TASK, load, perturb

from evomerge.errors import ConfigError, UnknownNameError
from evomerge.evaluate import (
    EVALUATORS,
    CompositeEvaluator,
    L1FromBase,
    PythonFunctionEvaluator,
    build_report_evaluator,
    build_search_evaluator,
    check_evaluation_config,
    load_evaluation_config,
)


def _config(task_dir, **extra):
    return load_evaluation_config({
        "lm_eval": {"include_paths": [str(task_dir)], "batch_size": 4,
                    "search_tasks": [{"name": MC_TASK, "limit": 6}]},
        "perplexity": [{"name": "text", "path": str(DATA / "tiny_text.jsonl")}],
        "python": [{"name": "size",
                    "function": "evomerge.evaluate.python_function:parameter_count",
                    "objectives": {"params": "minimize"}}],
        "model_objectives": ["l1_from_base"],
        **extra,
    }, "campaign.yaml")


def test_every_evaluator_reports_its_own_objectives(base_dir, task_dir):
    base, tokenizer = load(base_dir)
    reference = {k: v.clone() for k, v in base.state_dict().items()}
    config = _config(task_dir)
    check_evaluation_config(config, "campaign.yaml")
    evaluator = build_search_evaluator(config, "campaign.yaml", reference_state=lambda: reference)
    assert evaluator.objectives() == {
        "score": "maximize", f"{MC_TASK}/acc": "maximize", "text/perplexity": "minimize",
        "size/params": "minimize", "l1_from_base": "minimize"}

    at_base = evaluator.evaluate(base, tokenizer)
    assert at_base.is_ok, at_base.error
    assert at_base.objectives["l1_from_base"] == 0.0
    assert at_base.objectives["size/params"] == sum(p.numel() for p in base.parameters())
    assert set(at_base.sample_scores) == {MC_TASK, "text"}
    assert at_base.timings["model_s"] == pytest.approx(
        sum(v for k, v in at_base.timings.items() if k.endswith("].model_s")))

    perturb(base, seed=9)
    moved = evaluator.evaluate(base, tokenizer)
    expected = sum(float((base.state_dict()[k].double() - v.double()).abs().sum())
                   for k, v in reference.items())
    assert moved.objectives["l1_from_base"] == pytest.approx(expected, rel=1e-9)
    assert moved.objectives["text/perplexity"] != at_base.objectives["text/perplexity"]
    assert build_report_evaluator(config) is None


def test_one_failing_part_fails_the_candidate(tiny):
    model, tokenizer = tiny
    parts = [L1FromBase({"no.such.tensor": torch.zeros(1)}),
             PythonFunctionEvaluator("size", "evomerge.evaluate.python_function:parameter_count",
                                     {"params": "minimize"})]
    fitness = CompositeEvaluator(parts).evaluate(model, tokenizer)
    assert fitness.status == "failed"
    assert "the model has no tensor 'no.such.tensor'" in fitness.error


def test_objective_names_must_not_collide():
    part = PythonFunctionEvaluator("size", "evomerge.evaluate.python_function:parameter_count",
                                   {"params": "minimize"})
    with pytest.raises(ConfigError, match="objective names must differ"):
        CompositeEvaluator([part, part])


def test_report_evaluator_scores_the_report_list(task_dir, tmp_path, tiny):
    from eval_support import write_task

    folder = tmp_path / "report"
    write_task(folder, "mc_report", "tiny_mc",
               dataset_kwargs={"data_files": {"test": str(tmp_path / "held_out.jsonl")}})
    (tmp_path / "held_out.jsonl").write_text((DATA / "tiny_mc.jsonl").read_text().split("\n", 5)[5])
    config = load_evaluation_config({"lm_eval": {
        "include_paths": [str(task_dir), str(folder)],
        "search_tasks": [{"name": MC_TASK, "limit": 5}],
        "report_tasks": [{"name": "mc_report", "limit": 4}]}})
    report = build_report_evaluator(config)
    assert report.objective_names == ("score", "mc_report/acc")
    assert set(report.evaluate(*tiny).sample_scores["mc_report"]) == {
        f"sum-{i:02d}" for i in range(5, 9)}


def test_registry_is_strict():
    assert EVALUATORS.get("perplexity").kind == "perplexity"
    with pytest.raises(UnknownNameError, match="did you mean 'perplexity'"):
        EVALUATORS.get("perplexty")
    with pytest.raises(ValueError, match="already registered"):
        EVALUATORS.register("lm_eval", CompositeEvaluator)
