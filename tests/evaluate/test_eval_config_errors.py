"""Bad evaluation configs fail before any model is built, naming file, field, value and rule."""

from __future__ import annotations

import re

import pytest
from eval_support import GEN_TASK, MC_TASK, write_task

from evomerge.errors import ConfigError
from evomerge.evaluate import (
    LmEvalConfig,
    LmEvalEvaluator,
    TaskConfig,
    build_search_evaluator,
    check_evaluation_config,
    load_evaluation_config,
)
from evomerge.evaluate.lm_eval_tasks import resolve_lm_eval_config


def _check(data: dict) -> None:
    check_evaluation_config(load_evaluation_config(data, "campaign.yaml"), "campaign.yaml")


def _lm_eval(task_dir, search, report=()) -> dict:
    return {"lm_eval": {"include_paths": [str(task_dir)], "search_tasks": list(search),
                        "report_tasks": list(report)}}


def test_valid_config_passes_and_fixes_metric_and_filter(task_dir):
    _check(_lm_eval(task_dir, [{"name": MC_TASK}], [{"name": GEN_TASK}]))
    resolved = resolve_lm_eval_config(
        LmEvalConfig(include_paths=[str(task_dir)], search_tasks=[TaskConfig(name=MC_TASK)]))
    task = resolved.search[0]
    assert (task.metric, task.filter, task.direction) == ("acc", "none", "maximize")


@pytest.mark.slow
def test_unknown_task_names_the_nearest_tasks(task_dir):
    # Unknown names are looked up in lm-eval's full index (built-in tasks included).
    with pytest.raises(ConfigError) as err:
        _check(_lm_eval(task_dir, [{"name": "evomerge_tiny_mcq"}]))
    assert err.value.field == "evaluation.lm_eval.search_tasks[0].name"
    assert "did you mean 'evomerge_tiny_mc'" in str(err.value)
    with pytest.raises(ConfigError, match=r"did you mean 'arc_easy'"):
        _check(_lm_eval(task_dir, [{"name": MC_TASK}], [{"name": "arc_eazy"}]))


def test_missing_task_folder(tmp_path):
    with pytest.raises(ConfigError) as err:
        _check(_lm_eval(tmp_path / "no_such_folder", [{"name": MC_TASK}]))
    assert err.value.field == "evaluation.lm_eval.include_paths[0]"
    assert "task folder does not exist" in str(err.value)


def test_metric_the_task_does_not_produce(task_dir):
    with pytest.raises(ConfigError) as err:
        _check(_lm_eval(task_dir, [{"name": MC_TASK, "metric": "exact_match"}]))
    assert err.value.field == "evaluation.lm_eval.search_tasks[0].metric"
    assert err.value.value == "exact_match"
    assert "produces metrics ['acc', 'acc_norm']" in str(err.value)


def test_filter_the_task_does_not_have(task_dir):
    with pytest.raises(ConfigError, match=r"has filters \['none'\]"):
        _check(_lm_eval(task_dir, [{"name": GEN_TASK, "filter": "strict-match"}]))


@pytest.mark.parametrize("limit", [0, -3, 2.5])
def test_limit_must_be_a_positive_count_or_fraction(task_dir, limit):
    with pytest.raises(ConfigError) as err:
        _check(_lm_eval(task_dir, [{"name": MC_TASK, "limit": limit}]))
    assert err.value.field == "evaluation.lm_eval.search_tasks[0].limit"
    assert err.value.value == limit and "must be > 0" in err.value.rule


def test_task_whose_data_file_is_missing(tmp_path):
    folder = tmp_path / "tasks"
    write_task(folder, "broken_task", "tiny_mc",
               dataset_kwargs={"data_files": {"test": str(tmp_path / "gone.jsonl")}})
    with pytest.raises(ConfigError) as err:
        _check(_lm_eval(folder, [{"name": "broken_task"}]))
    assert err.value.file == "campaign.yaml" and err.value.value == "broken_task"
    assert "gone.jsonl' does not exist" in str(err.value)


def test_same_split_for_search_and_report_is_refused(task_dir, tmp_path):
    with pytest.raises(ConfigError, match="same data as search task") as err:
        _check(_lm_eval(task_dir, [{"name": MC_TASK}], [{"name": MC_TASK}]))
    assert err.value.field == "evaluation.lm_eval.report_tasks[0].name"
    # a renamed copy reading the same file is the same split
    folder = tmp_path / "more"
    write_task(folder, "tiny_mc_copy", "tiny_mc")
    data = _lm_eval(task_dir, [{"name": MC_TASK}], [{"name": "tiny_mc_copy"}])
    data["lm_eval"]["include_paths"].append(str(folder))
    with pytest.raises(ConfigError, match=re.escape(f"search task '{MC_TASK}'")):
        _check(data)


def test_one_document_selection_and_unknown_keys(task_dir):
    with pytest.raises(ConfigError, match="choose one of limit, subsample and doc_ids"):
        _check(_lm_eval(task_dir, [{"name": MC_TASK, "limit": 3, "doc_ids": [1]}]))
    with pytest.raises(ConfigError, match="did you mean 'num_fewshot'"):
        _check(_lm_eval(task_dir, [{"name": MC_TASK, "num_fewshots": 3}]))
    with pytest.raises(ConfigError, match="name at least one of"):
        _check({})


def test_subsample_larger_than_the_task_fails_at_setup(task_dir, tiny):
    config = LmEvalConfig(include_paths=[str(task_dir)],
                          search_tasks=[TaskConfig(name=MC_TASK, subsample={"size": 50})])
    with pytest.raises(ConfigError, match="has only 20 documents"):
        LmEvalEvaluator(config).setup(*tiny)


def test_score_cannot_mix_directions(tmp_path):
    folder = tmp_path / "tasks"
    write_task(folder, "mc_loss", "tiny_mc",
               metric_list=[{"metric": "acc", "aggregation": "mean", "higher_is_better": False}])
    write_task(folder, MC_TASK, "tiny_mc")
    config = LmEvalConfig(include_paths=[str(folder)],
                          search_tasks=[TaskConfig(name="mc_loss"), TaskConfig(name=MC_TASK)])
    with pytest.raises(ConfigError, match="mixes metrics to maximize and to minimize"):
        LmEvalEvaluator(config)
    zero = config.model_copy(update={"search_tasks": [TaskConfig(name="mc_loss", weight=0),
                                                      TaskConfig(name=MC_TASK)]})
    assert LmEvalEvaluator(zero).objectives()["mc_loss/acc"] == "minimize"


def test_python_function_and_perplexity_file_are_checked(tmp_path):
    def python(function: str) -> dict:
        return {"python": [{"name": "f", "function": function,
                            "objectives": {"m": "maximize"}}]}

    with pytest.raises(ConfigError, match="cannot import 'no_such_module_xyz'"):
        _check(python("no_such_module_xyz:f"))
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        _check(python("math:nope"))
    with pytest.raises(ConfigError, match="is not callable"):
        _check(python("math:pi"))
    with pytest.raises(ConfigError, match="two positional arguments"):
        _check(python("os.path:exists"))
    with pytest.raises(ConfigError, match="must be 'module:function'"):
        _check(python("just_a_name"))
    with pytest.raises(ConfigError) as err:
        _check({"perplexity": [{"name": "p", "path": str(tmp_path / "none.jsonl")}]})
    assert err.value.field == "evaluation.perplexity[0].path"


def test_model_objective_needs_the_base_weights():
    config = load_evaluation_config({"model_objectives": ["l1_from_base"]})
    with pytest.raises(ConfigError, match="needs the base model's weights"):
        build_search_evaluator(config)
