"""The shared suite every registered optimizer must pass.

Parametrised over ``OPTIMIZERS.names()`` and the configurations in
``optim_capabilities.VARIANTS``: every registered optimizer must have its
``Capabilities`` in ``optim_capabilities.CAPABILITIES``, which decide the checks that
apply (box points, one or several objectives, the comparison with random search).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from optim_capabilities import CAPABILITIES, VARIANTS
from optim_toys import (
    MAXIMIZE,
    MINIMIZE,
    PROBLEMS,
    TWO_OBJECTIVES,
    best_loss,
    evaluate,
    hypervolume_2d,
    median,
    optimum,
    run,
)

from evomerge.errors import ConfigError
from evomerge.optim.base import ConflictingResultError, ObjectiveSpec
from evomerge.optim.registry import OPTIMIZERS
from evomerge.optim.registry import build_optimizer as build_registered
from evomerge.records import Candidate, Fitness

NAMES = OPTIMIZERS.names()
DECLARED = [name for name in NAMES if name in CAPABILITIES] + list(VARIANTS)  # the others fail below


def build_optimizer(name: str, dim: int, spec: ObjectiveSpec, seed: int, **options):
    """A registered optimizer by name, or a suite variant with its options."""
    registered, variant_options = VARIANTS.get(name, (name, {}))
    return build_registered(registered, dim, spec, seed, **variant_options, **options)
SEEDS = (0, 1, 2)


def objective_cases(multi_only: bool = False) -> list:
    """(name, spec) pairs for every objective count each optimizer supports."""
    cases = []
    for name in DECLARED:
        caps = CAPABILITIES[name]
        if caps.single_objective and not multi_only:
            cases.append(pytest.param(name, MAXIMIZE, id=f"{name}-single"))
        if caps.multi_objective:
            cases.append(pytest.param(name, TWO_OBJECTIVES, id=f"{name}-multi"))
    return cases


def dim_for(name: str, spec: ObjectiveSpec, dim: int) -> int:
    """The suite's dimension, unless the optimizer needs one objective per dimension."""
    return len(spec.names) if CAPABILITIES[name].one_objective_per_dimension else dim


def never_asked(name: str, dim: int, like: Candidate, rng: np.random.Generator) -> Candidate:
    """A candidate the optimizer did not ask for: a fresh box point, or (for optimizers
    over structured params) a copy of an asked one under a new uid."""
    if CAPABILITIES[name].box:
        return Candidate(x=[float(v) for v in rng.random(dim)], origin="enqueued")
    return Candidate(x=like.x, params=dict(like.params), origin="replayed")


def test_every_optimizer_declares_its_capabilities():
    assert NAMES and set(NAMES) == set(CAPABILITIES) - set(VARIANTS)
    assert {registered for registered, _ in VARIANTS.values()} <= set(NAMES)


@pytest.mark.parametrize("name,spec", objective_cases())
def test_ask_returns_n_distinct_candidates_in_the_box(name, spec):
    dim = dim_for(name, spec, 3)
    opt = build_optimizer(name, dim, spec, 5)
    first, second = opt.ask(5), opt.ask(3)
    assert len(first) == 5 and len(second) == 3
    uids = [c.uid for c in first + second]
    assert len(set(uids)) == len(uids)
    if CAPABILITIES[name].box:
        points = np.array([c.x for c in first + second])
        assert points.shape == (8, dim)
        assert np.all((points >= 0.0) & (points <= 1.0))
        assert len({tuple(p) for p in points}) == len(points)  # not one point repeated


@pytest.mark.parametrize("name,spec", objective_cases())
def test_tell_takes_partial_out_of_order_failed_and_never_asked_results(name, spec):
    dim = dim_for(name, spec, 3)
    rng = np.random.default_rng(0)
    opt = build_optimizer(name, dim, spec, 1)
    batch = opt.ask(6)
    ok = {c.uid: evaluate(c, spec, dim) for c in batch}
    opt.tell([(batch[4], ok[batch[4].uid]), (batch[1], Fitness.failed("out of memory"))])
    opt.tell([(batch[2], Fitness(status="pruned"))])
    outsider = never_asked(name, dim, batch[0], rng)
    opt.tell([(outsider, evaluate(outsider, spec, dim)),
              (never_asked(name, dim, batch[0], rng), Fitness.failed("crashed"))])
    opt.tell([(c, ok[c.uid]) for c in reversed([batch[0], batch[3], batch[5]])])

    assert len(opt.history) == 8
    assert opt.best().fitness.is_ok
    assert all(t.fitness.is_ok for t in opt.pareto_front())
    assert len(opt.ask(4)) == 4  # still proposing after all of that


