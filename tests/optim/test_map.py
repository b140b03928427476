"""MAP: quadratic surrogates, sampling plan, NSGA-II/III, Pareto metrics, the ask/tell
optimizer (end to end, state, failures, Bayesian rounds) and nested MAP."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from evomerge.errors import ConfigError
from evomerge.optim.base import ObjectiveSpec
from evomerge.optim.map_nested import NestedMapOptimizer
from evomerge.optim.map_nsga import crowding_distance, fast_non_dominated_sort, nsga2
from evomerge.optim.map_nsga3 import nsga3
from evomerge.optim.map_opt import MapOptimizer
from evomerge.optim.map_plan import default_plan_size, initial_plan
from evomerge.optim.map_surrogate import (
    fit_quadratic, loo_residuals, n_quadratic_terms, quadratic_features,
)
from evomerge.optim.pareto_metrics import hypervolume, igd, win_rate
from evomerge.pareto import pareto_filter
from evomerge.records import Candidate, Fitness

MAX2 = ("maximize", "maximize")


def sigmoid(q):
    return 1.0 / (1.0 + np.exp(-q))


def merge_tasks(c: np.ndarray) -> np.ndarray:
    """Synthetic merge: task t gains from its own coefficient, loses to the others'.

    Each task's accuracy is a sigmoid of a quadratic in c, the shape MAP assumes.
    """
    c = np.atleast_2d(c)
    out = []
    for t in range(c.shape[1]):
        own, others = c[:, t], np.delete(c, t, axis=1)
        q = (-1.0 + 5 * own - 2.5 * own**2 - 1.5 * (others**2).sum(1)
             - 0.8 * own * others.sum(1) + 0.5 * others.sum(1))
        out.append(sigmoid(q))
    return np.stack(out, axis=1)


def grid(dim: int, n: int) -> np.ndarray:
    axis = np.linspace(0.0, 1.0, n)
    return np.stack(np.meshgrid(*[axis] * dim, indexing="ij"), axis=-1).reshape(-1, dim)


def evaluate(cands, fn, names):
    return [(c, Fitness.ok(dict(zip(names, map(float, fn(np.array(c.x))[0]))))) for c in cands]


# ----- quadratic surrogate -------------------------------------------------------------

def test_quadratic_fit_recovers_a_known_quadratic_exactly():
    rng = np.random.default_rng(0)
    c = rng.random((25, 3))
    true = rng.normal(size=n_quadratic_terms(3))
    fit = fit_quadratic(c, quadratic_features(c) @ true, "identity")
    np.testing.assert_allclose(fit.coef, true, atol=1e-10)
    fresh = rng.random((5, 3))
    np.testing.assert_allclose(fit.predict(fresh), quadratic_features(fresh) @ true, atol=1e-10)


@pytest.mark.parametrize("link, link_fn", [
    ("sigmoid", sigmoid), ("softplus", lambda q: np.logaddexp(0.0, q))])
def test_quadratic_fit_recovers_a_known_quadratic_through_its_link(link, link_fn):
    rng = np.random.default_rng(1)
    c = rng.random((20, 2))
    true = np.array([0.5, 2.0, -1.0, -3.0, 1.5, 0.8])
    fit = fit_quadratic(c, link_fn(quadratic_features(c) @ true), link)
    np.testing.assert_allclose(fit.coef, true, atol=1e-7)


def test_sigmoid_fit_handles_accuracies_of_exactly_zero_and_one():
    c = np.linspace(0, 1, 9)[:, None]
    y = np.array([0.0, 0.05, 0.3, 0.7, 0.9, 1.0, 1.0, 0.95, 0.8])
    fit = fit_quadratic(c, y, "sigmoid")
    # the least-squares fit in accuracy units beats the linear fit of clipped logits
    clipped = np.clip(y, 1e-4, 1 - 1e-4)
    logit_coef = np.linalg.lstsq(quadratic_features(c), np.log(clipped / (1 - clipped)),
                                 rcond=None)[0]
    logit_sse = np.sum((sigmoid(quadratic_features(c) @ logit_coef) - y) ** 2)
    assert np.sum((fit.predict(c) - y) ** 2) < logit_sse


def test_link_out_of_range_is_a_user_error_naming_the_rule():
    with pytest.raises(ConfigError, match=r"\[0, 1\].*1\.5"):
        fit_quadratic(np.eye(2), np.array([0.5, 1.5]), "sigmoid")
    with pytest.raises(ConfigError, match="one of identity, sigmoid, softplus"):
        fit_quadratic(np.eye(2), np.array([0.5, 0.5]), "probit")


def test_loo_residuals_equal_the_hat_matrix_formula_for_the_identity_link():
    rng = np.random.default_rng(2)
    c = rng.random((15, 2))
    y = np.sin(3 * c[:, 0]) + c[:, 1] ** 3
    x = quadratic_features(c)
    hat = x @ np.linalg.pinv(x.T @ x) @ x.T
    residual = y - hat @ y
    np.testing.assert_allclose(loo_residuals(c, y), residual / (1 - np.diag(hat)), atol=1e-9)


# ----- sampling plan -------------------------------------------------------------------

@pytest.mark.parametrize("dim", [1, 2, 3, 5])
def test_plan_has_documented_size_origin_every_corner_and_distinct_points(dim):
    plan = initial_plan(dim, seed=3)
    assert len(plan) == default_plan_size(dim) == (dim + 1) * (dim + 2)
    assert len(plan) == 2 * n_quadratic_terms(dim)
    rows = {tuple(p) for p in plan}
    assert tuple([0.0] * dim) in rows
    for corner in np.eye(dim):
        assert tuple(corner) in rows
    assert len(rows) == len(plan)
    assert plan.min() >= 0.0 and plan.max() <= 1.0


def test_plan_is_seeded_and_rejects_a_size_without_room_for_the_corners():
    np.testing.assert_array_equal(initial_plan(3, seed=5), initial_plan(3, seed=5))
    assert not np.array_equal(initial_plan(3, seed=5), initial_plan(3, seed=6))
    with pytest.raises(ConfigError, match="plan_size.*>= dim \\+ 1 = 4"):
        initial_plan(3, size=3)


# ----- NSGA-II / NSGA-III ------------------------------------------------------------

def test_sort_and_crowding_on_a_hand_built_population():
    losses = np.array([[1, 4], [2, 2], [4, 1], [3, 3], [5, 5], [2, 5]], dtype=float)
    assert [f.tolist() for f in fast_non_dominated_sort(losses)] == [[0, 1, 2], [3, 5], [4]]
    # middle point: (4 - 1) / 3 + (4 - 1) / 3 = 2
    np.testing.assert_allclose(crowding_distance(losses[[0, 1, 2]]), [np.inf, 2.0, np.inf])


def two_convex_quadratics(x):
    a, b = np.array([0.2, 0.3]), np.array([0.8, 0.9])
    return np.stack([((x - a) ** 2).sum(1), ((x - b) ** 2).sum(1)], axis=1)


def test_nsga2_matches_the_brute_force_grid_front():
    _, found = nsga2(two_convex_quadratics, [0, 0], [1, 1], pop_size=60, generations=60, seed=0)
    reference = pareto_filter(two_convex_quadratics(grid(2, 201)))
    # tolerance: 201x201 grid spacing is 0.005 in x, the front's span is 0.72 in f
    assert igd(found, reference) < 0.01
    # analytic front: the segment from a to b, sqrt(f1) + sqrt(f2) = |a - b|
    gap = np.abs(np.sqrt(found).sum(1) - np.sqrt(0.72))
    assert np.median(gap) < 3e-3 and gap.max() < 3e-2
    assert len(found) >= 40  # spread, not collapsed


def test_nsga2_is_seeded():
    a = nsga2(two_convex_quadratics, [0, 0], [1, 1], pop_size=20, generations=10, seed=4)
    b = nsga2(two_convex_quadratics, [0, 0], [1, 1], pop_size=20, generations=10, seed=4)
    np.testing.assert_array_equal(a[0], b[0])


def dtlz2(x: np.ndarray, m: int = 4) -> np.ndarray:
    """DTLZ2 (Deb et al. 2002): its front is the unit sphere's positive orthant."""
    radius = 1.0 + ((x[:, m - 1:] - 0.5) ** 2).sum(1)
    angles = x[:, : m - 1] * np.pi / 2
    out = []
    for i in range(m):
        value = radius * np.prod(np.cos(angles[:, : m - 1 - i]), axis=1)
        out.append(value * (np.sin(angles[:, m - 1 - i]) if i > 0 else 1.0))
    return np.stack(out, axis=1)


