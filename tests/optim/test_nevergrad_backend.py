"""nevergrad backend: names, options, failure penalties, sequential methods."""

from __future__ import annotations

import numpy as np
import pytest
from optim_toys import MINIMIZE, TWO_OBJECTIVES, evaluate, run

from evomerge.errors import ConfigError
from evomerge.optim.nevergrad_opt import FAILURE_LOSS_WITHOUT_OK, NevergradOptimizer
from evomerge.records import Candidate, Fitness


def told_losses(opt: NevergradOptimizer) -> list:
    """Record every loss the wrapped nevergrad optimizer is told from now on."""
    seen: list = []
    opt.ng_optimizer.register_callback(
        "tell", lambda _opt, candidate, loss: seen.append(candidate.losses.tolist()
                                                          if opt.objectives.multi else loss))
    return seen


def test_unknown_name_lists_the_nearest_registry_names():
    with pytest.raises(ConfigError, match="TwoPointsDE") as error:
        NevergradOptimizer(2, MINIMIZE, 0, optimizer="TwoPointDE")
    assert error.value.field == "optimizer.options.optimizer"


@pytest.mark.parametrize("options,field", [
    ({"budget": 0}, "optimizer.options.budget"),
    ({"num_workers": 0}, "optimizer.options.num_workers"),
    ({"optimizer": "NGOpt"}, "optimizer.options.budget"),  # NGOpt picks its method from a budget
    ({"optimizer": "Cobyla", "num_workers": 4}, "optimizer.options.optimizer"),  # sequential only
])
def test_bad_options_name_the_field(options, field):
    with pytest.raises(ConfigError) as error:
        NevergradOptimizer(3, MINIMIZE, 0, **options)
    assert error.value.field == field


@pytest.mark.parametrize("name", ["OnePlusOne", "CMA", "PSO", "DiagonalCMA"])
def test_any_registry_optimizer_runs_seeded(name):
    first = run(NevergradOptimizer(3, MINIMIZE, 7, optimizer=name), 16)
    again = run(NevergradOptimizer(3, MINIMIZE, 7, optimizer=name), 16)
    assert [t.candidate.x for t in first.history] == [t.candidate.x for t in again.history]


def test_failure_is_told_worse_than_every_ok_loss_so_far():
    opt = NevergradOptimizer(2, MINIMIZE, 0)
    seen = told_losses(opt)
    a, b, c = opt.ask(3)
    opt.tell([(a, Fitness.failed("oom"))])  # no ok loss known yet: nevergrad's ceiling
    opt.tell([(b, Fitness.ok({"loss": 2.0})), (c, Fitness(status="pruned"))])
    assert seen == [FAILURE_LOSS_WITHOUT_OK, 2.0, 2.0 + 1.0 + 2.0]


def test_multi_objective_failures_are_penalised_per_objective():
    opt = NevergradOptimizer(2, TWO_OBJECTIVES, 0)
    seen = told_losses(opt)
    a, b = opt.ask(2)
    opt.tell([(a, Fitness.ok({"near_a": 1.0, "near_b": -4.0})), (b, Fitness.failed("x"))])
    assert seen == [[1.0, -4.0], [3.0, 1.0]]


def test_never_asked_results_are_told_and_failed_ones_ignored():
    opt = NevergradOptimizer(2, MINIMIZE, 0)
    seen = told_losses(opt)
    outsider = Candidate(x=[0.1, 0.9], origin="enqueued")
    opt.tell([(outsider, Fitness.ok({"loss": 0.5})),
              (Candidate(x=[0.2, 0.2], origin="replayed"), Fitness.failed("x"))])
    assert seen == [0.5] and opt.ng_optimizer.num_tell_not_asked == 1


def test_never_asked_point_outside_the_box_is_refused():
    opt = NevergradOptimizer(2, MINIMIZE, 0)
    with pytest.raises(ConfigError, match="must hold 2 numbers in"):
        opt.tell([(Candidate(x=[0.5, 1.5]), Fitness.ok({"loss": 0.0}))])


def test_sequential_method_refuses_a_second_pending_ask_instead_of_hanging():
    opt = NevergradOptimizer(2, MINIMIZE, 0, optimizer="Cobyla")
    assert opt.sequential
    with pytest.raises(ConfigError, match="one candidate at a time"):
        opt.ask(2)
    # a never-asked result is ignored (scipy-backed methods cannot take one)
    opt.tell([(Candidate(x=[0.3, 0.3]), Fitness.ok({"loss": 1.0}))])
    assert len(opt.history) == 1


def test_pareto_front_of_a_two_objective_run_is_mutually_non_dominated():
    opt = run(NevergradOptimizer(3, TWO_OBJECTIVES, 1), 40)
    front = np.array([opt.objectives.losses(t.fitness) for t in opt.pareto_front()])
    assert len(front) >= 2
    for i, p in enumerate(front):
        others = np.delete(front, i, axis=0)
        assert not np.any(np.all(others <= p, axis=1) & np.any(others < p, axis=1))


def test_tell_order_within_a_batch_is_learnt_as_given():
    """Out-of-order tells reach nevergrad in the order told (seeded replays rely on it)."""
    opt = NevergradOptimizer(2, MINIMIZE, 3)
    seen = told_losses(opt)
    batch = opt.ask(3)
    opt.tell([(c, evaluate(c, MINIMIZE, 2)) for c in reversed(batch)])
    assert seen == [evaluate(c, MINIMIZE, 2).objectives["loss"] for c in reversed(batch)]


def _methods(ng_optimizer) -> list[str]:
    """The class names of a nevergrad optimizer and the methods it delegates to."""
    names, inner = [], ng_optimizer
    while inner is not None and type(inner).__name__ not in names:
        names.append(type(inner).__name__)
        inner = getattr(inner, "optim", None)
    return names


def test_ngopt_runs_its_budget_where_it_picks_the_metamodel():
    # 4 genes, budget 200, 2 workers: NGOpt delegates to MetaModel, whose surrogate
    # loss nevergrad 1.0.12 computes with float() on a one-element array (an error
    # under numpy >= 2.4 without evomerge's fix)
    opt = run(NevergradOptimizer(4, MINIMIZE, 0, optimizer="NGOpt", budget=200,
                                 num_workers=2), 200, batch=2)
    assert any("MetaModel" in name for name in _methods(opt.ng_optimizer))
    assert len(opt.history) == 200
    first = min(t.fitness.objectives["loss"] for t in opt.history[:20])
    assert opt.best().fitness.objectives["loss"] < first / 10
