"""Perplexity, or mean log-likelihood per token, of a causal LM on a local text file.

A cheap proxy objective: no prompts, no generation, one forward pass per batch. The file
is a JSONL file (one document per line, its text in ``field``; a document's ``id`` names
it when every document has a distinct one) or any other text file (one document per
non-empty line). Documents are tokenized once per worker, with the tokenizer's special
tokens (a BOS token, for most); each token after the first is predicted from those
before it. A document longer than ``max_length`` tokens is cut into consecutive windows
that share one token, so every token is predicted exactly once.

The objective is token-weighted over all documents: ``<name>/perplexity`` =
exp(mean negative log-likelihood), minimised, or ``<name>/mean_loglikelihood``,
maximised. The per-document score is exp(mean log-likelihood of its tokens), in (0, 1],
higher is better, so per-sample matrices stay non-negative as M2N2 expects.

>>> import json, tempfile, pathlib, torch
>>> from evomerge.testing.random_models import save_random_llama
>>> from transformers import AutoModelForCausalLM, AutoTokenizer
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = save_random_llama(d / "m", seed=0)
>>> _ = (d / "t.jsonl").write_text(json.dumps({"text": "hello world"}) + "\\n")
>>> ev = PerplexityEvaluator("wiki", d / "t.jsonl")
>>> model, tok = AutoModelForCausalLM.from_pretrained(d / "m"), AutoTokenizer.from_pretrained(d / "m")
>>> fit = ev.evaluate(model, tok)
>>> fit.status, list(fit.objectives), fit.direction("wiki/perplexity")
('ok', ['wiki/perplexity'], 'minimize')
>>> 1 < fit.objectives["wiki/perplexity"] < 10_000
True
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Literal

from evomerge.errors import ConfigError
from evomerge.evaluate.base import Evaluator, Scores
from evomerge.records import Direction


def read_documents(path: str | Path, field: str = "text",
                   limit: int | None = None) -> list[tuple[str, str]]:
    """(doc id, text) pairs from a JSONL or text file; ConfigError names a bad line.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = p.write_text("one\\n\\ntwo\\n")
    >>> read_documents(p)
    [('0', 'one'), ('1', 'two')]
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, None, None, "perplexity data file does not exist")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix != ".jsonl":
        texts, ids = lines, None
    else:
        records = []
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(path, f"line {number}", line[:40], f"not JSON: {err}") from None
            if not isinstance(record, dict) or not isinstance(record.get(field), str):
                raise ConfigError(path, f"line {number}.{field}", line[:40],
                                  "each line must be an object with a text field")
            records.append(record)
        texts = [r[field] for r in records]
        ids = [str(r["id"]) for r in records] if all("id" in r for r in records) else None
        ids = ids if ids is not None and len(set(ids)) == len(ids) else None
    pairs = list(zip(ids or [str(i) for i in range(len(texts))], texts))
    pairs = pairs[:limit] if limit is not None else pairs
    if not pairs:
        raise ConfigError(path, None, None, "the file holds no documents")
    return pairs


def windows(ids: list[int], max_length: int) -> list[list[int]]:
    """Cut a token list into windows of at most ``max_length`` tokens sharing one token.

    >>> windows([1, 2, 3, 4, 5], 3)
    [[1, 2, 3], [3, 4, 5]]
    """
    step = max_length - 1
    return [ids[i:i + max_length] for i in range(0, max(len(ids) - 1, 1), step)]


class PerplexityEvaluator(Evaluator):
    """See the module docstring; ``batch_size`` windows go through the model at once."""

    kind = "perplexity"

    def __init__(self, name: str, path: str | Path, field: str = "text",
                 limit: int | None = None, batch_size: int = 8, max_length: int | None = None,
                 measure: Literal["perplexity", "mean_loglikelihood"] = "perplexity"):
        self.name, self.path, self.field = name, Path(path), field
        self.limit, self.batch_size, self.max_length = limit, batch_size, max_length
        self.measure = measure
        self._docs = read_documents(self.path, field, limit)
        self._windows: list[tuple[int, list[int]]] = []

    def objectives(self) -> dict[str, Direction]:
        direction: Direction = "minimize" if self.measure == "perplexity" else "maximize"
        return {f"{self.name}/{self.measure}": direction}

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "path": str(self.path.resolve()),
                "field": self.field, "limit": self.limit, "batch_size": self.batch_size,
                "max_length": self.max_length, "measure": self.measure,
                "documents": len(self._docs)}

    def prepare(self, model: Any, tokenizer: Any) -> None:
        limit = self.max_length or getattr(model.config, "max_position_embeddings", 2048)
        self._windows = []
        for index, (_, text) in enumerate(self._docs):
            for window in windows(tokenizer(text).input_ids, limit):
                if len(window) > 1:  # a single token predicts nothing
                    self._windows.append((index, window))
        self._pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def score(self, model: Any, tokenizer: Any) -> Scores:
        import torch

        loglik = [0.0] * len(self._docs)
        count = [0] * len(self._docs)
        device = next(model.parameters()).device
        model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            for b in range(0, len(self._windows), self.batch_size):
                batch = self._windows[b:b + self.batch_size]
                width = max(len(w) for _, w in batch)
                ids = torch.full((len(batch), width), self._pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, (_, window) in enumerate(batch):
                    ids[row, :len(window)] = torch.tensor(window)
                    mask[row, :len(window)] = 1
                ids, mask = ids.to(device), mask.to(device)
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
                logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
                picked = logprobs.gather(-1, ids[:, 1:, None]).squeeze(-1) * mask[:, 1:]
                for row, (index, window) in enumerate(batch):
                    loglik[index] += float(picked[row].sum())
                    count[index] += len(window) - 1
        model_s = time.perf_counter() - start
        mean = sum(loglik) / sum(count)
        value = math.exp(-mean) if self.measure == "perplexity" else mean
        per_doc = {doc_id: math.exp(loglik[i] / count[i])
                   for i, (doc_id, _) in enumerate(self._docs) if count[i]}
        return Scores({f"{self.name}/{self.measure}": value},
                      sample_scores={self.name: per_doc}, model_s=model_s)