def test_nsga3_converges_on_four_objectives_where_crowding_does_not():
    box = ([0.0] * 5, [1.0] * 5)
    _, f3 = nsga3(dtlz2, *box, pop_size=56, generations=100, seed=0)
    _, f2 = nsga2(dtlz2, *box, pop_size=56, generations=100, seed=0)
    off_sphere = np.abs(np.linalg.norm(f3, axis=1) - 1.0)
    assert np.median(off_sphere) < 0.01 and off_sphere.max() < 0.05
    assert hypervolume(f3, [1.5] * 4) > hypervolume(f2, [1.5] * 4)


# ----- Pareto metrics ------------------------------------------------------------------

def test_hypervolume_on_hand_computed_examples():
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4]) == pytest.approx(3 + 2 + 1)
    # the same front as accuracies, maximised, reference at the worst corner
    assert hypervolume([[3, 1], [2, 2], [1, 3]], [0, 0], MAX2) == pytest.approx(6.0)
    # dominated points and points beyond the reference add nothing
    assert hypervolume([[1, 3], [2, 2], [3, 1], [3, 3], [5, 0]], [4, 4]) == pytest.approx(6.0)
    # 3-D: boxes of volume 4 and 2 overlapping in a unit cube
    assert hypervolume([[0, 0, 1], [1, 1, 0]], [2, 2, 2]) == pytest.approx(5.0)
    assert hypervolume([[1, 1, 1]], [2, 3, 4]) == pytest.approx(6.0)
    assert hypervolume([], [1, 1]) == 0.0


