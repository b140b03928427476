"""One adapter, many candidates: nothing from one candidate leaks into the next."""

from __future__ import annotations

from eval_support import GEN_TASK, MC_TASK, load, perturb

from evomerge.evaluate import LmEvalConfig, LmEvalEvaluator, TaskConfig


def _config(task_dir) -> LmEvalConfig:
    return LmEvalConfig(
        include_paths=[str(task_dir)], batch_size=4, log_samples=True,
        search_tasks=[TaskConfig(name=MC_TASK, limit=10), TaskConfig(name=GEN_TASK, limit=6)],
    )


def _responses(evaluator: LmEvalEvaluator) -> dict:
    return {task: [s["filtered_resps"] for s in samples]
            for task, samples in evaluator.last_samples.items()}


def test_candidates_built_in_place_score_like_fresh_adapters(base_dir, task_dir):
    model, tokenizer = load(base_dir)
    weights_a = {k: v.clone() for k, v in perturb(model, seed=1).state_dict().items()}
    weights_b = {k: v.clone() for k, v in perturb(model, seed=2).state_dict().items()}

    fresh = {}
    for name, weights in (("a", weights_a), ("b", weights_b)):
        model.load_state_dict(weights)
        evaluator = LmEvalEvaluator(_config(task_dir))
        fresh[name] = (evaluator.evaluate(model, tokenizer), _responses(evaluator))
    # the two candidates really differ, so a stale response would be caught
    assert fresh["a"][1] != fresh["b"][1]

    shared = LmEvalEvaluator(_config(task_dir))
    for name, weights in (("a", weights_a), ("b", weights_b), ("a", weights_a)):
        model.load_state_dict(weights)  # the worker rebuilds into the same module
        fitness = shared.evaluate(model, tokenizer)
        assert fitness.objectives == fresh[name][0].objectives
        assert fitness.sample_scores == fresh[name][0].sample_scores
        assert _responses(shared) == fresh[name][1]
    assert fitness.timings["setup_s"] == 0.0  # built once, on the first candidate


def test_a_new_model_object_is_scored_not_the_wrapped_one(base_dir, task_dir):
    first, tokenizer = load(base_dir)
    second, _ = load(base_dir)
    perturb(second, seed=5)
    shared = LmEvalEvaluator(_config(task_dir))
    shared.evaluate(first, tokenizer)
    got = shared.evaluate(second, tokenizer)
    fresh = LmEvalEvaluator(_config(task_dir))
    want = fresh.evaluate(second, tokenizer)
    assert got.objectives == want.objectives
    assert _responses(shared) == _responses(fresh)


def test_a_failing_candidate_is_recorded_and_the_next_one_is_scored(tiny, task_dir):
    model, tokenizer = tiny
    evaluator = LmEvalEvaluator(_config(task_dir))
    good = evaluator.evaluate(model, tokenizer)

    def explode(module, args):
        raise RuntimeError("CUDA out of memory (simulated)")

    hook = model.model.layers[1].register_forward_pre_hook(explode)
    failed = evaluator.evaluate(model, tokenizer)
    hook.remove()
    assert failed.status == "failed" and failed.objectives == {}
    assert "RuntimeError: CUDA out of memory (simulated)" in failed.error
    assert failed.settings_hash == good.settings_hash
    assert failed.timings["eval_s"] > 0

    again = evaluator.evaluate(model, tokenizer)
    assert again.is_ok
    assert again.objectives == good.objectives and again.sample_scores == good.sample_scores


def test_fitness_records_settings_timings_and_directions(tiny, task_dir):
    model, tokenizer = tiny
    evaluator = LmEvalEvaluator(_config(task_dir))
    fitness = evaluator.evaluate(model, tokenizer)
    assert list(fitness.objectives) == ["score", f"{MC_TASK}/acc", f"{GEN_TASK}/exact_match"]
    assert evaluator.objective_directions == ("maximize",) * 3
    assert fitness.settings_hash == evaluator.settings_hash()
    assert evaluator.settings()["tasks"][0]["metric"] == "acc"
    assert set(fitness.sample_scores[MC_TASK]) == {f"sum-{i:02d}" for i in range(10)}
    assert set(fitness.sample_scores[GEN_TASK]) == {str(i) for i in range(6)}
    t = fitness.timings
    assert t["model_s"] > 0 and t["setup_s"] > 0
    assert t["overhead_s"] == max(t["eval_s"] - t["model_s"], 0.0)
    other = LmEvalEvaluator(_config(task_dir).model_copy(update={"batch_size": 2}))
    assert other.settings_hash() != evaluator.settings_hash()
