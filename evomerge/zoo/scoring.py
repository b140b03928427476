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


@dataclass
class PreparedTask:
    """A task's documents encoded once, to score many models on (a merge grid).

    ``ids``/``mask``: one right-padded sequence per (document, choice); ``choice_mask``
    marks the positions whose *next* token is a choice token; ``stop_pos`` is the position
    whose next token ends the answer; ``labels`` holds each document's right choice.
    """

    doc_ids: list[str]
    n_choices: int
    labels: torch.Tensor
    ids: torch.Tensor
    mask: torch.Tensor
    choice_mask: torch.Tensor
    stop_pos: torch.Tensor


def prepare(tok: PreTrainedTokenizerFast, rows: Sequence[dict]) -> PreparedTask:
    """Encode ``rows``: ``<s> prompt choice \\n`` per choice. Like lm-eval, the choice
    tokens are those of ``prompt + choice`` past the tokens of ``prompt``."""
    n_choices = len(rows[0]["choices"]) if rows else 0
    prompts = [row["prompt"] for row in rows for _ in row["choices"]]
    wholes = [row["prompt"] + c for row in rows for c in row["choices"]]
    fulls = tok([w + ANSWER_END for w in wholes]).input_ids
    width = max(map(len, fulls), default=1)
    ids = torch.full((len(fulls), width), tok.pad_token_id or 0, dtype=torch.long)
    mask = torch.zeros((len(fulls), width), dtype=torch.long)
    choice_mask = torch.zeros((len(fulls), width - 1), dtype=torch.bool)
    stop_pos = torch.zeros(len(fulls), dtype=torch.long)
    spans = zip(tok(prompts).input_ids, tok(wholes).input_ids)
    for i, (f, (ctx, whole)) in enumerate(zip(fulls, spans)):
        ids[i, : len(f)] = torch.tensor(f)
        mask[i, : len(f)] = 1
        # the logits at position t predict the token at t + 1
        choice_mask[i, len(ctx) - 1: len(whole) - 1] = True
        stop_pos[i] = len(whole) - 1
    labels = torch.tensor([row["label"] for row in rows], dtype=torch.long)
    return PreparedTask([row["doc_id"] for row in rows], n_choices, labels, ids, mask,
                        choice_mask, stop_pos)


@torch.no_grad()
def score_prepared(model: PreTrainedModel, task: PreparedTask, stop_ids: Sequence[int],
                   batch_size: int = 256) -> TaskScores:
    """Score a prepared task with both metrics (one forward pass per batch)."""
    was_training = model.training
    model.eval()
    totals, exact = [], []
    stops = torch.tensor(sorted(set(stop_ids)))
    for start in range(0, len(task.ids), batch_size):
        sl = slice(start, start + batch_size)
        ids, mask = task.ids[sl], task.mask[sl]
        logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(),
                                     dim=-1)[:, :-1]
        nxt = ids[:, 1:]
        chosen = logprobs.gather(-1, nxt[..., None])[..., 0]
        cmask = task.choice_mask[sl]
        totals.append((chosen * cmask).sum(-1))
        pred = logprobs.argmax(-1)
        answer_ok = ((pred == nxt) | ~cmask).all(-1)
        stop_pred = pred.gather(-1, task.stop_pos[sl, None])[:, 0]
        exact.append(answer_ok & torch.isin(stop_pred, stops))
    model.train(was_training)
    n, k = len(task.doc_ids), task.n_choices
    totals_t = torch.cat(totals).view(n, k) if n else torch.zeros(0, k)
    exact_t = torch.cat(exact).view(n, k) if n else torch.zeros(0, k, dtype=torch.bool)
    # argmax returns the first maximum: ties go to the first choice, as in lm-eval
    acc = (totals_t.argmax(-1) == task.labels).float()
    em = exact_t.gather(-1, task.labels[:, None])[:, 0].float()
    per_doc = {"acc": dict(zip(task.doc_ids, acc.tolist())),
               "exact_match": dict(zip(task.doc_ids, em.tolist()))}
    metrics = {m: sum(v.values()) / max(1, len(v)) for m, v in per_doc.items()}
    return TaskScores(metrics, per_doc)


def stop_token_ids(tok: PreTrainedTokenizerFast) -> list[int]:
    """Tokens that end greedy generation: the newline and the end of sequence."""
    return [t for t in (tok.convert_tokens_to_ids(ANSWER_END), tok.eos_token_id)
            if t is not None]


def score_rows(model: PreTrainedModel, tok: PreTrainedTokenizerFast, rows: Sequence[dict],
               batch_size: int = 256) -> TaskScores:
    """Score ``rows`` (JSONL documents of one task) with both metrics."""
    return score_prepared(model, prepare(tok, rows), stop_token_ids(tok), batch_size)