def _inclusion_exclusion_volume(points, ref):
    total = 0.0
    for k in range(1, len(points) + 1):
        for subset in itertools.combinations(points, k):
            corner = np.max(subset, axis=0)
            total += (-1) ** (k + 1) * np.prod(np.clip(ref - corner, 0, None))
    return total


@pytest.mark.parametrize("m", [3, 4])
def test_hypervolume_matches_inclusion_exclusion(m):
    rng = np.random.default_rng(m)
    for _ in range(5):
        points = rng.random((6, m))
        ref = np.ones(m) * 1.1
        assert hypervolume(points, ref) == pytest.approx(_inclusion_exclusion_volume(points, ref))


def test_igd_and_win_rate_on_hand_computed_examples():
    reference = [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]
    assert igd([[0, 1], [1, 0]], reference) == pytest.approx(np.sqrt(0.5) / 3)
    assert igd(reference, reference) == 0.0
    assert igd([[0.5, 0.5]], reference, MAX2) == igd([[0.5, 0.5]], reference)
    found = [[0.5, 0.5]]  # maximised: covers (0.5, 0.5) only; with atol 0.5 all three
    assert win_rate(found, reference, MAX2) == pytest.approx(1 / 3)
    assert win_rate(found, reference, MAX2, atol=0.5) == 1.0
    assert win_rate([[1.0, 1.0]], reference, MAX2) == 1.0
    # the same point minimised: dominated by nothing it covers except itself
    assert win_rate(found, reference) == pytest.approx(1 / 3)
    assert win_rate([[2.0, 2.0]], reference) == 0.0


# ----- the optimizer -------------------------------------------------------------------

def run_plan(opt, fn, names):
    plan = opt.ask(opt.options["plan_size"])
    opt.tell(evaluate(plan, fn, names))
    return plan


def test_map_end_to_end_matches_the_brute_force_front():
    names = ("a", "b")
    opt = MapOptimizer(2, ObjectiveSpec(names, MAX2), seed=0, bayes_rounds=0)
    plan = run_plan(opt, merge_tasks, names)
    front = opt.ask(30)
    assert [c.meta["phase"] for c in front] == ["front"] * 30
    opt.tell(evaluate(front, merge_tasks, names))

    rows = opt.front_report()
    measured = np.array([[r["measured"][n] for n in names] for r in rows])
    predicted = np.array([[r["predicted"][n] for n in names] for r in rows])
    np.testing.assert_allclose(predicted, measured, atol=1e-6)  # the model class is exact

    reference = pareto_filter(merge_tasks(grid(2, 51)), MAX2)  # 2,601 evaluations
    assert igd(measured, reference) < 0.015
    assert win_rate(measured, reference, MAX2, atol=0.01) >= 0.85
    assert hypervolume(measured, [0, 0], MAX2) >= 0.985 * hypervolume(reference, [0, 0], MAX2)
    # and it beats the plan alone, which is what the surrogate search adds
    plan_front = pareto_filter(merge_tasks(np.array([c.x for c in plan])), MAX2)
    assert igd(measured, reference) < igd(plan_front, reference) / 2


