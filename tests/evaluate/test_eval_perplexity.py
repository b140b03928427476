"""Perplexity evaluator against a loss computed by hand with the model's own loss."""

from __future__ import annotations

import math

import pytest
import torch
from eval_support import DATA, perturb

from evomerge.errors import ConfigError
from evomerge.evaluate import PerplexityEvaluator
from evomerge.evaluate.perplexity import read_documents, windows


def _hand_loss(model, tokenizer, texts):
    """Token-weighted mean negative log-likelihood, one document at a time, no batching."""
    total, count, per_doc = 0.0, 0, []
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([tokenizer(text).input_ids])
            loss = float(model(input_ids=ids, labels=ids).loss)  # mean over n - 1 targets
            total += loss * (ids.shape[1] - 1)
            count += ids.shape[1] - 1
            per_doc.append(loss)
    return total / count, per_doc


@pytest.mark.parametrize("batch_size", [1, 3])
def test_perplexity_equals_the_hand_computed_loss(tiny, batch_size):
    model, tokenizer = tiny
    perturb(model, seed=11)
    texts = [t for _, t in read_documents(DATA / "tiny_text.jsonl")]
    nll, per_doc = _hand_loss(model, tokenizer, texts)
    fitness = PerplexityEvaluator("text", DATA / "tiny_text.jsonl",
                                  batch_size=batch_size).evaluate(model, tokenizer)
    assert fitness.is_ok, fitness.error
    assert fitness.objectives["text/perplexity"] == pytest.approx(math.exp(nll), rel=1e-5)
    assert fitness.direction("text/perplexity") == "minimize"
    assert fitness.sample_scores["text"] == pytest.approx(
        {k: math.exp(-loss) for k, loss in zip("abcd", per_doc)}, rel=1e-5)


def test_mean_loglikelihood_on_a_text_file_with_a_limit(tiny, tmp_path):
    model, tokenizer = tiny
    path = tmp_path / "lines.txt"
    path.write_text("first line here\n\nsecond one\nthird is not read\n")
    nll, _ = _hand_loss(model, tokenizer, ["first line here", "second one"])
    evaluator = PerplexityEvaluator("lines", path, limit=2, measure="mean_loglikelihood")
    fitness = evaluator.evaluate(model, tokenizer)
    assert fitness.objectives["lines/mean_loglikelihood"] == pytest.approx(-nll, rel=1e-5)
    assert fitness.direction("lines/mean_loglikelihood") == "maximize"
    assert set(fitness.sample_scores["lines"]) == {"0", "1"}


@pytest.mark.parametrize("length", [2, 3, 7, 8, 9, 30])
@pytest.mark.parametrize("max_length", [2, 3, 8])
def test_windows_predict_every_token_once(length, max_length):
    tokens = list(range(length))
    parts = windows(tokens, max_length)
    assert all(len(w) <= max_length for w in parts)
    targets = [t for w in parts for t in w[1:]]  # each window predicts all but its first
    assert targets == tokens[1:]


def test_long_documents_are_cut_into_windows(tiny, tmp_path):
    model, tokenizer = tiny
    path = tmp_path / "long.txt"
    path.write_text("abcdefghijklmnopqrstuvwxyz\n")
    whole = PerplexityEvaluator("p", path).evaluate(model, tokenizer)
    cut = PerplexityEvaluator("p", path, max_length=8).evaluate(model, tokenizer)
    assert cut.is_ok and whole.is_ok
    # same tokens predicted, from shorter contexts: a different but finite value
    assert cut.objectives["p/perplexity"] != whole.objectives["p/perplexity"]
    assert math.isfinite(cut.objectives["p/perplexity"])


def test_bad_files_are_config_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text field"}\n')
    with pytest.raises(ConfigError, match="line 2.text"):
        read_documents(bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(ConfigError, match="not JSON"):
        read_documents(broken)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ConfigError, match="no documents"):
        read_documents(empty)
