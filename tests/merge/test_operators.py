"""Merge operators: hand-computed cases, parameter validation, seeding, and mergekit as oracle.

mergekit is imported inside the oracle tests only; it is never a dependency of the
package.
"""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch

from evomerge.errors import ConfigError, UnknownNameError
from evomerge.merge.operators import OPERATOR_LIST, OPERATORS, lines_scale, tensor_generator
from evomerge.merge.operators.random_drop import KEEP_LEVELS, drop_by_rank, drop_random
from evomerge.merge.operators.sparse import trim_magnitude, trim_outliers
from evomerge.merge.operators.topk import _sample_positions, _sample_size, top_magnitude_mask


def merge(method, tensors, seed=0, **params):
    op = OPERATORS.get(method)
    resolved = op.resolve_params(params, len(tensors))
    generator = torch.Generator().manual_seed(seed) if op.random else None
    return op(tensors, resolved, generator=generator)


def randn(*shape, seed=0, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


# --- registry and parameters -------------------------------------------------------

def test_registry_lists_every_method_once_and_suggests_on_typos():
    assert set(OPERATORS.names()) == {
        "linear", "task_arithmetic", "ties", "dare_linear", "dare_ties", "breadcrumbs",
        "breadcrumbs_ties", "della", "della_linear", "slerp", "model_stock", "passthrough",
        "nuslerp", "multislerp", "karcher", "sce", "nearswap", "arcee_fusion", "ram",
        "ramplus_tl"}
    assert len(OPERATOR_LIST) == len(OPERATORS.names())
    with pytest.raises(UnknownNameError, match="did you mean 'ties'"):
        OPERATORS.get("tie")


def test_defaults_follow_mergekit_per_method():
    def default(method, name):
        return OPERATORS.get(method).param(name).default
    assert [default(m, "normalize") for m in ("ties", "dare_ties", "della", "task_arithmetic",
                                              "della_linear", "breadcrumbs", "linear")] \
        == [True, False, True, False, False, False, True]
    assert [default(m, "rescale") for m in ("ties", "dare_ties", "dare_linear", "della",
                                            "breadcrumbs")] == [False, True, True, True, False]
    assert default("breadcrumbs", "gamma") == 0.01
    assert default("della", "epsilon") == 0.15
    assert default("ties", "density") == 1.0 and default("ties", "lambda") == 1.0


def test_only_the_paper_rescale_is_unknown_to_mergekit():
    from mergekit.merge_methods import get

    for op in OPERATOR_LIST:
        theirs = {p.name for p in get(op.name).spec.parameters}
        ours = {p.name for p in op.params if p.mergekit}
        assert ours <= theirs, op.name
        assert {p.name for p in op.params if not p.mergekit} <= {"rescale_by_probability"}


def test_resolve_params_fills_defaults_and_broadcasts_per_model_values():
    p = OPERATORS.get("dare_ties").resolve_params({"weight": 0.5, "density": [0.2, 1]}, 2)
    assert p["weight"] == [0.5, 0.5] and p["density"] == [0.2, 1.0]
    assert p["rescale"] is True and p["normalize"] is False and p["lambda"] == 1.0


@pytest.mark.parametrize("params, field, rule", [
    ({"weight": 1.0, "densty": 0.5}, "densty", "did you mean 'density'"),
    ({"weight": 1.0, "density": 1.5}, "density[0]", r"must lie in \[0.0, 1.0\]"),
    ({"weight": [1.0, 2.0, 3.0]}, "weight", "one value per model"),
    ({"density": 0.5}, "weight", "requires this parameter"),
    ({"weight": [1.0, None]}, "weight[1]", "needs a value for every model"),
    ({"weight": 1.0, "normalize": "yes"}, "normalize", "true or false"),
    ({"weight": "heavy"}, "weight[0]", "must be a number"),
])
def test_bad_parameters_name_field_value_and_rule(params, field, rule):
    with pytest.raises(ConfigError, match=rule) as info:
        OPERATORS.get("ties").resolve_params(params, 2)
    assert info.value.field == field


def test_model_counts_and_cross_parameter_rules_are_checked():
    with pytest.raises(ConfigError, match="exactly 2"):
        OPERATORS.get("slerp").resolve_params({"t": 0.5}, 3)
    with pytest.raises(ConfigError, match="at least 2"):
        OPERATORS.get("model_stock").resolve_params({}, 1)
    with pytest.raises(ConfigError, match="strictly inside") as info:
        OPERATORS.get("della").resolve_params({"weight": 1, "density": 0.9, "epsilon": 0.1}, 1)
    assert info.value.field == "epsilon[0]"
    # density 1 keeps everything: epsilon is irrelevant, as in mergekit
    OPERATORS.get("della").resolve_params({"weight": 1, "density": 1.0, "epsilon": 0.5}, 1)
    with pytest.raises(ConfigError, match="must not sum to zero"):
        OPERATORS.get("linear").resolve_params({"weight": [1.0, -1.0]}, 2)


def test_random_operators_refuse_to_run_without_a_generator():
    op = OPERATORS.get("dare_ties")
    with pytest.raises(ValueError, match="torch.Generator"):
        op([randn(4)], op.resolve_params({"weight": 1.0, "density": 0.5}, 1))


# --- hand-computed TIES --------------------------------------------------------------

def ties_inputs():
    # density 0.5 of 6 entries keeps k = 3 per task vector:
    #   tau1 keeps 4, 3, 2           -> [ 4,  0,  3, 0, 2, 0]
    #   tau2 keeps 5, 3, -2          -> [-2,  5,  0, 0, 3, 0]
    #   tau3 keeps -6, -3, 2         -> [ 0, -3, -6, 2, 0, 0]
    tau1 = torch.tensor([4.0, -1.0, 3.0, 0.5, 2.0, 0.0])
    tau2 = torch.tensor([-2.0, 5.0, -1.0, 1.0, 3.0, 0.1])
    tau3 = torch.tensor([1.0, -3.0, -6.0, 2.0, -0.5, 0.0])
    return [tau1, tau2, tau3], [1.0, 0.5, 2.0]


def test_ties_matches_hand_computation():
    taus, weights = ties_inputs()
    # weighted: d1 = [4, 0, 3, 0, 2, 0], d2 = [-1, 2.5, 0, 0, 1.5, 0], d3 = [0, -6, -12, 4, 0, 0]
    # sums:     [3, -3.5, -9, 4, 3.5, 0]  -> majority signs [+, -, -, +, +, +]
    # agreeing: 0: d1 | 1: d3 | 2: d3 | 3: d3 | 4: d1, d2 | 5: nobody (all zero)
    # sums of agreeing d:        [4, -6, -12, 4, 3.5, 0]
    # their weights (0 -> 1):    [1,  2,   2, 2, 1.5, 1]
    got = merge("ties", taus, weight=weights, density=0.5)
    torch.testing.assert_close(got, torch.tensor([4.0, -3.0, -6.0, 2.0, 3.5 / 1.5, 0.0]))
    got = merge("ties", taus, weight=weights, density=0.5, normalize=False, **{"lambda": 2.0})
    torch.testing.assert_close(got, torch.tensor([8.0, -12.0, -24.0, 8.0, 7.0, 0.0]))


def test_ties_sign_sum_of_exactly_zero_elects_plus():
    # 1 + (-1) = 0: mergekit's rule (sum >= 0) elects +, so only the positive entry counts
    got = merge("ties", [torch.tensor([1.0]), torch.tensor([-1.0])], weight=1.0)
    assert got.tolist() == [1.0]


def test_ties_with_negative_weight_elects_on_weighted_signs():
    # d = [1 * 2, -1 * 3] = [2, -3]: the sum -1 elects -, so the second model's entry wins,
    # divided by its (negative) weight: -3 / -1 = 3
    got = merge("ties", [torch.tensor([2.0]), torch.tensor([3.0])], weight=[1.0, -1.0])
    assert got.tolist() == [3.0]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_election_without_normalize_sums_exactly_the_agreeing_terms(n_models, seed):
    from evomerge.merge.operators.combine import sign_consensus
    from evomerge.merge.operators.sparse import dense

    g = torch.Generator().manual_seed(seed)
    # small integers: zeros, exact cancellations and ties between models are common
    values = torch.randint(-3, 4, (n_models, 257), generator=g).float()
    weights = (torch.randint(-4, 5, (n_models,), generator=g).float() / 2).tolist()
    d = values * torch.tensor(weights)[:, None]
    majority = torch.where(d.sum(0) >= 0, 1.0, -1.0)
    want = (d * (torch.sign(d) == majority)).sum(0)
    got = sign_consensus([dense(v) for v in values], weights, normalize=False)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


# --- mergekit as oracle --------------------------------------------------------------

DETERMINISTIC_CASES = [
    ("task_arithmetic", {"weight": [0.3, -0.5, 0.9]}),
    ("task_arithmetic", {"weight": [0.3, 0.5, 0.9], "normalize": True, "lambda": 0.7}),
    ("ties", {"weight": [0.3, 0.5, 0.9], "density": [0.2, 0.5, 0.7]}),
    ("ties", {"weight": [0.3, -0.5, 0.9], "density": [0.1, 0.5, 0.9], "rescale": True,
              "lambda": 1.3}),
    ("ties", {"weight": [1.0, -1.0, 0.5], "density": 0.5, "normalize": False}),
    ("breadcrumbs", {"weight": [0.3, 0.5, 0.9], "density": [0.2, 0.5, 0.7],
                     "gamma": [0.0, 0.1, 0.4]}),
    ("breadcrumbs_ties", {"weight": [0.3, 0.5, 0.9], "density": 0.6, "gamma": 0.05,
                          "rescale": True, "normalize": True}),
    ("dare_ties", {"weight": [0.3, 0.5, 0.9], "density": 1.0}),
    ("dare_linear", {"weight": [0.3, 0.5, 0.9], "density": 1.0, "normalize": True}),
    ("della", {"weight": [0.3, 0.5, 0.9], "density": 1.0}),
    ("della_linear", {"weight": [0.3, 0.5, 0.9], "density": 1.0}),
    ("model_stock", {}),
    ("model_stock", {"filter_wise": True}),
]


@pytest.mark.oracle
@pytest.mark.parametrize("method, params", DETERMINISTIC_CASES)
def test_task_vector_methods_match_mergekit(method, params):
    from mergekit.merge_methods import merge_tensors

    base = randn(48, 40, seed=1)
    models = [base + randn(48, 40, seed=2 + i, scale=0.1) for i in range(3)]
    want = merge_tensors([base] + models, method, parameters=params, base_index=0)
    got = base + merge(method, [m - base for m in models], **params)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


@pytest.mark.oracle
@pytest.mark.parametrize("method, tensors, params", [
    ("linear", 3, {"weight": [0.2, 0.5, 0.3]}),
    ("linear", 3, {"weight": [0.2, -0.5, 0.3], "normalize": False}),
    ("slerp", 2, {"t": 0.0}), ("slerp", 2, {"t": 0.35}), ("slerp", 2, {"t": 1.0}),
    ("passthrough", 1, {"scale": [0.5]}),
])
def test_weight_methods_match_mergekit(method, tensors, params):
    from mergekit.merge_methods import merge_tensors

    inputs = [randn(30, 20, seed=i) for i in range(tensors)]
    base_index = 0 if method == "slerp" else None
    want = merge_tensors(inputs, method, parameters=params, base_index=base_index)
    torch.testing.assert_close(merge(method, inputs, **params), want, atol=1e-6, rtol=1e-5)


@pytest.mark.oracle
@pytest.mark.parametrize("cos, linear", [(0.9997, True), (0.999, False), (-0.9997, True)])
def test_slerp_falls_back_to_linear_above_mergekits_dot_threshold(cos, linear):
    from mergekit.merge_methods import merge_tensors

    # unit vectors at angle acos(cos): slerp and lerp differ by ~1e-4 here
    a = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    b = torch.tensor([cos, math.sqrt(1 - cos**2), 0.0], dtype=torch.float64)
    want = merge_tensors([a, b], "slerp", parameters={"t": 0.4}, base_index=0)
    got = merge("slerp", [a, b], t=0.4)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert torch.allclose(got, 0.6 * a + 0.4 * b, rtol=1e-12, atol=1e-12) == linear


@pytest.mark.oracle
@pytest.mark.parametrize("density", [0.0, 1e-4, 0.003, 0.3, 0.77, 1.0])
def test_magnitude_and_outlier_trims_match_mergekit_sparsify(density):
    from mergekit.sparsify import magnitude, magnitude_outliers

    tau = randn(70, 30, seed=5)
    torch.testing.assert_close(trim_magnitude(tau, density, False).materialize(),
                               magnitude(tau, density))
    torch.testing.assert_close(trim_outliers(tau, density, 0.05, False).materialize(),
                               magnitude_outliers(tau, density, gamma=0.05))


@pytest.mark.oracle
@pytest.mark.parametrize("sparsify", ["dare", "della"])
def test_l1_rescale_matches_mergekit_given_the_same_mask(sparsify):
    from mergekit.sparsify import RescaleNorm, rescaled_masked_tensor

    tau = randn(64, 50, seed=6)
    g = torch.Generator().manual_seed(0)
    if sparsify == "dare":
        kept = drop_random(tau, 0.3, g, rescale="l1").materialize()
    else:
        kept = drop_by_rank(tau, 0.4, 0.2, g, rescale="l1").materialize()
    mask = (kept != 0).float()
    torch.testing.assert_close(kept, rescaled_masked_tensor(tau, mask, RescaleNorm.l1))


def test_della_keeps_each_rank_at_its_stated_rate():
    # in rows of 5, rank r (smallest first) is kept with p = 0.5 - 0.3 + 0.6 * r / 4;
    # over 4000 rows a kept share has a standard error below 0.008, so 0.04 is 5 sigma,
    # and a rank share off by one column (r / 5) would miss the top rank by 0.12
    tau = randn(4000, 5, seed=7)
    kept = drop_by_rank(tau, 0.5, 0.3, torch.Generator().manual_seed(1), "none").materialize()
    order = tau.abs().argsort(dim=1)
    kept_by_rank = (kept != 0).gather(1, order).float().mean(dim=0)
    expected = 0.2 + 0.6 * torch.arange(5) / 4
    assert (kept_by_rank - expected).abs().max() < 0.04


# --- DARE ------------------------------------------------------------------------------

def test_dare_probability_rescale_preserves_the_expected_sum():
    # tau = ones(n): the rescaled sum is (number kept) / p with the count ~ Binomial(n, p),
    # so its standard deviation is sqrt(n (1 - p) / p) ~ 483 for n = 1e5, p = 0.3;
    # five of them bound one seeded draw with room to spare and fail a wrong rescale
    # (a 1 / (1 - p) or no rescale are off by 57% and 70%)
    n, p = 100_000, 0.3
    tau = torch.ones(n)
    kept = drop_random(tau, p, torch.Generator().manual_seed(3), "probability").materialize()
    assert abs(kept.sum().item() - n) < 5 * math.sqrt(n * (1 - p) / p)
    # the realised keep probability is the quantised one the rescale divides by
    level = round(p * KEEP_LEVELS)
    assert set(kept.unique().tolist()) <= {0.0, torch.tensor(KEEP_LEVELS / level).item()}


def test_dare_l1_rescale_preserves_the_l1_norm_exactly():
    tau = randn(200, 100, seed=8)
    kept = drop_random(tau, 0.2, torch.Generator().manual_seed(0), "l1").materialize()
    assert kept.abs().sum().item() == pytest.approx(tau.abs().sum().item(), rel=1e-5)
    assert (kept != 0).float().mean().item() == pytest.approx(0.2, abs=0.01)


# --- seeding and LiNeS -------------------------------------------------------------------

def test_tensor_generator_is_stable_across_processes():
    code = ("import torch; from evomerge.merge.operators import tensor_generator;"
            "print(torch.rand(4, generator=tensor_generator(11, 'model.norm.weight')).tolist())")
    # another process with another string-hash salt than this one draws the same numbers
    env = dict(os.environ, PYTHONHASHSEED="12345")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env=env).stdout
    here = torch.rand(4, generator=tensor_generator(11, "model.norm.weight")).tolist()
    assert there == f"{here}\n"
    other = torch.rand(4, generator=tensor_generator(11, "model.norm.bias")).tolist()
    assert other != here