def test_front_search_stays_inside_the_sampled_box():
    names = ("a", "b")
    opt = MapOptimizer(2, ObjectiveSpec(names, MAX2), seed=1, bayes_rounds=0)
    plan = opt.ask(12)
    anchors, rest = plan[:3], plan[3:]  # origin and corners fail: the box shrinks
    opt.tell([(c, Fitness.failed("out of memory")) for c in anchors])
    opt.tell(evaluate(rest, merge_tasks, names))
    lower, upper = np.min([c.x for c in rest], axis=0), np.max([c.x for c in rest], axis=0)
    np.testing.assert_array_equal(opt.sampled_box()[0], lower)
    front = np.array([c.x for c in opt.ask(10)])
    assert np.all(front >= lower - 1e-12) and np.all(front <= upper + 1e-12)
    # failures are left out of the fit: it equals a fit on the successes alone
    ok = np.array([c.x for c in rest])
    direct = fit_quadratic(ok, merge_tasks(ok)[:, 0], "sigmoid")
    np.testing.assert_allclose(opt.surrogates()["a"].coef, direct.coef)


def test_plan_pending_gives_fill_points_and_never_asked_results_are_fitted():
    names = ("a", "b")
    opt = MapOptimizer(2, ObjectiveSpec(names, MAX2), seed=2)
    plan = opt.ask(10)
    extra = opt.ask(4)  # 2 plan points left, then 2 fill points
    assert [c.meta["phase"] for c in extra] == ["plan", "plan", "fill", "fill"]
    opt.tell(evaluate(plan + extra[:2], merge_tasks, names))
    outsider = Candidate(x=[0.3, 0.3], origin="enqueued")
    opt.tell(evaluate([outsider], merge_tasks, names))
    assert opt.phase() == "front"
    assert len(opt.fit_data()[0]) == 13  # plan + the enqueued point (fills untold)


def test_state_round_trip_gives_the_same_next_asks():
    names = ("a", "b")
    spec = ObjectiveSpec(names, MAX2)
    opt = MapOptimizer(2, spec, seed=3, bayes_rounds=1, generations=30)

    def clone():
        copy = MapOptimizer(2, spec, seed=3, bayes_rounds=1, generations=30)
        copy.load_state_dict(json.loads(json.dumps(opt.state_dict())))
        return copy

    checkpoints = []
    for step in range(4):  # mid-plan, front, bayes, final
        copy = clone()
        mine, theirs = opt.ask(5), copy.ask(5)
        assert [c.x for c in mine] == [c.x for c in theirs]
        checkpoints.append(mine[0].meta["phase"])
        opt.tell(evaluate(mine, merge_tasks, names))
        if step == 0:
            opt.tell(evaluate(opt.ask(7), merge_tasks, names))
    assert checkpoints == ["plan", "front", "bayes", "front"]
    with pytest.raises(ConfigError, match="options"):
        MapOptimizer(2, spec, seed=3, bayes_rounds=2).load_state_dict(opt.state_dict())


def test_options_are_validated_with_the_field_and_rule():
    spec = ObjectiveSpec(("a",), ("maximize",))
    with pytest.raises(ConfigError, match="'optimizer.options.bayes_round'.*did you mean "
                                          "'bayes_rounds'"):
        MapOptimizer(2, spec, bayes_round=1)
    with pytest.raises(ConfigError, match="'optimizer.options.links.b'.*names no objective"):
        MapOptimizer(2, spec, links={"b": "sigmoid"})
    with pytest.raises(ConfigError, match="'optimizer.options.links' = 'cubic'.*one of"):
        MapOptimizer(2, spec, links="cubic")
    with pytest.raises(ConfigError, match="'optimizer.options.moea' = 'spea2'.*one of"):
        MapOptimizer(2, spec, moea="spea2")
    with pytest.raises(ConfigError, match="'optimizer.options.pop_size' = 3.*>= 4"):
        MapOptimizer(2, spec, pop_size=3)


