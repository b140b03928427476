"""Check a parsed ``evaluation`` section against the file system and lm-eval's task index.

Parsing (:mod:`evomerge.evaluate.config`) only sees the values; this module looks them
up: task names, task folders, metrics and data files in lm-eval's index, the overlap of
search and report data, user Python functions, perplexity files. It sits above both the
config models and the modules that resolve them, so neither imports the other.

>>> from evomerge.errors import ConfigError
>>> from evomerge.evaluate.config import load_evaluation_config
>>> cfg = load_evaluation_config({"perplexity": [{"name": "ppl", "path": "no/such.jsonl"}]})
>>> try:
...     check_evaluation_config(cfg, source="campaign.yaml")
... except ConfigError as err:
...     print(err.field, err.value, err.rule)
evaluation.perplexity[0].path no/such.jsonl file does not exist
"""

from __future__ import annotations

from pathlib import Path

from evomerge.errors import ConfigError
from evomerge.evaluate.config import EvaluationConfig
from evomerge.evaluate.lm_eval_tasks import resolve_lm_eval_config
from evomerge.evaluate.python_function import resolve_function


def check_evaluation_config(
    config: EvaluationConfig, source: str | Path = "<config>", prefix: str = "evaluation"
) -> None:
    """Check names, files and metrics against the file system and lm-eval's task index.

    Raises ConfigError for an unknown task (with the nearest names), a missing task
    folder or data file, a metric the task does not produce, a search task that scores
    the same data split as a report task, an unknown or unusable Python function, or a
    missing perplexity file.
    """
    if config.lm_eval is not None:
        resolve_lm_eval_config(config.lm_eval, source, f"{prefix}.lm_eval")
    for i, ppl in enumerate(config.perplexity):
        if not Path(ppl.path).is_file():
            raise ConfigError(
                source, f"{prefix}.perplexity[{i}].path", ppl.path, "file does not exist"
            )
    for i, fn in enumerate(config.python):
        resolve_function(fn.function, source, f"{prefix}.python[{i}].function")
