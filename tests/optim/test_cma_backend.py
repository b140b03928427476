"""CMA-ES backend: options, failures, injection, overlapping generations, restarts."""

from __future__ import annotations

import numpy as np
import pytest
from optim_toys import MINIMIZE, TWO_OBJECTIVES, evaluate, optimum, run, sphere

from evomerge.errors import ConfigError
from evomerge.optim.cmaes import CMAES, RunPlan, default_popsize, plan_restart
from evomerge.records import Candidate, Fitness


def tell_sphere(opt: CMAES, candidates: list[Candidate]) -> None:
    opt.tell([(c, evaluate(c, MINIMIZE, opt.dim)) for c in candidates])


def points(candidates: list[Candidate]) -> np.ndarray:
    return np.array([c.x for c in candidates])


@pytest.mark.parametrize("options,field", [
    ({"popsize": 1}, "optimizer.options.popsize"),
    ({"popsize": 6.0}, "optimizer.options.popsize"),
    ({"sigma0": 0.0}, "optimizer.options.sigma0"),
    ({"sigma0": 2.0}, "optimizer.options.sigma0"),
    ({"x0": [0.5, 0.5]}, "optimizer.options.x0"),
    ({"x0": 1.5}, "optimizer.options.x0"),
    ({"diagonal": "yes"}, "optimizer.options.diagonal"),
    ({"restarts": "lpop"}, "optimizer.options.restarts"),
    ({"max_restarts": -1}, "optimizer.options.max_restarts"),
])
def test_bad_options_name_the_field(options, field):
    with pytest.raises(ConfigError) as error:
        CMAES(3, MINIMIZE, 0, **options)
    assert error.value.field == field


def test_several_objectives_are_refused_with_the_alternatives():
    with pytest.raises(ConfigError, match="optuna"):
        CMAES(3, TWO_OBJECTIVES, 0)


def test_x0_and_sigma0_place_the_first_population():
    opt = CMAES(4, MINIMIZE, 0, x0=[0.2, 0.4, 0.6, 0.8], sigma0=0.01)
    first = points(opt.ask(opt.popsize))
    assert opt.popsize == default_popsize(4) == 8
    assert np.all(np.abs(first - [0.2, 0.4, 0.6, 0.8]) < 0.06)


def test_same_seed_same_points_other_seed_other_points():
    def first_points(seed):
        return points(CMAES(3, MINIMIZE, seed).ask(5))

    assert np.array_equal(first_points(1), first_points(1))
    assert not np.array_equal(first_points(1), first_points(2))


def test_numpy_global_generator_is_left_alone():
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    run(CMAES(3, MINIMIZE, 0), 40)
    assert np.random.random() == expected


def test_failed_member_ranks_below_every_ok_member():
    """CMA-ES learns from ranks only, so a failure must act exactly like the worst loss.
    The member that fails is the generation's best, so its fate matters."""
    def next_points(fate_of_the_best: Fitness | None) -> np.ndarray:
        opt = CMAES(3, MINIMIZE, 4)
        generation = opt.ask(opt.popsize)
        results = [(c, evaluate(c, MINIMIZE, 3)) for c in generation]
        best = min(range(len(results)), key=lambda i: results[i][1].objectives["loss"])
        if fate_of_the_best is not None:
            results[best] = (generation[best], fate_of_the_best)
        opt.tell(results)
        return points(opt.ask(opt.popsize))

    failed = next_points(Fitness.failed("out of memory"))
    assert np.array_equal(failed, next_points(Fitness(status="pruned")))
    assert np.array_equal(failed, next_points(Fitness.ok({"loss": 1e6})))
    assert not np.array_equal(failed, next_points(None))


def test_a_generation_where_every_member_failed_is_dropped():
    dropped = CMAES(3, MINIMIZE, 5)
    generation = dropped.ask(dropped.popsize)
    dropped.tell([(c, Fitness.failed("crash")) for c in generation])
    untold = CMAES(3, MINIMIZE, 5)
    untold.ask(untold.popsize)
    assert np.array_equal(points(dropped.ask(8)), points(untold.ask(8)))


