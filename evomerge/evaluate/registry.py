"""The evaluator registry, and evaluators built from the ``evaluation`` config section.

Every evaluator kind is registered here, in one place:

>>> EVALUATORS.names()
['composite', 'l1_from_base', 'lm_eval', 'perplexity', 'python']

A campaign builds two evaluators: the search evaluator (lm-eval search tasks, perplexity
files, Python functions, model-side objectives, composed) whose numbers drive the
search, and the report evaluator (lm-eval report tasks) for the final report.

>>> from evomerge.evaluate.config import load_evaluation_config
>>> cfg = load_evaluation_config({"python": [{"name": "size",
...     "function": "evomerge.evaluate.python_function:parameter_count",
...     "objectives": {"params": "minimize"}}]})
>>> build_search_evaluator(cfg).objective_names
('size/params',)
>>> build_search_evaluator(cfg.model_copy(update={"model_objectives": ["l1_from_base"]}))
... # doctest: +ELLIPSIS
Traceback (most recent call last):
...
evomerge.errors.ConfigError: <config>: field 'evaluation.model_objectives' = ... needs the base model's weights (pass reference_state)
"""

from __future__ import annotations

from pathlib import Path

from evomerge.errors import ConfigError
from evomerge.evaluate.base import Evaluator
from evomerge.evaluate.composite import CompositeEvaluator
from evomerge.evaluate.config import EvaluationConfig
from evomerge.evaluate.lm_eval_adapter import LmEvalEvaluator
from evomerge.evaluate.model_objectives import L1FromBase, ReferenceState
from evomerge.evaluate.perplexity import PerplexityEvaluator
from evomerge.evaluate.python_function import PythonFunctionEvaluator
from evomerge.registry import Registry


def _build_registry() -> Registry[type[Evaluator]]:
    registry: Registry[type[Evaluator]] = Registry("evaluator")
    for cls in (LmEvalEvaluator, PerplexityEvaluator, PythonFunctionEvaluator, L1FromBase,
                CompositeEvaluator):
        registry.register(cls.kind, cls)
    return registry


EVALUATORS: Registry[type[Evaluator]] = _build_registry()


def build_search_evaluator(config: EvaluationConfig, source: str | Path = "<config>",
                           reference_state: ReferenceState | None = None,
                           prefix: str = "evaluation") -> Evaluator:
    """The evaluator whose objectives drive the search (one part alone is returned as is)."""
    parts: list[Evaluator] = []
    if config.lm_eval is not None:
        parts.append(EVALUATORS.get("lm_eval")(config.lm_eval, "search", source,
                                               f"{prefix}.lm_eval", config.fidelity))
    for ppl in config.perplexity:
        parts.append(EVALUATORS.get("perplexity")(**ppl.model_dump()))
    for i, fn in enumerate(config.python):
        parts.append(EVALUATORS.get("python")(fn.name, fn.function, fn.objectives, source,
                                              f"{prefix}.python[{i}].function"))
    for name in config.model_objectives:
        if reference_state is None:
            raise ConfigError(source, f"{prefix}.model_objectives", config.model_objectives,
                              f"{name} needs the base model's weights (pass reference_state)")
        parts.append(EVALUATORS.get(name)(reference_state))
    return parts[0] if len(parts) == 1 else EVALUATORS.get("composite")(parts)


def build_report_evaluator(config: EvaluationConfig, source: str | Path = "<config>",
                           prefix: str = "evaluation") -> Evaluator | None:
    """The evaluator of the report tasks, or None when the config lists none."""
    if config.lm_eval is None or not config.lm_eval.report_tasks:
        return None
    return EVALUATORS.get("lm_eval")(config.lm_eval, "report", source, f"{prefix}.lm_eval")