@pytest.mark.parametrize("name,spec", objective_cases())
def test_a_pruned_result_teaches_the_same_whatever_its_low_fidelity_scores(name, spec):
    """A candidate a fidelity rule stopped is told as ``pruned`` with the scores of its
    last level. No optimizer reads those scores (README, "Multi-fidelity": CMA-ES ranks it
    below every finished member, nevergrad gives it a penalty, optuna a PRUNED trial,
    the others learn nothing from it): the state and the next asks are those of a pruned
    result without scores, and a pruned result is never the best however high it scored."""
    dim = dim_for(name, spec, 3)
    runs = []
    for estimate in (None, 1e6):
        opt = build_optimizer(name, dim, spec, 3)
        batch = opt.ask(6)
        scores = {} if estimate is None else {n: estimate for n in spec.names}
        opt.tell([(c, evaluate(c, spec, dim)) for c in batch[:4]])
        opt.tell([(c, Fitness(status="pruned", objectives=scores)) for c in batch[4:]])
        assert all(t.fitness.is_ok for t in [opt.best(), *opt.pareto_front()])
        runs.append(opt)
    plain, scored = runs
    same_asks(plain.ask(3), scored.ask(3))
    assert plain.best().candidate.x == scored.best().candidate.x


def mid_run(name: str, spec: ObjectiveSpec, dim: int, seed: int):
    """An optimizer with results told (ok, failed, pruned, never asked), the results in
    the order told, and a candidate it asked that is still pending."""
    opt = build_optimizer(name, dim, spec, seed)
    batch = opt.ask(7)
    outsider = never_asked(name, dim, batch[0], np.random.default_rng(seed))
    told = [(c, evaluate(c, spec, dim)) for c in batch[:4]]
    told += [(batch[4], Fitness.failed("out of memory")), (batch[5], Fitness(status="pruned")),
             (outsider, evaluate(outsider, spec, dim))]
    opt.tell(told[:3])
    opt.tell(told[3:])
    return opt, told, batch[6]


def restored_copy(name: str, spec: ObjectiveSpec, dim: int, seed: int, state: dict):
    copy = build_optimizer(name, dim, spec, seed)
    copy.load_state_dict(json.loads(state))
    return copy


def same_asks(a: list[Candidate], b: list[Candidate]) -> None:
    assert len(a) == len(b)
    assert [(c.x, c.params, c.parents) for c in a] == [(c.x, c.params, c.parents) for c in b]


def state_json(opt) -> str:
    return json.dumps(opt.state_dict(), sort_keys=True)


@pytest.mark.parametrize("name,spec", objective_cases())
def test_a_repeated_tell_changes_neither_state_nor_next_asks(name, spec):
    """A campaign tells results again when it resumes: the same uid with the same result
    is a no-op, whether repeated alone, in a batch with new results, or twice in one batch."""
    dim = dim_for(name, spec, 3)
    opt, told, pending = mid_run(name, spec, dim, 7)
    saved = state_json(opt)
    once = restored_copy(name, spec, dim, 7, saved)
    twice = restored_copy(name, spec, dim, 7, saved)

    twice.tell(told)
    twice.tell([told[2], told[4], told[2]])
    assert state_json(twice) == saved

    pending_result = (pending, evaluate(pending, spec, dim))
    once.tell([pending_result])
    twice.tell([told[1], pending_result, pending_result, told[5]])
    assert state_json(twice) == state_json(once)
    same_asks(once.ask(5), twice.ask(5))


@pytest.mark.parametrize("name,spec", objective_cases())
def test_a_result_told_again_with_another_outcome_is_refused(name, spec):
    dim = dim_for(name, spec, 3)
    opt, told, _ = mid_run(name, spec, dim, 3)
    saved = state_json(opt)
    (candidate, fitness), (failed, _) = told[1], told[4]
    other = Fitness.ok({k: v + 1.0 for k, v in fitness.objectives.items()},
                       directions=fitness.directions, sample_scores=fitness.sample_scores)
    for conflicting in ([(candidate, other)], [(failed, fitness)],
                        [(candidate, Fitness.failed("crashed"))]):
        with pytest.raises(ConflictingResultError, match=conflicting[0][0].uid) as error:
            opt.tell(conflicting)
        assert error.value.uid == conflicting[0][0].uid
        assert state_json(opt) == saved  # refused as a whole: nothing learnt or recorded

    fresh = opt.ask(1)[0]
    saved = state_json(opt)
    with pytest.raises(ConflictingResultError, match=fresh.uid):
        opt.tell([(fresh, evaluate(fresh, spec, dim)), (fresh, Fitness.failed("oom"))])
    assert state_json(opt) == saved


@pytest.mark.parametrize("name,spec", objective_cases())
def test_ask_zero_returns_nothing_and_changes_nothing(name, spec):
    dim = dim_for(name, spec, 3)
    fresh = build_optimizer(name, dim, spec, 4)
    untouched = state_json(fresh)
    assert fresh.ask(0) == []
    assert state_json(fresh) == untouched

    opt, _, _ = mid_run(name, spec, dim, 4)
    saved = state_json(opt)
    assert opt.ask(0) == []
    assert state_json(opt) == saved
    same_asks(opt.ask(3), restored_copy(name, spec, dim, 4, saved).ask(3))


