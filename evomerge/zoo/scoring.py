"""The zoo's own scoring of a model on a task split, computed the way lm-eval scores the
zoo's task YAMLs, in one teacher-forced pass per batch.

- ``acc`` (multiple choice, partial credit): the choice with the highest summed
  loglikelihood after the prompt is the answer (lm-eval's ``acc``; ties go to the first).
- ``exact_match`` (generation): greedy decoding reproduces the answer and then stops. With
  teacher forcing that is: the argmax at every answer position is the answer's token, and
  the argmax after it is the newline (or end of sequence) that ends generation.

>>> import torch
>>> from evomerge.zoo.train import ModelShape, char_tokenizer, new_model
>>> tok = char_tokenizer()
>>> model = new_model(ModelShape(hidden=16, layers=1, heads=2), tok, seed=0)
>>> rows = [{"doc_id": "d0", "prompt": "rev:ab=", "answer": "ba",
...          "choices": ["ab", "ba", "aa", "bb"], "label": 1}]
>>> s = score_rows(model, tok, rows)
>>> sorted(s.per_doc["acc"]) == ["d0"] and s.metrics["exact_match"] in (0.0, 1.0)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from evomerge.zoo.train import ANSWER_END

METRICS = ("acc", "exact_match")


@dataclass
class TaskScores:
    """Mean of each metric and the per-document scores (doc id -> 0/1) behind it."""

    metrics: dict[str, float]
    per_doc: dict[str, dict[str, float]]


def _choice_batch(tok: PreTrainedTokenizerFast, rows: Sequence[dict]):
    """One sequence per (row, choice): ``<s> prompt choice \\n``, right padded, with the
    span of the choice tokens in each. Like lm-eval, the choice tokens are those of
    ``prompt + choice`` past the tokens of ``prompt``."""
    prompts = [row["prompt"] for row in rows for _ in row["choices"]]
    wholes = [row["prompt"] + c for row in rows for c in row["choices"]]
    n_ctx = [len(x) for x in tok(prompts).input_ids]
    n_whole = [len(x) for x in tok(wholes).input_ids]
    fulls = tok([w + ANSWER_END for w in wholes]).input_ids
    width = max(map(len, fulls))
    ids = torch.full((len(fulls), width), tok.pad_token_id or 0, dtype=torch.long)
    mask = torch.zeros((len(fulls), width), dtype=torch.long)
    for i, f in enumerate(fulls):
        ids[i, : len(f)] = torch.tensor(f)
        mask[i, : len(f)] = 1
    return ids, mask, list(zip(n_ctx, n_whole))


@torch.no_grad()
def score_rows(model: PreTrainedModel, tok: PreTrainedTokenizerFast, rows: Sequence[dict],
               batch_size: int = 64) -> TaskScores:
    """Score ``rows`` (JSONL documents of one task) with both metrics."""
    stop_ids = {tok.convert_tokens_to_ids(ANSWER_END), tok.eos_token_id}
    per_doc: dict[str, dict[str, float]] = {m: {} for m in METRICS}
    was_training = model.training
    model.eval()
    for start in range(0, len(rows), batch_size):
        chunk = rows[start: start + batch_size]
        ids, mask, spans = _choice_batch(tok, chunk)
        logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(),
                                     dim=-1)
        k = 0
        for row in chunk:
            totals = []
            for c in range(len(row["choices"])):
                a, b = spans[k + c]  # choice tokens are a..b-1, the newline is b
                # the logits at position t predict the token at t + 1
                choice = ids[k + c, a:b]
                totals.append(logprobs[k + c, a - 1: b - 1].gather(-1, choice[:, None])
                              .sum().item())
                if c == row["label"]:
                    pred = logprobs[k + c, a - 1: b].argmax(-1)
                    exact = bool((pred[:-1] == choice).all()) and pred[-1].item() in stop_ids
            k += len(row["choices"])
            best = max(range(len(totals)), key=lambda i: (totals[i], -i))
            per_doc["acc"][row["doc_id"]] = float(best == row["label"])
            per_doc["exact_match"][row["doc_id"]] = float(exact)
    model.train(was_training)
    metrics = {m: sum(v.values()) / max(1, len(v)) for m, v in per_doc.items()}
    return TaskScores(metrics, per_doc)
