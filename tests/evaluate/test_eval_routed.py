"""lm-eval scores a routed model in memory as it scores the folder it exports to, and one
adapter serves routed candidates rebuilt in place."""

from __future__ import annotations

import torch
from eval_support import GEN_TASK, MC_TASK
from transformers import AutoModelForCausalLM, AutoTokenizer

from evomerge.evaluate import LmEvalConfig, LmEvalEvaluator, TaskConfig
from evomerge.export.routed import export_routed
from evomerge.merge.recipe import load_recipe_dict
from evomerge.merge.routed_model import build_routed, load_sources
from evomerge.testing.random_models import save_random_llama


def _config(task_dir) -> LmEvalConfig:
    return LmEvalConfig(
        include_paths=[str(task_dir)], batch_size=4, log_samples=True,
        search_tasks=[TaskConfig(name=MC_TASK, limit=8),
                      TaskConfig(name=GEN_TASK, limit=4, max_gen_toks=4)],
    )


def _scored(evaluator: LmEvalEvaluator, model, tokenizer):
    """The fitness and every response (log-likelihoods, generations) behind it."""
    fitness = evaluator.evaluate(model, tokenizer)
    assert fitness.is_ok, fitness.error
    responses = {task: [s["filtered_resps"] for s in samples]
                 for task, samples in evaluator.last_samples.items()}
    return fitness.objectives, fitness.sample_scores, responses


def _recipe(a, b, scale):
    path = [(a, 0, 1.0), (b, 1, scale), (b, 0, 1.0), (a, 1, 1.0)]
    return load_recipe_dict({"routing": {"embeddings": str(a), "path": [
        {"model": str(m), "layer": layer, "scale": s} for m, layer, s in path]}})


def test_a_routed_model_scores_in_memory_as_its_exported_folder(tmp_path, task_dir):
    a = save_random_llama(tmp_path / "a", seed=0)
    b = save_random_llama(tmp_path / "b", seed=1)
    sources = load_sources([a, b])
    tokenizer = AutoTokenizer.from_pretrained(a)
    recipe = _recipe(a, b, 0.7)
    model = build_routed(recipe, sources)
    in_memory = _scored(LmEvalEvaluator(_config(task_dir)), model, tokenizer)

    out = export_routed(model, tmp_path / "routed", recipe=recipe)
    loaded = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True,
                                                  dtype=torch.float32).eval()
    folder = _scored(LmEvalEvaluator(_config(task_dir)), loaded,
                     AutoTokenizer.from_pretrained(out))
    assert folder == in_memory

    # candidates rebuilt into one routed module: one adapter, the scores of fresh ones
    other = _recipe(a, b, 1.4)
    fresh = _scored(LmEvalEvaluator(_config(task_dir)), build_routed(other, sources),
                    tokenizer)
    shared = LmEvalEvaluator(_config(task_dir))
    for candidate, want in ((other, fresh), (recipe, in_memory), (other, fresh)):
        rebuilt = build_routed(candidate, sources, into=model)
        assert rebuilt is model
        assert _scored(shared, rebuilt, tokenizer) == want
    assert fresh[2] != in_memory[2]  # the scale changes the log-likelihoods
