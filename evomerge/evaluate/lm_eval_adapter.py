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
from evomerge.evaluate.config import FidelityConfig, LmEvalConfig
from evomerge.evaluate.fidelity import LevelJob, level_positions
from evomerge.evaluate.lm_eval_private import PARTS, require
from evomerge.evaluate.lm_eval_requests import RequestPlan
from evomerge.evaluate.lm_eval_scoring import (
    check_averaged,
    objective_name,
    results_from_per_doc,
    score_run,
    task_objectives,
)
from evomerge.evaluate.lm_eval_tasks import ResolvedTask, resolve_lm_eval_config
from evomerge.records import Direction


class LmEvalEvaluator(Evaluator):
    """lm-eval tasks on the live model; ``which`` picks the search or the report list."""

    kind = "lm_eval"

    def __init__(self, config: LmEvalConfig, which: Literal["search", "report"] = "search",
                 source: str | Path = "<config>", field: str = "evaluation.lm_eval",
                 fidelity: FidelityConfig | None = None):
        resolved = resolve_lm_eval_config(config, source, field)
        self.config = config
        self.which = which
        #: fidelity levels of the search tasks (None: every candidate on every document)
        self.fidelity = fidelity
        self._levels: list[dict[str, list[int]]] = []
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
        if self.fidelity is not None:
            self._levels = self._level_documents(self._plan)

    def _level_documents(self, plan: RequestPlan) -> list[dict[str, list[int]]]:
        problems = [p for p in map(check_averaged, plan.runs) if p]
        if problems:
            raise ConfigError(None, "evaluation.fidelity", self.fidelity.levels,
                              "fidelity levels need metrics averaged over documents: "
                              + "; ".join(problems))
        per_leaf = {run.leaf: level_positions(len(run.docs), self.fidelity.levels,
                                              self.fidelity.seed, run.leaf)
                    for run in plan.runs}
        return [{leaf: levels[k] for leaf, levels in per_leaf.items()}
                for k in range(len(self.fidelity.levels))]

    def level_documents(self, level: int) -> dict[str, list[str]]:
        """The document ids a fidelity level scores, per leaf task (after setup)."""
        out = {}
        for run in self._plan.runs:
            chosen = set(self._levels[level][run.leaf])
            out[run.leaf] = [key for (pos, _), key in zip(run.docs, run.doc_keys)
                             if pos in chosen]
        return out

    def score_level(self, model: Any, tokenizer: Any, job: LevelJob) -> Scores:
        if self.fidelity is None:
            raise ConfigError(None, "evaluation.fidelity", None, "no fidelity levels are set")
        if tokenizer is not self._plan.tokenizer:
            self.prepare(model, tokenizer)
        wanted = self._levels[job.level]
        new: dict[str, set[int]] = {}
        for run in self._plan.runs:
            prior = job.prior.get(run.leaf, {})
            keys = dict(zip((pos for pos, _ in run.docs), run.doc_keys))
            new[run.leaf] = {pos for pos in wanted[run.leaf] if keys[pos] not in prior}
            extra = set(prior) - {keys[pos] for pos in wanted[run.leaf]}
            if extra:
                raise ValueError(f"level {job.level} of task {run.leaf!r} has no documents "
                                 f"{sorted(extra)[:5]}, yet the earlier scores hold them")
        model_s = self._plan.run(model, only=new)
        start = time.perf_counter()
        per_doc = {leaf: dict(scores) for leaf, scores in job.prior.items()}
        for run in self._plan.runs:
            if new[run.leaf]:
                scored = score_run(run, positions=new[run.leaf])
                if len(scored.per_doc) != len(new[run.leaf]):
                    raise ValueError(f"task {run.leaf!r} has no number per document for "
                                     f"{run.spec.metric!r}: fidelity levels need one")
                per_doc.setdefault(run.leaf, {}).update(scored.per_doc)
        objectives = task_objectives(self.tasks, results_from_per_doc(self._plan.runs, per_doc))
        return Scores(objectives, sample_scores=per_doc, model_s=model_s,
                      timings={"scoring_s": time.perf_counter() - start,
                               "documents": float(sum(map(len, new.values())))})

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
