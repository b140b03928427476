"""Config models for the ``evaluation`` section of a campaign.

The section lists what to score a candidate on: lm-eval tasks (a search list, whose
numbers drive the search, and a separate report list, scored only for the final report),
perplexity files, user Python functions and model-side objectives. Parsing rejects
unknown keys and bad values. What needs the file system or lm-eval's task index (task
names, folders, metrics, data files, search/report overlap) is checked by
:func:`evomerge.evaluate.checks.check_evaluation_config`, so a bad config fails before
any model is built; this module imports neither lm-eval nor the modules that use it.

Relative paths (task folders, data files, perplexity files) are read from the working
directory, as lm-eval reads them.

>>> from evomerge.errors import ConfigError
>>> cfg = load_evaluation_config({"python": [{"name": "custom",
...     "function": "mymetrics:score", "objectives": {"value": "maximize"}}]})
>>> cfg.python[0].function
'mymetrics:score'
>>> try:
...     load_evaluation_config({"lm_eval": {"search_tasks": [{"name": "t", "limit": 0}]}},
...                            source="campaign.yaml")
... except ConfigError as err:
...     print(err.file, err.field, err.value)
...     print(err.rule)
campaign.yaml evaluation.lm_eval.search_tasks[0].limit 0
must be > 0 (a number of documents, or a fraction below 1)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    create_model,
    field_validator,
    model_validator,
)

from evomerge.config_io import validate_config
from evomerge.records import Direction


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubsampleConfig(_Strict):
    """A fixed random subset of a task's documents, the same for every candidate."""

    size: PositiveInt
    seed: int = 0


