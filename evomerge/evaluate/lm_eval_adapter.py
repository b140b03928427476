"""Score a live model with lm-eval tasks: same numbers as the ``lm_eval`` command line.

The candidate model stays in memory: lm-eval's Hugging Face class ``HFLM`` wraps the
worker's module as it is, and a worker that rebuilds each candidate into that same
module keeps the wrapper. Task objects, documents, prompts and tokenized requests are
built once per worker (:class:`~evomerge.evaluate.lm_eval_requests.RequestPlan`); per
candidate only the model calls and lm-eval's scoring run.

The fitness reports, for each configured task, ``task/metric`` (the task's chosen metric
after its chosen filter) and ``score``, the weighted mean of those metrics; per-document
scores ``sample_scores[leaf task][doc id]``; and timings: ``model_s`` inside model
calls, ``overhead_s`` for everything else, ``scoring_s`` for lm-eval's scoring.

Example (``model``/``tokenizer``: a Hugging Face causal LM; ``my_tasks`` a folder of
lm-eval task YAMLs)::

    config = LmEvalConfig(include_paths=["my_tasks"],
                          search_tasks=[TaskConfig(name="my_mc_task", limit=50)])
    evaluator = LmEvalEvaluator(config)
    fitness = evaluator.evaluate(model, tokenizer)
    fitness.objectives      # {"score": ..., "my_mc_task/acc": ...}
"""

from __future__ import annotations

import time
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

from evomerge.errors import ConfigError
from evomerge.evaluate.base import SCORE, Evaluator, Scores
from evomerge.evaluate.config import LmEvalConfig
from evomerge.evaluate.lm_eval_private import PARTS, require
from evomerge.evaluate.lm_eval_requests import RequestPlan
from evomerge.evaluate.lm_eval_scoring import objective_name, score_run, task_objectives
from evomerge.evaluate.lm_eval_tasks import ResolvedTask, resolve_lm_eval_config
from evomerge.records import Direction


class LmEvalEvaluator(Evaluator):
    """lm-eval tasks on the live model; ``which`` picks the search or the report list."""

    kind = "lm_eval"

    def __init__(self, config: LmEvalConfig, which: Literal["search", "report"] = "search",
                 source: str | Path = "<config>", field: str = "evaluation.lm_eval"):
        resolved = resolve_lm_eval_config(config, source, field)
        self.config = config
        self.which = which
        self.tasks: tuple[ResolvedTask, ...] = (
            resolved.search if which == "search" else resolved.report
        )
        if not self.tasks:
            raise ConfigError(source, f"{field}.{which}_tasks", [], "lists no task")
        weighted = {t.direction for t in self.tasks if t.config.weight > 0}
        if len(weighted) > 1:
            raise ConfigError(
                source, f"{field}.{which}_tasks", [objective_name(t) for t in self.tasks],
                "the weighted score mixes metrics to maximize and to minimize: give the "
                "tasks of one direction weight 0",
            )
        self._score_direction: Direction = weighted.pop()
        self._plan: Any = None
        #: per leaf task, the documents of the last evaluation (``log_samples: true``)
        self.last_samples: dict[str, list[dict[str, Any]]] = {}

    def objectives(self) -> dict[str, Direction]:
        return {SCORE: self._score_direction,
                **{objective_name(t): t.direction for t in self.tasks}}

    def settings(self) -> dict[str, Any]:
        section = self.config.model_dump(exclude={"search_tasks", "report_tasks"})
        section["include_paths"] = [str(Path(p).resolve()) for p in self.config.include_paths]
        return {
            "kind": self.kind,
            **section,
            "tasks": [
                {**t.config.model_dump(), "metric": t.metric, "filter": t.filter,
                 "leaves": list(t.leaves)}
                for t in self.tasks
            ],
            "versions": {p: version(p) for p in ("lm_eval", "transformers", "torch")},
        }

    def prepare(self, model: Any, tokenizer: Any) -> None:
        # an lm-eval without the private API we use fails the setup, not every candidate
        for part in PARTS:
            require(part)
        self._plan = RequestPlan(self.config, self.tasks, model, tokenizer)

    def score(self, model: Any, tokenizer: Any) -> Scores:
        if tokenizer is not self._plan.tokenizer:
            # Prompts were tokenized with the old tokenizer: build everything again.
            self.prepare(model, tokenizer)
        model_s = self._plan.run(model)
        start = time.perf_counter()
        results = [score_run(run, self.config.log_samples) for run in self._plan.runs]
        objectives = task_objectives(self.tasks, results)
        if self.config.log_samples:
            self.last_samples = {r.leaf: r.samples for r in results}
        return Scores(
            objectives,
            sample_scores={r.leaf: r.per_doc for r in results if r.per_doc},
            model_s=model_s,
            timings={"scoring_s": time.perf_counter() - start},
        )
