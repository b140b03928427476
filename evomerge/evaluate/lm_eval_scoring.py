"""Turn the responses of one run into metrics, with lm-eval's own scoring functions.

For each task: apply the task's filters, call ``task.process_results`` per document, and
aggregate each metric with ``task.aggregation()`` (the mean when a metric declares
none), as ``lm_eval.evaluator.evaluate`` does; standard errors are not computed. The
metric a configuration chose is also kept per document, keyed by stable document ids.

Example (after ``plan.run(model)``)::

    scored = [score_run(run) for run in plan.runs]
    objectives = task_objectives(plan_specs, scored)
"""

from __future__ import annotations

import numbers
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from evomerge.evaluate.base import SCORE
from evomerge.evaluate.lm_eval_private import apply_filters_to, process_results_as
from evomerge.evaluate.lm_eval_requests import TaskRun
from evomerge.evaluate.lm_eval_tasks import ResolvedTask


@dataclass
class TaskResult:
    """The aggregated metrics of one leaf task, and its chosen metric per document."""

    leaf: str
    spec: ResolvedTask
    metrics: dict[tuple[str, str], float]
    n_docs: int
    per_doc: dict[str, float] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def value(self) -> float:
        return self.metrics[(self.spec.metric, self.spec.filter)]


class StaticDocView:
    """A task as its ``process_results`` sees it, with per-document templates memoized.

    ``doc_to_text``, ``doc_to_target`` and ``doc_to_choice`` depend on the document only,
    yet lm-eval compiles and renders their Jinja templates again on every call, which
    costs about a millisecond per document and candidate. Calling the task's own
    ``process_results`` with this view as ``self`` renders each once per worker; every
    other attribute is the task's. Documents are keyed by identity: a plan keeps the
    same document objects for its whole life.
    """

    def __init__(self, task: Any):
        self._task = task
        self._memo: dict[tuple[str, int], Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def _once(self, what: str, doc: Any) -> Any:
        key = (what, id(doc))
        if key not in self._memo:
            self._memo[key] = getattr(self._task, what)(doc)
        return self._memo[key]

    def doc_to_text(self, doc: Any, *args: Any) -> Any:
        return self._task.doc_to_text(doc, *args) if args else self._once("doc_to_text", doc)

    def doc_to_target(self, doc: Any, *args: Any) -> Any:
        return (self._task.doc_to_target(doc, *args) if args
                else self._once("doc_to_target", doc))

    def doc_to_choice(self, doc: Any, *args: Any) -> Any:
        return (self._task.doc_to_choice(doc, *args) if args
                else self._once("doc_to_choice", doc))

    def process_results(self, doc: Any, results: list[Any]) -> dict[str, Any]:
        return process_results_as(self, self._task, doc, results)


def _as_number(value: Any) -> float | None:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return None


def score_run(run: TaskRun, log_samples: bool = False,
              positions: set[int] | None = None) -> TaskResult:
    """Filter, score and aggregate one task's responses (``positions``: of those
    documents only, the others holding no responses of this candidate)."""
    from lm_eval.api.metrics import mean

    task = run.task
    if run.view is None:
        run.view = StaticDocView(task)
    docs = [(d, key) for d, key in zip(run.docs, run.doc_keys, strict=True)
            if positions is None or d[0] in positions]
    if positions is None:
        task.apply_filters()
    else:
        apply_filters_to(task, [inst for (pos, _), _ in docs for inst in run.by_doc[pos]])
    raw: dict[tuple[str, str], list[Any]] = defaultdict(list)
    per_doc: dict[str, float] = {}
    numeric = True
    samples: list[dict[str, Any]] = []
    for filter_key in run.by_doc[docs[0][0][0]][0].filtered_resps:
        for (pos, doc), key in docs:
            requests = run.by_doc[pos]
            filtered = [req.filtered_resps[filter_key] for req in requests]
            metrics = run.view.process_results(doc, filtered)
            for metric, value in metrics.items():
                raw[(metric, filter_key)].append(value)
            if filter_key == run.spec.filter:
                value = _as_number(metrics.get(run.spec.metric))
                numeric = numeric and value is not None
                per_doc[key] = value if value is not None else float("nan")
            if log_samples:
                samples.append({"doc_id": key, "filter": filter_key,
                                "resps": [req.resps for req in requests],
                                "filtered_resps": filtered, **metrics})
    aggregations = task.aggregation()
    aggregated = {
        key: float(aggregations.get(key[0], mean)(items)) for key, items in raw.items()
    }
    if (run.spec.metric, run.spec.filter) not in aggregated:
        raise KeyError(f"task {run.leaf!r} produced {sorted(aggregated)}, not "
                       f"{(run.spec.metric, run.spec.filter)}")
    # Metrics scored per document as tuples (e.g. perplexities) have no per-document score.
    return TaskResult(run.leaf, run.spec, aggregated, len(docs),
                      per_doc if numeric else {}, samples)


def results_from_per_doc(runs: list[TaskRun], per_doc: dict[str, dict[str, float]]
                         ) -> list[TaskResult]:
    """Each leaf task's chosen metric as the mean of its per-document scores over the
    documents ``per_doc`` holds, summed in document order as lm-eval's ``mean`` sums a
    run's: over every document this equals :func:`score_run`'s value (for metrics that
    lm-eval averages, which :func:`check_averaged` makes sure of)."""
    from lm_eval.api.metrics import mean

    results = []
    for run in runs:
        scores = per_doc.get(run.leaf, {})
        keys = [key for key in run.doc_keys if key in scores]
        if keys:
            value = float(mean([scores[key] for key in keys]))
            results.append(TaskResult(run.leaf, run.spec,
                                      {(run.spec.metric, run.spec.filter): value}, len(keys),
                                      {key: scores[key] for key in keys}))
    return results


def check_averaged(run: TaskRun) -> str | None:
    """Why a task's chosen metric cannot be scored a share of documents at a time (it is
    not lm-eval's mean of per-document numbers), or None when it can."""
    from lm_eval.api.metrics import mean

    aggregate = run.task.aggregation().get(run.spec.metric, mean)
    if aggregate is not mean:
        return (f"task {run.leaf!r} aggregates {run.spec.metric!r} with "
                f"{getattr(aggregate, '__name__', aggregate)!r}, not a mean of documents")
    return None


def objective_name(spec: ResolvedTask) -> str:
    """The objective a configured task reports: ``task/metric``."""
    return f"{spec.name}/{spec.metric}"


def task_objectives(specs: tuple[ResolvedTask, ...], results: list[TaskResult]) -> dict[str, float]:
    """Per configured task its metric, and the weighted aggregate ``score``.

    A group's value is the mean over its tasks weighted by their number of documents.

    >>> from evomerge.evaluate.config import TaskConfig
    >>> a = ResolvedTask(TaskConfig(name="a", weight=3), ("a",), "acc", "none", "maximize")
    >>> b = ResolvedTask(TaskConfig(name="b", weight=1), ("b",), "acc", "none", "maximize")
    >>> out = task_objectives((a, b), [TaskResult("a", a, {("acc", "none"): 0.5}, 10),
    ...                                TaskResult("b", b, {("acc", "none"): 0.1}, 10)])
    >>> out["a/acc"], out["b/acc"], round(out["score"], 3)
    (0.5, 0.1, 0.4)
    """
    objectives: dict[str, float] = {}
    weighted, total = 0.0, 0.0
    for spec in specs:
        mine = [r for r in results if r.spec is spec]
        docs = sum(r.n_docs for r in mine)
        value = sum(r.value * r.n_docs for r in mine) / docs
        objectives[objective_name(spec)] = value
        weighted += spec.config.weight * value
        total += spec.config.weight
    return {SCORE: weighted / total, **objectives}
