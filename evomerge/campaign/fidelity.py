"""Promotion between fidelity levels: optuna's pruners decide, on the campaign's study.

Each level a candidate finishes is reported to its trial as intermediate values, and the
rule's pruner (``evaluation.fidelity.rule``) decides whether it goes on to the next
level or stops as a PRUNED trial with the scores it got:

* ``successive_halving`` (the default; asynchronous successive halving, Li et al. 2020):
  at each level a candidate goes on if it is in the best ``1/reduction_factor`` of the
  candidates that reached that level. The step of a level is its share of the documents
  in thousandths, and the defaults put a rung on every level of a geometric ladder:
  ``min_resource`` the first level's step, ``reduction_factor`` the ratio of the first
  two levels (3 for ``[0.1, 0.3, 1.0]``);
* ``median``: it goes on if it is not worse than the median of the others at that level;
* ``hyperband``: several successive-halving brackets with different first rungs;
* ``wilcoxon``: per-document scores (one step per document), paired with the best
  finished candidate's on the same documents; it stops when a Wilcoxon signed-rank test
  says it is worse (optuna's ``WilcoxonPruner``).

The pruners compare one number: a fidelity campaign has one objective.

>>> level_step(0.3)
300
"""

from __future__ import annotations

import inspect
import warnings
import zlib
from typing import Any

from evomerge.errors import ConfigError
from evomerge.evaluate.config import FidelityConfig

#: a level's step: its share of the documents in thousandths
STEP_SCALE = 1000

_PRUNERS = {"successive_halving": "SuccessiveHalvingPruner", "median": "MedianPruner",
            "hyperband": "HyperbandPruner", "wilcoxon": "WilcoxonPruner"}


def level_step(share: float) -> int:
    return round(share * STEP_SCALE)


def document_step(leaf: str, doc_id: str) -> int:
    """A document's step for the per-document rule: the same for every candidate."""
    return zlib.crc32(f"{leaf}\0{doc_id}".encode())


def pruner_options(config: FidelityConfig) -> dict[str, Any]:
    """The rule's pruner arguments: the defaults above, then the campaign's ``options``."""
    first = level_step(config.levels[0])
    ratio = max(2, round(config.levels[1] / config.levels[0]))
    defaults = {"successive_halving": {"min_resource": first, "reduction_factor": ratio},
                "hyperband": {"min_resource": first, "max_resource": STEP_SCALE,
                              "reduction_factor": ratio}}.get(config.rule, {})
    return {**defaults, **config.options}


def build_pruner(config: FidelityConfig, file: Any = None):
    """The optuna pruner of ``config.rule``; unknown or bad options are a ConfigError
    naming ``evaluation.fidelity.options``."""
    import optuna

    cls = getattr(optuna.pruners, _PRUNERS[config.rule])
    options = pruner_options(config)
    known = set(inspect.signature(cls).parameters)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(file, f"evaluation.fidelity.options.{unknown[0]}",
                          options[unknown[0]],
                          f"{cls.__name__} takes {sorted(known)}")
    try:
        with warnings.catch_warnings():  # WilcoxonPruner is experimental in optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(file, "evaluation.fidelity.options", config.options,
                          f"{cls.__name__} refuses them: {exc}") from None


class Promotion:
    """Reports a candidate's levels to its trial and asks the pruner whether it goes on."""

    def __init__(self, config: FidelityConfig, objective: str):
        self.config, self.objective = config, objective
        self.pruner = build_pruner(config)
        self.last = len(config.levels) - 1

    def steps(self, level: int, objectives: dict[str, float],
              sample_scores: dict[str, dict[str, float]],
              prior: dict[str, dict[str, float]]) -> dict[int, float]:
        """The intermediate values a finished level adds to its trial."""
        if self.config.rule != "wilcoxon":
            return {level_step(self.config.levels[level]): float(objectives[self.objective])}
        return {document_step(leaf, doc): float(value)
                for leaf, scores in sample_scores.items() for doc, value in scores.items()
                if doc not in prior.get(leaf, {})}

    def goes_on(self, study, frozen_trial) -> bool:
        return not self.pruner.prune(study, frozen_trial)
