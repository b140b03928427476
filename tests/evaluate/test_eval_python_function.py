"""A user's metric function as an evaluator."""

from __future__ import annotations

import textwrap

import pytest

from evomerge.evaluate import PythonFunctionEvaluator

USER_CODE = textwrap.dedent('''
    import torch

    def metrics(model, tokenizer):
        weight = model.lm_head.weight
        return {"head_norm": torch.linalg.norm(weight), "vocab": len(tokenizer),
                "note": "not an objective"}

    def not_a_number(model, tokenizer):
        return {"head_norm": "large"}

    def not_finite(model, tokenizer):
        return {"head_norm": float("nan")}

    def missing(model, tokenizer):
        return {"other": 1.0}

    def crashes(model, tokenizer):
        raise ZeroDivisionError("user code failed")

    def not_a_dict(model, tokenizer):
        return 0.5
''')


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "user_metrics_evomerge_test.py"
    path.write_text(USER_CODE)
    return path


def test_function_from_a_file_reports_declared_metrics(user_file, tiny):
    model, tokenizer = tiny
    evaluator = PythonFunctionEvaluator(
        "custom", f"{user_file}:metrics", {"head_norm": "minimize", "vocab": "maximize"})
    fitness = evaluator.evaluate(model, tokenizer)
    assert fitness.is_ok, fitness.error
    assert fitness.objectives == {
        "custom/head_norm": pytest.approx(float(model.lm_head.weight.detach().norm())),
        "custom/vocab": float(len(tokenizer)),
    }
    assert fitness.direction("custom/head_norm") == "minimize"


def test_function_from_an_importable_module(user_file, tiny, monkeypatch):
    monkeypatch.syspath_prepend(str(user_file.parent))
    evaluator = PythonFunctionEvaluator("custom", "user_metrics_evomerge_test:metrics",
                                        {"vocab": "maximize"})
    assert evaluator.evaluate(*tiny).objectives == {"custom/vocab": float(len(tiny[1]))}


@pytest.mark.parametrize("name, message", [
    ("not_a_number", "returned 'large' for metric 'head_norm'"),
    ("not_finite", "returned nan for metric 'head_norm'"),
    ("missing", "without the declared ['head_norm']"),
    ("crashes", "ZeroDivisionError: user code failed"),
    ("not_a_dict", "must return a dict of metrics, but returned float"),
])
def test_bad_results_fail_the_candidate_only(user_file, tiny, name, message):
    evaluator = PythonFunctionEvaluator("custom", f"{user_file}:{name}",
                                        {"head_norm": "minimize"})
    fitness = evaluator.evaluate(*tiny)
    assert fitness.status == "failed"
    assert message in fitness.error
