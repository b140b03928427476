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
def test_each_rule_stops_clearly_worse_candidates(rule):
    options = {"n_startup_trials": 1} if rule == "median" else {}
    promotion = Promotion(FidelityConfig(levels=LEVELS, rule=rule, options=options), "score")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # hyperband puts each trial in a bracket by a hash of the study's name and the trial's
    # number: a fixed name makes the brackets the same in every run
    study = optuna.create_study(study_name="rules", direction="maximize")
    for good in (0.8, 0.82, 0.81):
        _levels(promotion, study, [good] * 3)
    worse = [_levels(promotion, study, [0.1, 0.1, 0.1]) for _ in range(4)]
    stopped = [went_on[-1] is False for went_on in worse]
    # hyperband splits the trials between brackets, one of which runs every candidate
    # to the end, and its other brackets see few competitors here: some, not all, stop
    assert sum(stopped) >= (1 if rule == "hyperband" else 4), worse
    if rule != "hyperband":
        assert all(w == [False] for w in worse)  # stopped at level 0
    assert all(_levels(promotion, study, [0.9, 0.9, 0.9]))  # the best goes on to the end


def test_steps_are_levels_in_thousandths_or_new_documents():
    assert [level_step(s) for s in LEVELS] == [100, 300, 1000]
    assert pruner_options(FidelityConfig(levels=LEVELS)) == {"min_resource": 100,
                                                             "reduction_factor": 3}
    per_doc = Promotion(FidelityConfig(levels=LEVELS, rule="wilcoxon"), "score")
    steps = per_doc.steps(1, {"score": 0.5}, {"t": {"a": 1.0, "b": 0.0}}, {"t": {"a": 1.0}})
    assert steps == {document_step("t", "b"): 0.0}  # the document new at this level only