def test_generations_may_complete_in_any_order():
    opt = CMAES(3, MINIMIZE, 6)
    first, second = opt.ask(opt.popsize), opt.ask(opt.popsize)
    tell_sphere(opt, second)
    tell_sphere(opt, first[::-1])
    third = opt.ask(2 * opt.popsize)  # the late tell waits for a sample, then applies
    assert {c.meta["generation"] for c in third} == {2, 3}
    tell_sphere(opt, third)
    assert len(opt.history) == 4 * opt.popsize


def test_never_asked_result_joins_the_next_population_and_pulls_the_mean():
    def spread_after(inject: bool) -> float:
        opt = CMAES(5, MINIMIZE, 8)
        tell_sphere(opt, opt.ask(opt.popsize))
        if inject:
            star = Candidate(x=[float(v) for v in optimum(5)], origin="enqueued")
            opt.tell([(star, evaluate(star, MINIMIZE, 5))])
        handed = opt.ask(opt.popsize - 1 if inject else opt.popsize)
        if inject:  # the injected point took member 0's place and is not asked again
            assert [c.meta["member"] for c in handed] == list(range(1, opt.popsize))
        tell_sphere(opt, handed)
        return float(np.mean([sphere(np.array(c.x)) for c in opt.ask(opt.popsize)]))

    assert spread_after(inject=True) < spread_after(inject=False)


def test_diagonal_mode_changes_the_search_and_still_converges():
    full, diagonal = CMAES(4, MINIMIZE, 2), CMAES(4, MINIMIZE, 2, diagonal=True)
    run(full, 200, batch=full.popsize)
    run(diagonal, 200, batch=diagonal.popsize)
    assert full.ask(1)[0].x != diagonal.ask(1)[0].x
    run(diagonal, 500, batch=diagonal.popsize)
    assert sphere(np.array(diagonal.best().candidate.x)) < 1e-6


def flat(candidates: list[Candidate]) -> list[tuple[Candidate, Fitness]]:
    return [(c, Fitness.ok({"loss": 1.0})) for c in candidates]


def test_ipop_restarts_double_the_population_when_a_run_stops():
    opt = CMAES(3, MINIMIZE, 0, restarts="ipop", max_restarts=2)
    for _ in range(150):  # a flat objective stops pycma's runs within a few generations
        opt.tell(flat(opt.ask(4)))
    assert [p.popsize for p in opt.runs] == [7, 14, 28]
    later = opt.ask(28)
    assert {c.meta["run"] for c in later} == {2}


def test_without_restarts_a_stopped_run_keeps_sampling():
    opt = CMAES(3, MINIMIZE, 0)
    for _ in range(150):
        opt.tell(flat(opt.ask(4)))
    assert len(opt.runs) == 1 and len(opt.ask(4)) == 4


def test_bipop_alternates_large_and_small_runs_by_their_budgets():
    opt = CMAES(3, MINIMIZE, 0, restarts="bipop", max_restarts=6)
    for _ in range(400):
        opt.tell(flat(opt.ask(4)))
    regimes = [p.regime for p in opt.runs]
    assert regimes[:2] == ["first", "large"] and "small" in regimes
    larges = [p.popsize for p in opt.runs if p.regime == "large"]
    assert larges == [7 * 2 ** (i + 1) for i in range(len(larges))]
    for plan in opt.runs:
        if plan.regime == "small":
            assert 7 <= plan.popsize <= max(larges) and plan.sigma0 <= 1 / 6


def test_plan_restart_small_runs_share_the_large_budget():
    first = RunPlan(10, 0.2, "first", 500.0)
    large = plan_restart("bipop", [(first, 400)], 10, 0.2, 500.0, 0.3, 0.9)
    assert (large.regime, large.popsize, large.sigma0) == ("large", 20, 0.2)
    small = plan_restart("bipop", [(first, 400), (large, 2000)], 10, 0.2, 500.0, 0.0, 1.0)
    assert small.regime == "small" and small.popsize == 20 and small.sigma0 == 0.2
    assert small.maxiter == 0.5 * 2000 / 20
    # once small runs have used as many evaluations as large ones, a large run is next
    again = plan_restart("bipop", [(first, 400), (large, 2000), (small, 1700)],
                         10, 0.2, 500.0, 0.5, 0.5)
    assert (again.regime, again.popsize) == ("large", 40)
