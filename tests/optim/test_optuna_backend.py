"""optuna backend: sampler names and options, trial states, never-asked trials."""

from __future__ import annotations

import optuna
import pytest
from optim_toys import MAXIMIZE, MINIMIZE, TWO_OBJECTIVES, evaluate

from evomerge.errors import ConfigError
from evomerge.optim.optuna_opt import SAMPLERS, OptunaOptimizer, sampler_name
from evomerge.optim.registry import build_optimizer
from evomerge.records import Candidate, Fitness

TrialState = optuna.trial.TrialState


@pytest.mark.parametrize("spelling,canonical", [
    ("TPE", "TPE"), ("tpe", "TPE"), ("CMA-ES", "CMA-ES"), ("CmaEs", "CMA-ES"),
    ("cmaes", "CMA-ES"), ("GPSampler", "GP"), ("nsga_ii", "NSGA-II"),
    ("NSGA-III", "NSGA-III"), ("qmc", "QMC"), ("RandomSampler", "Random"),
])
def test_sampler_spellings(spelling, canonical):
    assert sampler_name(spelling) == canonical


def test_unknown_sampler_suggests_and_lists_the_known_ones():
    with pytest.raises(ConfigError, match="did you mean 'NSGA-II'.*known: TPE") as error:
        OptunaOptimizer(2, MINIMIZE, 0, sampler="NSGA-2")
    assert error.value.field == "optimizer.options.sampler"


@pytest.mark.parametrize("sampler,spec", [
    (name, TWO_OBJECTIVES if multi else MINIMIZE) for name, (_, multi) in SAMPLERS.items()
])
def test_every_sampler_asks_and_tells(sampler, spec):
    opt = OptunaOptimizer(3, spec, 0, sampler=sampler)
    for _ in range(2):  # below every sampler's start-up trials: no model fit, so quick
        batch = opt.ask(3)
        opt.tell([(c, evaluate(c, spec, 3)) for c in batch])
    states = [t.state for t in opt.study.trials]
    assert states == [TrialState.COMPLETE] * 6


def test_sampler_options_are_checked_against_the_constructor():
    with pytest.raises(ConfigError, match="did you mean .n_startup_trials.") as error:
        OptunaOptimizer(2, MINIMIZE, 0, sampler="TPE", n_startup=3)
    assert error.value.field == "optimizer.options.n_startup"
    with pytest.raises(ConfigError, match="population_size"):
        OptunaOptimizer(2, TWO_OBJECTIVES, 0, sampler="NSGA-II", population_size=1)


def test_sampler_options_reach_the_sampler():
    opt = OptunaOptimizer(2, MINIMIZE, 0, sampler="NSGA-II", population_size=7)
    assert opt.study.sampler._population_size == 7


def test_seed_is_not_a_sampler_option():
    with pytest.raises(ConfigError, match="seed is set by the campaign"):
        build_optimizer("optuna", 2, MINIMIZE, 0, sampler="Random", seed=3)


def test_single_objective_sampler_refuses_two_objectives():
    with pytest.raises(ConfigError, match="NSGA-II"):
        OptunaOptimizer(2, TWO_OBJECTIVES, 0, sampler="CMA-ES")


def test_failures_pruning_and_never_asked_results_become_trials():
    opt = OptunaOptimizer(2, MAXIMIZE, 0, sampler="Random")
    a, b, c = opt.ask(3)
    outsider = Candidate(x=[0.25, 0.75], origin="enqueued")
    opt.tell([
        (c, Fitness.ok({"score": 0.5})),
        (a, Fitness.failed("oom")),
        (b, Fitness(status="pruned")),
        (outsider, Fitness.ok({"score": 0.9})),
        (Candidate(x=[0.1, 0.1], origin="replayed"), Fitness.failed("x")),
        (Candidate(x=[0.1, 0.2]), Fitness.ok({"score": float("nan")})),
    ])
    trials = opt.study.trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.PRUNED,
                                         TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[3].params == {"x0": 0.25, "x1": 0.75}
    assert opt.study.best_value == 0.9  # maximised, as the spec says
    assert opt.best().candidate is outsider


def test_two_objectives_keep_their_own_directions():
    spec = TWO_OBJECTIVES.__class__(("acc", "size"), ("maximize", "minimize"))
    opt = OptunaOptimizer(2, spec, 0)
    assert [d.name for d in opt.study.directions] == ["MAXIMIZE", "MINIMIZE"]
    [c] = opt.ask(1)
    opt.tell([(c, Fitness.ok({"size": 3.0, "acc": 0.7}))])
    assert opt.study.trials[0].values == [0.7, 3.0]


def test_options_that_cannot_be_saved_as_json_are_refused():
    with pytest.raises(ConfigError, match="plain JSON values"):
        OptunaOptimizer(2, MINIMIZE, 0, sampler="TPE", constraints_func=lambda trial: [0.0])