def test_one_objective_front_is_topped_up_to_the_requested_count():
    spec = ObjectiveSpec(("loss",), ("minimize",))
    opt = MapOptimizer(2, spec, seed=0, bayes_rounds=0, generations=20)
    bowl = lambda c: ((np.atleast_2d(c) - 0.4) ** 2).sum(1, keepdims=True)  # noqa: E731
    run_plan(opt, bowl, ("loss",))
    asked = opt.ask(3)
    assert [c.meta["phase"] for c in asked] == ["front", "fill", "fill"]
    np.testing.assert_allclose(asked[0].x, [0.4, 0.4], atol=0.02)


def test_bayesian_rounds_lower_the_surrogate_error_on_a_non_quadratic_objective():
    def wavy(c):
        c = np.atleast_2d(c)
        return (0.5 + 0.3 * np.sin(3 * c[:, 0] + 1) * np.cos(2 * c[:, 1]))[:, None]

    names, probe = ("acc",), grid(2, 41)
    truth = wavy(probe)[:, 0]
    max_ratios = []
    for seed in range(3):
        opt = MapOptimizer(2, ObjectiveSpec(names, ("maximize",)), seed=seed,
                           bayes_rounds=3, generations=20)
        run_plan(opt, wavy, names)
        first = np.abs(opt.predict(probe)[:, 0] - truth)
        for _ in range(3):
            opt.ask(4)  # predicted-front points, left unevaluated: only resampling counts
            resampled = opt.ask(6)
            assert {c.meta["phase"] for c in resampled} == {"bayes"}
            opt.tell(evaluate(resampled, wavy, names))
        after = np.abs(opt.predict(probe)[:, 0] - truth)
        # every seed: grid RMSE down by 15 %+ (measured 0.51-0.78 over seeds 0-7)
        assert np.sqrt(np.mean(after**2)) < 0.85 * np.sqrt(np.mean(first**2))
        max_ratios.append(after.max() / first.max())
    # worst-spot error: down on average (one seed in eight, 4, does not lower it)
    assert np.mean(max_ratios) < 0.7


# ----- nested MAP ----------------------------------------------------------------------

def test_nested_map_composes_coefficients_by_products_and_beats_random_search():
    dim = 4
    names = tuple(f"t{i}" for i in range(dim))
    spec = ObjectiveSpec(names, ("maximize",) * dim)
    opt = NestedMapOptimizer(dim, spec, seed=0, generations=30, pop_size=40)
    while not opt.finished:
        copy = NestedMapOptimizer(dim, spec, seed=0, generations=30, pop_size=40)
        copy.load_state_dict(json.loads(json.dumps(opt.state_dict())))
        batch = opt.ask(6)
        assert [c.x for c in copy.ask(6)] == [c.x for c in batch]  # state round trip
        opt.tell(evaluate(batch, merge_tasks, names))
    assert len(opt.done) == 3  # (0,1), (2,3), then (01, 23)
    (p01, p23, root) = opt.done
    a, b = root["chosen"]
    expected = [a * p01["chosen"][0], a * p01["chosen"][1],
                b * p23["chosen"][0], b * p23["chosen"][1]]
    np.testing.assert_allclose(opt.final_coefficients(), expected)

    spent = len(opt.history)
    assert spent <= 3 * 16 + 3 * 6  # 3 pairs x (12 plan + 4 front), plus overshoot
    nested_mean = merge_tasks(np.array(opt.final_coefficients()))[0].mean()
    random_best = merge_tasks(np.random.default_rng(0).random((spent, dim))).mean(1).max()
    assert nested_mean > random_best


def test_nested_map_carries_an_odd_group_up_and_finishes_without_a_trade_off():
    names = ("t0", "t1", "t2")
    spec = ObjectiveSpec(names, ("maximize",) * 3)

    def agreeing(c):  # every task wants the same merge: each pair's front is one point
        c = np.atleast_2d(c)
        return np.repeat(1.0 - ((c - 0.5) ** 2).sum(1, keepdims=True), 3, axis=1)

    opt = NestedMapOptimizer(3, spec, seed=1, generations=20, pop_size=20)
    for _ in range(30):
        if opt.finished:
            break
        opt.tell(evaluate(opt.ask(8), agreeing, names))
    assert opt.finished
    assert [(d["left"], d["right"]) for d in opt.done] == [([0], [1]), ([0, 1], [2])]
    first, root = opt.done
    expected = [root["chosen"][0] * first["chosen"][0], root["chosen"][0] * first["chosen"][1],
                root["chosen"][1]]
    np.testing.assert_allclose(opt.final_coefficients(), expected)
    assert agreeing(np.array(opt.final_coefficients()))[0, 0] > 0.9