def test_lines_scale_is_linear_in_depth():
    assert lines_scale(0, 10, alpha=0.3, beta=0.6) == 0.3
    assert lines_scale(9, 10, alpha=0.3, beta=0.6) == pytest.approx(0.9)
    assert lines_scale(3, 10, alpha=0.3, beta=0.6) == pytest.approx(0.3 + 0.6 * 3 / 9)
    assert lines_scale(None, 10, alpha=0.3, beta=0.6) == 0.3
    assert lines_scale(0, 1, alpha=0.3, beta=0.6) == 0.3
    with pytest.raises(ValueError):
        lines_scale(10, 10, alpha=0.3, beta=0.6)


# --- the bracketed top-k selection ------------------------------------------------------

def stable_top_mask(x, k):
    # exact reference: stable descending sort by magnitude, lower index first among ties
    order = np.argsort(-x.abs().reshape(-1).numpy(), kind="stable")[:k]
    mask = np.zeros(x.numel(), dtype=bool)
    mask[order] = True
    return torch.from_numpy(mask).view(x.shape)


def test_top_k_falls_back_to_exact_selection_when_the_sample_misses():
    # zero every sampled position: the sample brackets 0, the true threshold is far above
    n = 100_003
    x = randn(n, seed=9).abs() + 1.0
    x[_sample_positions(n, _sample_size(n))] = 0.0
    for k in (10, n // 2, n - 10):
        assert torch.equal(top_magnitude_mask(x, k), stable_top_mask(x, k))


def test_dtypes_float64_stays_float64_and_bf16_computes_in_float32():
    taus = [randn(8, 4, seed=i).double() for i in range(2)]
    assert merge("ties", taus, weight=1.0, density=0.5).dtype == torch.float64
    got = merge("ties", [t.bfloat16() for t in taus], weight=1.0, density=0.5)
    assert got.dtype == torch.float32
    want = merge("ties", [t.bfloat16().float() for t in taus], weight=1.0, density=0.5)
    assert torch.equal(got, want)


# --- the fused linear-combination path --------------------------------------------

@pytest.mark.parametrize("method, params", [
    ("linear", {"weight": [0.3, 1.2, 0.5]}),
    ("linear", {"weight": [0.3, 1.2, 0.5], "normalize": False}),
    ("linear", {"weight": [0.25, 0.75]}),  # coefficients sum to 1: one lerp
    ("task_arithmetic", {"weight": [0.7, -0.4], "lambda": 1.5}),
    ("task_arithmetic", {"weight": [1.0, 0.5], "normalize": True}),
    ("slerp", {"t": 0.3}),
])
def test_coefficients_reproduce_the_operator(method, params):
    """Where a method declares coefficients, sum_m c_m * t_m is its result: the engine's
    one-sweep path and the operator's own definition agree."""
    from evomerge.merge.operators.combine import linear_combination

    op = OPERATORS.get(method)
    n = 2 if method == "slerp" or len(params.get("weight", [0, 0])) == 2 else 3
    tensors = [randn(7, 5, seed=i) for i in range(n)]
    resolved = op.resolve_params(params, n)
    want = op(tensors, resolved)
    terms = list(zip(tensors, op.coefficients(tensors, resolved)))
    got = linear_combination(terms, torch.empty(7, 5))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_only_methods_that_are_linear_in_their_inputs_declare_coefficients():
    linear = {op.name for op in OPERATOR_LIST if op.coefficients is not None}
    assert linear == {"linear", "task_arithmetic", "slerp"}


def test_linear_combination_writes_in_place_and_skips_zero_terms():
    from evomerge.merge.operators.combine import linear_combination

    out = torch.full((3,), 9.0)
    a, b = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([float("nan")] * 3)
    assert linear_combination([(a, 2.0), (b, 0.0)], out) is out
    assert out.tolist() == [2.0, 4.0, 6.0]


@pytest.mark.parametrize("density", [0.5, 0.3, 0.0039, 0.999])
def test_dare_keeps_each_entry_at_the_quantised_rate(density):
    # 0.5 is decided by the first byte alone; the others also need second bytes
    n = 1 << 22
    level = round(density * KEEP_LEVELS)
    kept = drop_random(torch.ones(n), density, torch.Generator().manual_seed(1),
                       rescale="none").materialize()
    rate, p = (kept != 0).float().mean().item(), level / KEEP_LEVELS
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_dare_mask_made_a_step_at_a_time_is_the_whole_tensor_rule():
    # the mask is built a cache-sized step at a time, with the entries that need a second
    # byte settled step by step; it must equal the rule applied to the whole tensor at once
    from evomerge.merge.operators.random_drop import first_bytes, second_bytes
    from evomerge.merge.operators.reductions import CPU_STEP
    from evomerge.merge.operators.seeding import next_key

    n, density = 3 * CPU_STEP + 123, 0.3
    key = next_key(torch.Generator().manual_seed(5))
    # every entry's 16-bit uniform, second bytes included, compared with the level
    uniform16 = (first_bytes(key, n).long() << 8) | second_bytes(key, torch.arange(n))
    expected = uniform16 < round(density * KEEP_LEVELS)
    tau = randn(n, seed=9)
    kept = drop_random(tau, density, torch.Generator().manual_seed(5), "l1")
    assert torch.equal(kept.flat != 0, expected)
    assert torch.equal(kept.flat[expected], tau[expected])
    exact = tau.double().abs().sum() / tau[expected].double().abs().sum()
    assert kept.scale == pytest.approx(float(exact), rel=1e-6)


def test_long_dare_draws_split_into_parts_stay_seeded_and_uniform():
    from evomerge.merge.operators.random_drop import PARALLEL_WORDS, uniform_lanes

    numel = 4 * PARALLEL_WORDS + 5  # long enough to be drawn in parallel parts
    first = uniform_lanes(numel, torch.Generator().manual_seed(3))
    again = uniform_lanes(numel, torch.Generator().manual_seed(3))
    other = uniform_lanes(numel, torch.Generator().manual_seed(4))
    assert first.shape == (numel,) and torch.equal(first, again)
    assert not torch.equal(first, other)
    lanes = first.float()
    # byte lanes uniform over [0, 255]: mean 127.5, each half of the draw alike
    halves = lanes[: numel // 2], lanes[numel // 2:]
    for part in (lanes, *halves):
        assert abs(part.mean().item() - 127.5) < 1
        assert abs((part < 128).float().mean().item() - 0.5) < 0.002
    assert not torch.equal(halves[0][:1000], halves[1][:1000])


def test_dare_mask_is_the_same_in_another_process():
    code = ("import torch; from evomerge.merge.operators.random_drop import drop_random;"
            "x = drop_random(torch.ones(300_000), 0.3, torch.Generator().manual_seed(8),"
            " 'none').materialize();"
            "print(torch.nonzero(x).view(-1)[:50].tolist(), int((x != 0).sum()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    x = drop_random(torch.ones(300_000), 0.3, torch.Generator().manual_seed(8),
                    "none").materialize()
    assert out == f"{torch.nonzero(x).view(-1)[:50].tolist()} {int((x != 0).sum())}"
