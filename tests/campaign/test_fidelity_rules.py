"""The promotion rules on a study of their own: each rule's pruner is built with its
defaults, and each stops a clearly worse candidate and lets a better one go on."""

from __future__ import annotations

import optuna
import pytest

from evomerge.campaign.fidelity import Promotion, document_step, level_step, pruner_options
from evomerge.evaluate.config import FidelityConfig

LEVELS = [0.1, 0.3, 1.0]
DOCS = [str(i) for i in range(40)]


def _levels(promotion, study, values):
    """Report a trial's levels as a campaign does (each level adds documents); returns
    whether it went on after each level below the last, and its trial."""
    trial = study.ask()
    prior, went_on = {}, []
    for level, value in enumerate(values[:-1]):
        seen = DOCS[:4 * (level + 1) ** 2]  # 4, 16 documents
        scores = {"t": {d: value for d in seen}}
        for step, v in promotion.steps(level, {"score": value}, scores, prior).items():
            trial.report(v, step)
        frozen = study.get_trials(deepcopy=False)[trial.number]
        went_on.append(promotion.goes_on(study, frozen))
        prior = scores
        if not went_on[-1]:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return went_on
    for step, v in promotion.steps(len(values) - 1, {"score": values[-1]},
                                   {"t": {d: values[-1] for d in DOCS}}, prior).items():
        trial.report(v, step)
    study.tell(trial, values[-1])
    return went_on


@pytest.mark.parametrize("rule", ["successive_halving", "median", "hyperband", "wilcoxon"])
def test_each_rule_stops_a_clearly_worse_candidate(rule):
    options = {"n_startup_trials": 1} if rule == "median" else {}
    promotion = Promotion(FidelityConfig(levels=LEVELS, rule=rule, options=options), "score")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for good in (0.8, 0.82, 0.81):
        _levels(promotion, study, [good] * 3)
    assert _levels(promotion, study, [0.1, 0.1, 0.1])[0] is False  # stopped at level 0
    assert all(_levels(promotion, study, [0.9, 0.9, 0.9]))  # the best goes on to the end


def test_steps_are_levels_in_thousandths_or_new_documents():
    assert [level_step(s) for s in LEVELS] == [100, 300, 1000]
    assert pruner_options(FidelityConfig(levels=LEVELS)) == {"min_resource": 100,
                                                             "reduction_factor": 3}
    per_doc = Promotion(FidelityConfig(levels=LEVELS, rule="wilcoxon"), "score")
    steps = per_doc.steps(1, {"score": 0.5}, {"t": {"a": 1.0, "b": 0.0}}, {"t": {"a": 1.0}})
    assert steps == {document_step("t", "b"): 0.0}  # the document new at this level only
