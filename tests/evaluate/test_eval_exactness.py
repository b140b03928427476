"""The adapter gives the numbers the ``lm_eval`` command line gives on a saved copy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from evomerge.evaluate import LmEvalConfig, LmEvalEvaluator, TaskConfig

from eval_support import GEN_TASK, MC_TASK, load, perturb


# Log-likelihoods are float32 sums whose order depends on the thread count and the
# kernels chosen, which the ``lm_eval`` subprocess and this process need not share: they
# differ in the last bits (about 1e-6 on values near -10). A real mismatch (another prompt,
# a lost BOS token, another dtype) moves them by 1e-2 or more.
LL_TOLERANCE = {"rel": 1e-4, "abs": 1e-4}


def _numbers(resps):
    """lm-eval logs loglikelihood responses as strings; compare them as numbers."""
    if isinstance(resps, (list, tuple)):
        return [_numbers(r) for r in resps]
    if isinstance(resps, str):
        try:
            return float(resps)
        except ValueError:
            return {"True": True, "False": False}.get(resps, resps)
    return resps


def _assert_same_choices(ours, theirs, doc):
    """Per answer choice (loglikelihood, is_greedy): the first to a tolerance, the second exactly."""
    assert len(ours) == len(theirs), doc
    for i, ((ll, greedy), (their_ll, their_greedy)) in enumerate(zip(ours, theirs)):
        assert ll == pytest.approx(their_ll, **LL_TOLERANCE), f"{doc} choice {i}"
        assert greedy == their_greedy, f"{doc} choice {i}"
    # the best choice wins by more than the tolerance, so an exact `acc` is no luck
    best, second = sorted((ll for ll, _ in theirs), reverse=True)[:2]
    assert best - second > LL_TOLERANCE["abs"] + LL_TOLERANCE["rel"] * abs(best), doc


def _doc_key(task: str, sample: dict) -> str:
    # The multiple-choice documents carry an `id`; the generation ones are keyed by index.
    return sample["doc"]["id"] if task == MC_TASK else str(sample["doc_id"])


@pytest.mark.slow
def test_in_memory_merge_scores_like_the_lm_eval_command_line(base_dir, task_dir, tmp_path):
    model, tokenizer = load(base_dir)
    perturb(model, seed=3)  # a candidate that exists only in memory
    config = LmEvalConfig(
        include_paths=[str(task_dir)], batch_size=4, log_samples=True,
        search_tasks=[TaskConfig(name=MC_TASK, limit=12),
                      TaskConfig(name=GEN_TASK, limit=12, max_gen_toks=4)],
    )
    evaluator = LmEvalEvaluator(config)
    fitness = evaluator.evaluate(model, tokenizer)
    assert fitness.is_ok, fitness.error

    saved = tmp_path / "candidate"
    model.save_pretrained(saved, safe_serialization=True)
    tokenizer.save_pretrained(saved)
    out = tmp_path / "out"
    subprocess.run(
        [sys.executable, "-m", "lm_eval", "run", "--model", "hf",
         "--model_args", f"pretrained={saved},dtype=float32", "--device", "cpu",
         "--include_path", str(task_dir), "--tasks", MC_TASK, GEN_TASK,
         "--limit", "12", "--batch_size", "4", "--gen_kwargs", "max_gen_toks=4",
         "--output_path", str(out), "--log_samples"],
        check=True, capture_output=True, text=True, timeout=300,
    )
    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]
    mc, gen = results[MC_TASK]["acc,none"], results[GEN_TASK]["exact_match,none"]
    assert fitness.objectives[f"{MC_TASK}/acc"] == mc
    assert fitness.objectives[f"{GEN_TASK}/exact_match"] == gen
    assert fitness.objectives["score"] == pytest.approx((mc + gen) / 2)
    assert 0 < mc < 1  # random weights: a score that can move either way

    for task, metric in ((MC_TASK, "acc"), (GEN_TASK, "exact_match")):
        logged = [json.loads(line) for line in next(out.rglob(f"samples_{task}_*.jsonl")).open()]
        assert len(logged) == 12
        # per-sample metrics, keyed by the same stable document ids
        assert {_doc_key(task, s): s[metric] for s in logged} == fitness.sample_scores[task]
        # every response: loglikelihoods to float32 reordering, generated strings exactly
        theirs = {_doc_key(task, s): s["filtered_resps"] for s in logged}
        ours = {s["doc_id"]: s["filtered_resps"] for s in evaluator.last_samples[task]}
        assert set(ours) == set(theirs)
        for doc, resps in theirs.items():
            if task == MC_TASK:
                _assert_same_choices(_numbers(ours[doc]), _numbers(resps), doc)
            else:
                assert list(ours[doc]) == list(resps), doc
    generations = [s["filtered_resps"][0] for s in evaluator.last_samples[GEN_TASK]]
    assert all(0 < len(g) <= 4 for g in generations)  # max_gen_toks=4 on a char tokenizer
