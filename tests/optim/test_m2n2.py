"""M2N2: selection math against hand computations, crossover against the formula, the
coefficient form against the vector form, steady-state replacement, ask/tell and state."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from evomerge.errors import ConfigError, EvomergeError
from evomerge.optim.m2n2 import M2N2, candidate_vector
from evomerge.optim.m2n2_archive import Archive, Member
from evomerge.optim.m2n2_crossover import (
    coefficient_slerp,
    draw_split_group,
    group_gram,
    split_point_slerp,
)
from evomerge.optim.m2n2_selection import (
    attraction,
    choose_parents,
    draw_index,
    replacement_index,
    shared_fitness,
)
from evomerge.records import Candidate, Fitness

# Hand example. Column 3 is solved by nobody: z_3 = 0 is replaced by 1.
#        d0   d1   d2   d3
S = np.array([
    [1.0, 0.5, 0.0, 0.0],   # member 0
    [1.0, 0.0, 1.0, 0.0],   # member 1
    [0.0, 0.5, 0.0, 0.0],   # member 2
])
# z = [2, 1, 1, 1]; shared rows S/z:
#   m0 = [.5, .5, 0, 0] -> f0 = 1.0
#   m1 = [.5, 0, 1, 0]  -> f1 = 1.5
#   m2 = [0, .5, 0, 0]  -> f2 = 0.5


def test_shared_fitness_matches_hand_computation():
    np.testing.assert_allclose(shared_fitness(S, alpha=1.0), [1.0, 1.5, 0.5])
    # alpha = 0: z^0 = 1, the plain row sums of a GA
    np.testing.assert_allclose(shared_fitness(S, alpha=0.0), [1.5, 2.0, 0.5])


def test_attraction_matches_hand_computation():
    # A = 0 ([.5, .5, 0, 0]): only m1 beats it, on d2 by 1 -> g = [0, 1, 0]
    np.testing.assert_allclose(attraction(S, 0), [0.0, 1.0, 0.0])
    # A = 1 ([.5, 0, 1, 0]): m0 and m2 both beat it on d1 by .5
    np.testing.assert_allclose(attraction(S, 1), [0.5, 0.0, 0.5])
    # A = 2 ([0, .5, 0, 0]): m0 by .5 on d0; m1 by .5 on d0 and 1 on d2
    np.testing.assert_allclose(attraction(S, 2), [0.5, 1.5, 0.0])


def test_unsolved_datapoint_counts_as_size_one_and_adds_nothing():
    with_zero_column = np.hstack([S, np.zeros((3, 2))])
    np.testing.assert_allclose(shared_fitness(with_zero_column), shared_fitness(S))
    assert np.all(np.isfinite(attraction(with_zero_column, 1)))


def test_parents_follow_fitness_then_attraction():
    rng = np.random.default_rng(0)
    pairs = [choose_parents(S, rng) for _ in range(4000)]
    first = np.bincount([a for a, _ in pairs], minlength=3) / len(pairs)
    np.testing.assert_allclose(first, [1.0 / 3, 1.5 / 3, 0.5 / 3], atol=0.03)
    # A = 0 is only attracted to m1 (g = [0, 1, 0]): B is always 1
    assert {b for a, b in pairs if a == 0} == {1}
    # A = 2: g = [.5, 1.5, 0] -> B = 1 three times as often as B = 0
    partners = np.array([b for a, b in pairs if a == 2])
    assert set(partners) == {0, 1}
    assert abs(np.mean(partners == 1) - 0.75) < 0.06


def test_partner_falls_back_to_fitness_when_nobody_is_attracted():
    # m0 solves everything m1 solves; z = [1, 2]: f = [1.5, 0.5, 0]
    dominant = np.array([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(attraction(dominant, 0), [0.0, 0.0, 0.0])
    rng = np.random.default_rng(1)
    pairs = [choose_parents(dominant, rng) for _ in range(4000)]
    partners_of_0 = np.array([b for a, b in pairs if a == 0])
    assert set(partners_of_0) == {0, 1}                   # ∝ f, never the zero-fitness m2
    assert abs(np.mean(partners_of_0 == 1) - 0.25) < 0.03
    assert {b for a, b in pairs if a == 1} == {0}         # g(1, .) = [1, 0, 0]
    assert all(a != 2 for a, _ in pairs)


def test_all_zero_weights_draw_uniformly():
    rng = np.random.default_rng(2)
    counts = np.bincount([draw_index(np.zeros(4), rng) for _ in range(4000)], minlength=4)
    assert counts.min() > 850


def test_no_attraction_ablation_draws_partner_by_fitness():
    rng = np.random.default_rng(3)
    pairs = [choose_parents(S, rng, use_attraction=False) for _ in range(3000)]
    assert {b for a, b in pairs if a == 0} == {0, 1, 2}   # with attraction only {1}


def _slerp_formula(x, y, t):
    omega = np.arccos(x @ y / np.linalg.norm(x) / np.linalg.norm(y))
    return (np.sin((1 - t) * omega) * x + np.sin(t * omega) * y) / np.sin(omega)


def test_split_point_slerp_matches_formula_on_both_sides():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=7), rng.normal(size=7)
    child = split_point_slerp(x, y, split=3, w=0.3)
    np.testing.assert_allclose(child[:3], _slerp_formula(x, y, 0.3)[:3], rtol=1e-12)
    np.testing.assert_allclose(child[3:], _slerp_formula(x, y, 0.7)[3:], rtol=1e-12)


def test_slerp_endpoints_and_parallel_fallback():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=6), rng.normal(size=6)
    np.testing.assert_allclose(split_point_slerp(x, y, 6, 0.0), x, atol=1e-12)
    np.testing.assert_allclose(split_point_slerp(x, y, 6, 1.0), y, atol=1e-12)
    np.testing.assert_allclose(split_point_slerp(x, y, 0, 0.0), y, atol=1e-12)
    # split at 2 with w = 1: y before, x after
    np.testing.assert_allclose(split_point_slerp(x, y, 2, 1.0), np.r_[y[:2], x[2:]],
                               atol=1e-12)
    # unit vectors stay on the sphere
    u, v = x / np.linalg.norm(x), y / np.linalg.norm(y)
    assert abs(np.linalg.norm(split_point_slerp(u, v, 6, 0.4)) - 1) < 1e-12
    # parallel: linear interpolation (the SLERP formula would divide by sin(0))
    np.testing.assert_allclose(split_point_slerp(x, 3 * x, 6, 0.5), 2 * x, rtol=1e-12)


def _expand(coefficients, basis):
    """theta = concat over groups of sum_k C[g, k] * basis[g][k]."""
    return np.concatenate([sum(c * b for c, b in zip(row, group))
                           for row, group in zip(coefficients, basis)])


def test_coefficient_form_gives_the_vector_form_child():
    rng = np.random.default_rng(6)
    sizes = [2, 3, 4]
    basis = [[rng.normal(size=n) for _ in range(3)] for n in sizes]   # G=3, K+1=3
    gram = group_gram(basis)
    c_a, c_b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    theta_a, theta_b = _expand(c_a, basis), _expand(c_b, basis)
    offsets = np.cumsum([0] + sizes)
    for split_group in range(4):
        for w in (0.0, 0.35, 1.0):
            from_vectors = split_point_slerp(theta_a, theta_b, offsets[split_group], w)
            from_recipe = _expand(coefficient_slerp(c_a, c_b, gram, split_group, w), basis)
            np.testing.assert_allclose(from_recipe, from_vectors, rtol=1e-10, atol=1e-12)


def test_split_group_is_drawn_in_proportion_to_group_size():
    rng = np.random.default_rng(7)
    draws = [draw_split_group(np.array([1, 3, 6]), rng) for _ in range(20000)]
    np.testing.assert_allclose(np.bincount(draws) / len(draws), [0.1, 0.3, 0.6], atol=0.015)


def _archive(rows, alpha=1.0):
    archive = Archive(capacity=len(rows), alpha=alpha)
    for i, row in enumerate(rows):
        archive.insert(Member(f"m{i}", None), np.array(row, float))
    return archive


def test_replacement_drops_lowest_shared_fitness_or_the_child():
    archive = _archive([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]])
    # with c: z = [2, 1, 1, 1]; f = [1.5, .5, 1, 1]: m1 goes, though its raw score
    # equals m2's and c's, because it only shares datapoint 0 with m0
    dropped = archive.insert(Member("c", None), np.array([0.0, 0, 0, 1]))
    assert dropped.uid == "m1"
    assert [m.uid for m in archive.members] == ["m0", "c", "m2"]
    # d copies m1: f = [1.5, 1, 1, .5] with d last -> the child itself is dropped
    dropped = archive.insert(Member("d", None), np.array([1.0, 0, 0, 0]))
    assert dropped.uid == "d"
    assert [m.uid for m in archive.members] == ["m0", "c", "m2"]
    np.testing.assert_array_equal(archive.scores, [[1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]])


def test_ga_replacement_uses_raw_sums_and_ties_keep_the_child():
    archive = _archive([[1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], alpha=0.0)
    # raw sums [2, 1, 1] and 1 for d: a tie goes to the earliest row, m1
    assert archive.insert(Member("d", None), np.array([1.0, 0, 0, 0])).uid == "m1"
    assert replacement_index(np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]), 0.0) == 2


# ------------------------------------------------------------------- ask / tell

TARGET = np.array([0.5, -1.0, 2.0, 0.0, 1.0, -0.5], np.float32)


def toy_fitness(vector):
    closeness = np.exp(-np.abs(vector - TARGET))
    return Fitness.ok({"closeness": float(closeness.mean())},
                      sample_scores={"toy": {f"d{i}": float(c) for i, c in enumerate(closeness)}})


def run_steps(opt, steps, batch=1):
    for _ in range(steps):
        cands = opt.ask(batch)
        opt.tell([(c, toy_fitness(candidate_vector(c))) for c in reversed(cands)])


def test_starting_members_come_first_then_children_of_them():
    opt = M2N2(6, seed=0, random_init=2)
    cands = opt.ask(4)
    roles = [c.meta["m2n2"]["role"] for c in cands]
    assert roles == ["start", "start", "child", "child"]
    assert {c.meta["m2n2"]["batch"] for c in cands} == {0}
    # nothing is scored yet: the children's parents are the starting members
    starts = {cands[0].uid, cands[1].uid}
    assert all(set(c.parents) <= starts for c in cands[2:])


def test_batch_parents_come_from_the_archive_at_ask_time():
    opt = M2N2(6, seed=1, population=4)
    run_steps(opt, 20)
    members_before = {m.uid for m in opt.archive.members}
    batch = opt.ask(8)
    assert {c.meta["m2n2"]["batch"] for c in batch} == {opt.batches - 1}
    assert all(set(c.parents) <= members_before for c in batch)
    told = opt.evaluations
    for c in batch[::-1]:   # results arrive one at a time, in reverse order
        opt.tell([(c, toy_fitness(candidate_vector(c)))])
    assert opt.evaluations == told + 8
    assert len(opt.archive.members) == 4


def test_failed_results_are_not_inserted_and_foreign_candidates_are():
    opt = M2N2(6, seed=2, population=3)
    run_steps(opt, 5)
    (cand,) = opt.ask(1)
    before = [m.uid for m in opt.archive.members]
    opt.tell([(cand, Fitness.failed("out of memory"))])
    assert [m.uid for m in opt.archive.members] == before
    assert opt.history[-1].fitness.status == "failed"
    # a never-asked candidate carrying the target itself beats everyone
    foreign = Candidate(x=TARGET.tolist(), origin="enqueued")
    opt.tell([(foreign, toy_fitness(TARGET))])
    assert foreign.uid in [m.uid for m in opt.archive.members]
    assert opt.best().candidate.uid == foreign.uid
    np.testing.assert_array_equal(candidate_vector(opt.best().candidate), TARGET)


def test_a_starting_member_told_before_it_is_asked_is_not_asked_again():
    # a replayed journal: a fresh optimizer with the same seed learns the result for
    # its second starting member (same uid) before asking anything
    options = {"seed": 6, "initial": [np.zeros(6, np.float32), TARGET]}
    first, second = M2N2(6, **options).ask(2)
    opt = M2N2(6, **options)
    opt.tell([(second, toy_fitness(TARGET))])
    asked = opt.ask(2)
    assert [c.uid for c in asked][0] == first.uid
    assert asked[1].meta["m2n2"]["role"] == "child"


def test_a_starting_member_that_failed_before_it_is_asked_is_not_asked_again():
    options = {"seed": 6, "initial": [np.zeros(6, np.float32), TARGET]}
    first, second = M2N2(6, **options).ask(2)
    opt = M2N2(6, **options)
    opt.tell([(second, Fitness.failed("out of memory"))])
    asked = opt.ask(3)
    assert asked[0].uid == first.uid and second.uid not in {c.uid for c in asked}
    assert [c.meta["m2n2"]["role"] for c in asked] == ["start", "child", "child"]


def test_a_batch_with_one_bad_result_changes_nothing_until_it_is_fixed():
    opt = M2N2(6, seed=4)
    run_steps(opt, 3)
    good, bad = opt.ask(2)
    saved = json.dumps(opt.state_dict(), sort_keys=True)
    with pytest.raises(EvomergeError, match=f"candidate {bad.uid}: per-sample scores"):
        opt.tell([(good, toy_fitness(candidate_vector(good))), (bad, Fitness.ok({"acc": 1.0}))])
    assert json.dumps(opt.state_dict(), sort_keys=True) == saved
    opt.tell([(c, toy_fitness(candidate_vector(c))) for c in (good, bad)])
    assert opt.evaluations == 5 and len(opt.history) == 5


def test_history_drops_vectors_and_sample_scores():
    opt = M2N2(6, seed=3)
    run_steps(opt, 3)
    assert all("m2n2_vector" not in t.candidate.params for t in opt.history)
    assert all(t.fitness.sample_scores == {} for t in opt.history)
    assert all("closeness" in t.fitness.objectives for t in opt.history)


def test_best_is_the_best_raw_score_not_the_best_shared_fitness():
    opt = M2N2(2, seed=0, population=3, initial=[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    rows = [[1.0, 1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 1.0]]
    for cand, row in zip(opt.ask(3), rows):
        fit = Fitness.ok({}, sample_scores={"t": {str(j): v for j, v in enumerate(row)}})
        opt.tell([(cand, fit)])
    # z = [2, 2, 2, 1, 1]: shared fitness [1.5, 1.5, 2] favours member 2; raw [3, 3, 2]
    assert shared_fitness(opt.archive.scores).argmax() == 2
    assert opt.best().candidate.uid == opt.archive.members[0].uid
    np.testing.assert_array_equal(candidate_vector(opt.best().candidate), [0.0, 0.0])


def test_sample_scores_must_be_present_consistent_and_non_negative():
    opt = M2N2(6, seed=4)
    first, second, third = opt.ask(3)
    with pytest.raises(EvomergeError, match="per-sample scores"):
        opt.tell([(first, Fitness.ok({"acc": 1.0}))])
    opt.tell([(first, toy_fitness(TARGET))])
    missing = toy_fitness(TARGET)
    del missing.sample_scores["toy"]["d0"]
    with pytest.raises(EvomergeError, match="same doc ids"):
        opt.tell([(second, missing)])
    negative = toy_fitness(TARGET)
    negative.sample_scores["toy"]["d1"] = -1.0
    with pytest.raises(EvomergeError, match=">= 0"):
        opt.tell([(third, negative)])


@pytest.mark.parametrize("options, field", [
    ({"population": 1}, "population"),
    ({"alpha": -1.0}, "alpha"),
    ({"attraction": "yes"}, "attraction"),
    ({"popsize": 10}, "popsize"),
    ({"initial": [[1.0, 2.0]]}, "initial[0]"),
    ({"groups": ["a", "b"], "group_sizes": [4]}, "group_sizes"),
    ({"groups": ["a", "b"], "group_sizes": [4, 4], "noise_std": 0.1}, "noise_std"),
    ({"groups": ["a", "b"], "group_sizes": [4, 4], "gram": np.zeros((2, 2, 2))}, "gram"),
])
def test_bad_options_name_the_field(options, field):
    with pytest.raises(ConfigError, match=re.escape(f"'optimizer.options.{field}'")):
        M2N2(6, **options)


# ------------------------------------------------------------- coefficient form

def _coefficient_problem(seed=8):
    rng = np.random.default_rng(seed)
    sizes = [3, 5, 2, 4]
    basis = [[rng.normal(size=n) for _ in range(3)] for n in sizes]
    target = rng.uniform(0, 1, size=(4, 3))
    return sizes, basis, _expand(target, basis)


def test_coefficient_form_asks_recipes_and_learns_from_them():
    sizes, basis, target = _coefficient_problem()
    groups = [f"layers.{g}" for g in range(4)]
    opt = M2N2(12, seed=0, population=6, groups=groups, group_sizes=sizes)
    with pytest.raises(EvomergeError, match="Gram"):
        opt.ask(4)   # three one-hot starting members, then a child that needs the Gram
    opt = M2N2(12, seed=0, population=6, groups=groups, group_sizes=sizes)
    opt.set_gram(group_gram(basis))
    starts = opt.ask(3)
    assert [c.params["m2n2_coefficients"] for c in starts][1] == [[0.0, 1.0, 0.0]] * 4
    assert starts[0].params["groups"] == groups

    def fitness(cand):
        theta = _expand(np.asarray(cand.params["m2n2_coefficients"]), basis)
        closeness = np.exp(-np.abs(theta - target))
        return Fitness.ok({}, sample_scores={"t": {str(i): c for i, c in enumerate(closeness)}})

    opt.tell([(c, fitness(c)) for c in starts])
    start_best = opt.archive.scores.sum(axis=1).max()
    for _ in range(150):
        (cand,) = opt.ask(1)
        assert np.asarray(cand.params["m2n2_coefficients"]).shape == (4, 3)
        assert 0 <= cand.meta["m2n2"]["split_group"] <= 4
        opt.tell([(cand, fitness(cand))])
    # 14 datapoints; the best expert alone is far from the target mix
    assert opt.archive.scores.sum(axis=1).max() > start_best + 2.0


# -------------------------------------------------------------------- state

def _same_asks(a, b, n):
    return [c.to_dict() for c in a.ask(n)] == [c.to_dict() for c in b.ask(n)]


def test_state_round_trip_gives_identical_next_asks():
    opt = M2N2(6, seed=5, population=5)
    run_steps(opt, 30, batch=2)
    outstanding = opt.ask(3)            # a batch still out when the state is saved
    state = json.loads(json.dumps(opt.state_dict()))
    copy = M2N2.from_state_dict(state)
    assert _same_asks(opt, copy, 4)
    # the outstanding batch comes back to both; they stay in lockstep
    for o in (opt, copy):
        o.tell([(c, toy_fitness(candidate_vector(c))) for c in outstanding])
    assert _same_asks(opt, copy, 4)
    assert [m.uid for m in copy.archive.members] == [m.uid for m in opt.archive.members]
    np.testing.assert_array_equal(copy.archive.scores, opt.archive.scores)
    assert len(copy.history) == len(opt.history)


def test_coefficient_state_round_trip_keeps_gram_and_groups():
    sizes, basis, _ = _coefficient_problem()
    opt = M2N2(12, seed=1, groups=list("abcd"), group_sizes=sizes, gram=group_gram(basis))
    for cand in opt.ask(3):
        opt.tell([(cand, Fitness.ok({}, sample_scores={"t": {"0": float(len(cand.uid))}}))])
    copy = M2N2.from_state_dict(json.loads(json.dumps(opt.state_dict())))
    assert _same_asks(opt, copy, 5)
