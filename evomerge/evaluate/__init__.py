"""Evaluation: score a live model and return a Fitness record.

The Evaluator protocol (:mod:`~evomerge.evaluate.base`), the lm-eval adapter that scores
the in-memory model with lm-eval's tasks (:mod:`~evomerge.evaluate.lm_eval_adapter`),
perplexity, user Python functions, model-side objectives, their composition, the config
section and the registry. lm-eval itself is imported only when a task is resolved.
"""

from evomerge.evaluate.base import SCORE, Evaluator, Scores, settings_hash
from evomerge.evaluate.checks import check_evaluation_config
from evomerge.evaluate.composite import CompositeEvaluator
from evomerge.evaluate.config import (
    EvaluationConfig,
    LmEvalConfig,
    PerplexityConfig,
    PythonFunctionConfig,
    TaskConfig,
    load_evaluation_config,
)
from evomerge.evaluate.lm_eval_adapter import LmEvalEvaluator
from evomerge.evaluate.model_objectives import L1FromBase
from evomerge.evaluate.perplexity import PerplexityEvaluator
from evomerge.evaluate.python_function import PythonFunctionEvaluator
from evomerge.evaluate.registry import (
    EVALUATORS,
    build_report_evaluator,
    build_search_evaluator,
)

__all__ = [
    "EVALUATORS", "SCORE", "CompositeEvaluator", "EvaluationConfig", "Evaluator",
    "L1FromBase", "LmEvalConfig", "LmEvalEvaluator", "PerplexityConfig",
    "PerplexityEvaluator", "PythonFunctionConfig", "PythonFunctionEvaluator", "Scores",
    "TaskConfig", "build_report_evaluator", "build_search_evaluator",
    "check_evaluation_config", "load_evaluation_config", "settings_hash",
]