class TaskConfig(_Strict):
    """One lm-eval task (or group / tag of tasks) and how to score it.

    At most one of ``limit`` (the first documents; below 1: a fraction), ``subsample``
    (a seeded random subset) and ``doc_ids`` (explicit document indices) selects the
    documents. ``metric`` and ``filter`` default to the task's first metric and filter;
    ``weight`` is the task's share of the aggregate ``score``. Unset options inherit
    the lm-eval section's values.
    """

    name: str = Field(min_length=1)
    limit: float | None = None
    subsample: SubsampleConfig | None = None
    doc_ids: list[NonNegativeInt] | None = Field(default=None, min_length=1)
    num_fewshot: NonNegativeInt | None = None
    metric: str | None = None
    filter: str | None = None
    weight: NonNegativeFloat = 1.0
    apply_chat_template: bool | None = None
    max_gen_toks: PositiveInt | None = None
    until: list[str] | None = None
    generation_kwargs: dict[str, Any] | None = None

    @field_validator("limit")
    @classmethod
    def _limit_is_count_or_fraction(cls, v: float | None) -> float | None:
        if v is None:
            return v
        if v <= 0 or (v >= 1 and v != int(v)):
            raise ValueError("must be > 0 (a number of documents, or a fraction below 1)")
        return int(v) if v >= 1 else v

    @field_validator("doc_ids")
    @classmethod
    def _doc_ids_unique(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("document ids must be unique")
        return v

    @model_validator(mode="after")
    def _one_document_selection(self) -> TaskConfig:
        chosen = [k for k in ("limit", "subsample", "doc_ids") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise ValueError(f"choose one of limit, subsample and doc_ids, but got {chosen}")
        return self

    def generation_overrides(self) -> dict[str, Any]:
        """The generation settings this task overrides (``until``, ``max_gen_toks``, ...)."""
        out = dict(self.generation_kwargs or {})
        if self.max_gen_toks is not None:
            out["max_gen_toks"] = self.max_gen_toks
        if self.until is not None:
            out["until"] = list(self.until)
        return out


def _unique_names(items: list[Any], what: str) -> list[Any]:
    names = [item.name for item in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"each {what} name may appear once, but {dupes} repeat")
    return items


class LmEvalConfig(_Strict):
    """lm-eval tasks scored on the live model; see :class:`TaskConfig` for one task."""

    include_paths: list[str] = Field(default_factory=list)
    search_tasks: list[TaskConfig] = Field(min_length=1)
    report_tasks: list[TaskConfig] = Field(default_factory=list)
    batch_size: PositiveInt = 8
    max_length: PositiveInt | None = None
    apply_chat_template: bool = False
    system_instruction: str | None = None
    fewshot_as_multiturn: bool | None = None
    fewshot_seed: int = 1234
    sampling_seed: int = 1234
    log_samples: bool = False

    @field_validator("search_tasks", "report_tasks")
    @classmethod
    def _task_names_unique(cls, v: list[TaskConfig]) -> list[TaskConfig]:
        return _unique_names(v, "task")

    @field_validator("search_tasks", "report_tasks")
    @classmethod
    def _some_weight(cls, v: list[TaskConfig]) -> list[TaskConfig]:
        if v and sum(t.weight for t in v) <= 0:
            raise ValueError("at least one task of the list needs a weight > 0")
        return v


class PerplexityConfig(_Strict):
    """Perplexity (or mean log-likelihood per token) on a local JSONL or text file."""

    name: str = Field(min_length=1)
    path: str
    field: str = "text"
    limit: PositiveInt | None = None
    batch_size: PositiveInt = 8
    max_length: int | None = Field(default=None, ge=2)
    measure: Literal["perplexity", "mean_loglikelihood"] = "perplexity"


class PythonFunctionConfig(_Strict):
    """A user function ``module:function`` (or ``path/file.py:function``) returning metrics."""

    name: str = Field(min_length=1)
    function: str
    objectives: dict[str, Direction] = Field(min_length=1)

    @field_validator("function")
    @classmethod
    def _module_colon_function(cls, v: str) -> str:
        module, _, name = v.rpartition(":")
        if not module or not name.isidentifier():
            raise ValueError("must be 'module:function' or 'path/to/file.py:function'")
        return v


FidelityRule = Literal["successive_halving", "median", "hyperband", "wilcoxon"]


class FidelityConfig(_Strict):
    """Multi-fidelity search scoring (``evaluation.fidelity``): each candidate is scored
    first on a seeded share of every search task's documents, then on larger ones up to
    all of them, and goes on only while the pruning ``rule`` (an optuna pruner, with
    ``options`` as its arguments) keeps it. See :mod:`evomerge.evaluate.fidelity`."""

    levels: list[float] = Field(min_length=2)
    rule: FidelityRule = "successive_halving"
    options: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0

    @field_validator("levels")
    @classmethod
    def _growing_to_one(cls, v: list[float]) -> list[float]:
        if any(not 0.0 < f <= 1.0 for f in v):
            raise ValueError("every level is a share of the documents in (0, 1]")
        if any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError("levels must grow strictly")
        if v[-1] != 1.0:
            raise ValueError("the last level must be 1.0 (every search document)")
        return v


class EvaluationConfig(_Strict):
    """The ``evaluation`` section: any mix of evaluators, composed as separate objectives."""

    lm_eval: LmEvalConfig | None = None
    perplexity: list[PerplexityConfig] = Field(default_factory=list)
    python: list[PythonFunctionConfig] = Field(default_factory=list)
    model_objectives: list[Literal["l1_from_base"]] = Field(default_factory=list)
    #: off (None) by default: see the README's measurement
    fidelity: FidelityConfig | None = None

    @model_validator(mode="after")
    def _something_to_score(self) -> EvaluationConfig:
        if not (self.lm_eval or self.perplexity or self.python or self.model_objectives):
            raise ValueError(
                "name at least one of lm_eval, perplexity, python or model_objectives"
            )
        _unique_names([*self.perplexity, *self.python], "perplexity/python evaluator")
        if len(set(self.model_objectives)) != len(self.model_objectives):
            raise ValueError(f"model objectives repeat: {self.model_objectives}")
        if self.fidelity is not None and (
                self.lm_eval is None or self.perplexity or self.python
                or self.model_objectives):
            raise ValueError("fidelity levels split lm-eval search tasks' documents: "
                             "use them with lm_eval as the only evaluator")
        return self


def load_evaluation_config(
    data: Any, source: str | Path = "<config>", prefix: str = "evaluation"
) -> EvaluationConfig:
    """Parse the evaluation section; a bad value raises ConfigError naming the field.

    ``prefix`` is the section's key in its file, so field names read as in the file.
    """
    section = create_model("EvaluationSection", __config__=ConfigDict(extra="forbid"),
                           **{prefix: (EvaluationConfig, ...)})
    return getattr(validate_config(section, {prefix: data}, source), prefix)