@pytest.mark.parametrize("name,spec", objective_cases())
@pytest.mark.parametrize("n", [-1, 1.0, True, "2"])
def test_ask_refuses_a_count_that_is_not_a_whole_number_of_candidates(name, spec, n):
    opt = build_optimizer(name, dim_for(name, spec, 2), spec, 0)
    with pytest.raises(ValueError, match=f"n={n!r}"):
        opt.ask(n)


@pytest.mark.parametrize("name,spec", objective_cases())
def test_state_round_trip_mid_run_gives_the_same_next_asks(name, spec):
    dim = dim_for(name, spec, 3)
    rng = np.random.default_rng(2)
    original = build_optimizer(name, dim, spec, 11)
    first = original.ask(5)
    original.tell([(c, evaluate(c, spec, dim)) for c in reversed(first[:3])])
    original.tell([(first[3], Fitness.failed("nan loss"))])
    outsider = never_asked(name, dim, first[0], rng)
    original.tell([(outsider, evaluate(outsider, spec, dim))])
    second = original.ask(7)
    original.tell([(c, evaluate(c, spec, dim)) for c in second[::2]])
    pending = [first[4]] + second[1::2]  # asked before the checkpoint, told after it

    state = original.state_dict()
    restored = build_optimizer(name, dim, spec, 11)
    restored.load_state_dict(json.loads(json.dumps(state)))

    same_asks(original.ask(6), restored.ask(6))
    for opt in (original, restored):
        opt.tell([(c, evaluate(c, spec, dim)) for c in pending])
    after_original, after_restored = original.ask(9), restored.ask(9)
    same_asks(after_original, after_restored)
    for opt, batch in ((original, after_original), (restored, after_restored)):
        opt.tell([(c, evaluate(c, spec, dim)) for c in batch])
    same_asks(original.ask(3), restored.ask(3))


@pytest.mark.parametrize("name,spec", objective_cases())
def test_unknown_option_is_a_config_error(name, spec):
    with pytest.raises(ConfigError, match="has no such option") as error:
        build_optimizer(name, dim_for(name, spec, 2), spec, 0, no_such_option=1)
    assert (error.value.field, error.value.value) == ("optimizer.options.no_such_option", 1)


BENCHMARK_BUDGETS = {2: 40, 10: 80}  # evaluations per dimension, asked 4 at a time


def beats_random_cases() -> list:
    return [
        pytest.param(name, problem, dim, id=f"{name}-{problem}-{dim}d")
        for name in DECLARED
        if CAPABILITIES[name].single_objective and CAPABILITIES[name].beats_random_single
        for problem in PROBLEMS
        for dim in BENCHMARK_BUDGETS
    ]


@pytest.mark.parametrize("name,problem,dim", beats_random_cases())
def test_beats_random_search_at_equal_budget(name, problem, dim):
    budget = BENCHMARK_BUDGETS[dim]

    def median_best(opt_name: str) -> float:
        return median(
            best_loss(run(build_optimizer(opt_name, dim, MINIMIZE, seed), budget,
                          PROBLEMS[problem]))
            for seed in SEEDS
        )

    assert median_best(name) < median_best("random")


def multi_objective_cases() -> list:
    return [name for name in DECLARED
            if CAPABILITIES[name].multi_objective and CAPABILITIES[name].beats_random_multi]


@pytest.mark.parametrize("name", multi_objective_cases())
def test_pareto_front_dominates_random_search_on_two_objectives(name):
    dim, budget = dim_for(name, TWO_OBJECTIVES, 4), 48
    a, b = optimum(dim), optimum(dim, shift=0.5)
    span = float(np.sum((a - b) ** 2))  # the front runs from (0, span) to (span, 0)
    reference = (1.2 * span, 1.2 * span)

    def median_hypervolume(opt_name: str) -> float:
        volumes = []
        for seed in SEEDS:
            opt = run(build_optimizer(opt_name, dim, TWO_OBJECTIVES, seed), budget)
            front = [tuple(opt.objectives.losses(t.fitness)) for t in opt.pareto_front()]
            volumes.append(hypervolume_2d(front, reference))
        return median(volumes)

    assert median_hypervolume(name) > median_hypervolume("random")


def test_cma_converges_on_the_sphere_in_5_dimensions():
    opt = build_optimizer("cma", 5, MINIMIZE, 3)
    run(opt, 1200, PROBLEMS["sphere"], batch=opt.popsize)
    assert best_loss(opt) < 1e-6
    assert np.allclose(opt.best().candidate.x, optimum(5), atol=1e-3)


def test_objective_spec_directions_are_respected():
    """Maximising a score and minimising its negation find the same optimum."""
    up = run(build_optimizer("cma", 2, MAXIMIZE, 0), 120)
    down = run(build_optimizer("cma", 2, ObjectiveSpec(("loss",), ("minimize",)), 0), 120)
    assert up.best().candidate.x == down.best().candidate.x
