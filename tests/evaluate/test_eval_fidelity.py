"""Fidelity levels: nested seeded shares of each task's documents, each document scored
once across levels, and the last level equal to a direct evaluation."""

from __future__ import annotations

from eval_support import GEN_TASK, MC_TASK

from evomerge.evaluate import LmEvalConfig, LmEvalEvaluator, TaskConfig
from evomerge.evaluate.config import FidelityConfig
from evomerge.evaluate.fidelity import LevelJob


def _evaluator(task_dir, seed=0, levels=(0.25, 0.5, 1.0)):
    config = LmEvalConfig(include_paths=[str(task_dir)],
                          search_tasks=[TaskConfig(name=MC_TASK), TaskConfig(name=GEN_TASK)])
    return LmEvalEvaluator(config, fidelity=FidelityConfig(levels=list(levels), seed=seed))


def test_levels_score_new_documents_only_and_end_at_the_direct_score(tiny, task_dir):
    model, tokenizer = tiny
    evaluator = _evaluator(task_dir)
    direct = evaluator.evaluate(model, tokenizer)
    assert direct.is_ok

    prior, scored, shares = {}, 0, []
    for level in range(3):
        fit = evaluator.evaluate(model, tokenizer, LevelJob(level, prior))
        assert fit.is_ok, fit.error
        docs = evaluator.level_documents(level)
        assert {leaf: sorted(s) for leaf, s in fit.sample_scores.items()} == {
            leaf: sorted(keys) for leaf, keys in docs.items()}
        for leaf, scores in prior.items():  # earlier levels' scores are carried, not redone
            assert all(fit.sample_scores[leaf][k] == v for k, v in scores.items())
        scored += fit.timings["documents"]
        shares.append(sum(map(len, docs.values())))
        prior = fit.sample_scores

    total = sum(len(s) for s in direct.sample_scores.values())
    assert scored == total  # every document once over the three levels
    assert shares[0] < shares[1] < shares[2] == total
    assert fit.objectives == direct.objectives  # bit for bit
    assert fit.sample_scores == direct.sample_scores


def test_level_documents_are_nested_seeded_and_stratified(tiny, task_dir):
    model, tokenizer = tiny
    a, b, other = _evaluator(task_dir), _evaluator(task_dir), _evaluator(task_dir, seed=1)
    for ev in (a, b, other):
        ev.setup(model, tokenizer)
    levels = [a.level_documents(k) for k in range(3)]
    assert levels == [b.level_documents(k) for k in range(3)]
    assert levels[0] != other.level_documents(0)
    for leaf in levels[0]:
        n = len(levels[2][leaf])
        assert len(levels[0][leaf]) == -(-n // 4)  # a quarter of every task, rounded up
        assert set(levels[0][leaf]) <= set(levels[1][leaf]) <= set(levels[2][leaf])
