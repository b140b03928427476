"""Several evaluators as one: each keeps its own objectives, side by side.

A search over several objectives (task scores, perplexity, a user metric, the distance
from the base model) uses one composite evaluator; an optimizer then sees every
objective under its own name. Any part failing fails the candidate (one record, one
traceback). Timings of each part are kept under ``<kind>[<index>].<timing>``.

>>> from evomerge.evaluate.model_objectives import L1FromBase
>>> from evomerge.evaluate.python_function import PythonFunctionEvaluator
>>> import torch
>>> model = torch.nn.Linear(2, 1)
>>> both = CompositeEvaluator([
...     L1FromBase(model.state_dict()),
...     PythonFunctionEvaluator("size", "evomerge.evaluate.python_function:parameter_count",
...                             {"params": "minimize"})])
>>> both.evaluate(model, None).objectives
{'l1_from_base': 0.0, 'size/params': 3.0}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evomerge.errors import ConfigError
from evomerge.evaluate.base import Evaluator, Scores
from evomerge.records import Direction


class CompositeEvaluator(Evaluator):
    """See the module docstring; objective names must differ across the parts."""

    kind = "composite"

    def __init__(self, parts: Sequence[Evaluator]):
        if not parts:
            raise ConfigError(None, "evaluation", [], "lists no evaluator")
        names = [n for part in parts for n in part.objectives()]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(None, "evaluation", repeated,
                              "objective names must differ across evaluators")
        self.parts = list(parts)

    def objectives(self) -> dict[str, Direction]:
        return {name: d for part in self.parts for name, d in part.objectives().items()}

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind, "parts": [part.settings() for part in self.parts]}

    def prepare(self, model: Any, tokenizer: Any) -> None:
        for part in self.parts:
            part.setup(model, tokenizer)

    def score(self, model: Any, tokenizer: Any) -> Scores:
        total = Scores({})
        for index, part in enumerate(self.parts):
            scores = part.score(model, tokenizer)
            total.objectives.update(scores.objectives)
            for task, per_doc in scores.sample_scores.items():
                if task in total.sample_scores:
                    raise ValueError(f"two evaluators report per-sample scores for {task!r}")
                total.sample_scores[task] = per_doc
            total.model_s += scores.model_s
            prefix = f"{part.kind}[{index}]"
            total.timings[f"{prefix}.model_s"] = scores.model_s
            total.timings.update({f"{prefix}.{k}": v for k, v in scores.timings.items()})
        return total
