"""The fast operators against their formulas (evomerge.merge.operators.reference), which
are evaluated on float64 copies of the inputs.

Sparsifiers keep exactly the entries the formula keeps. Whole operators agree within
float rounding (the fast ones sum in another order, in float32, with fused multiply-adds);
TIES-style sign elections are compared everywhere when the arithmetic is exact (task
vectors and weights on a grid of quarters, no rescale), and elsewhere only where the sign
sum is not within rounding of zero. Random methods are compared given the same masks: the
ones the fast sparsifier draws from the same seed.
"""

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from evomerge.errors import ConfigError
from evomerge.merge.operators import OPERATOR_LIST, reference
from evomerge.merge.operators.model_stock import interpolation_ratio
from evomerge.merge.operators.random_drop import drop_by_rank, drop_random
from evomerge.merge.operators.sparse import trim_magnitude, trim_outliers
from evomerge.merge.operators.topk import sorted_magnitudes

SHAPES = [(1,), (7,), (6, 5), (3, 4, 2), (2, 1)]


@st.composite
def grid_tensors(draw, n_models):
    """Tensors of quarters in [-1, 1]: products with weights of quarters and sums of a few
    of them are exact in float32, magnitudes repeat (ties at every cut) and sign sums
    are often exactly zero."""
    shape = draw(st.sampled_from(SHAPES))
    numel = math.prod(shape)
    entries = st.lists(st.integers(-4, 4), min_size=numel, max_size=numel)
    return [torch.tensor(draw(entries), dtype=torch.float32).view(shape) / 4
            for _ in range(n_models)]


@st.composite
def any_tensor(draw):
    """A normal tensor, or one with few distinct magnitudes (many ties)."""
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    x = torch.randn(draw(st.sampled_from(SHAPES + [(40, 30)])), generator=g)
    return torch.round(x * 2) / 2 if draw(st.booleans()) else x


def quarters(low, high):
    return st.integers(int(low * 4), int(high * 4)).map(lambda k: k / 4)


def value_for(spec, op):
    """A value of one parameter: grid weights; DARE densities on 2**-6 steps (its keep
    probability is quantised to 2**-16, the formula's is the density itself)."""
    if spec.is_flag:
        return st.booleans()
    if spec.name == "weight":
        return quarters(-2, 2)
    if spec.name == "density" and op.name.startswith("dare"):
        return st.integers(0, 64).map(lambda k: k / 64)
    if spec.name == "epsilon":
        return st.floats(0.0, 0.2)
    if spec.name == "scale":
        return quarters(-2, 2)
    low = -2.0 if spec.low is None else spec.low
    high = 2.0 if spec.high is None else spec.high
    return st.floats(low, high, allow_nan=False)


@st.composite
def params_for(draw, op, n_models):
    raw = {}
    for spec in op.params:
        value = value_for(spec, op)
        raw[spec.name] = draw(st.lists(value, min_size=n_models, max_size=n_models)
                              if spec.per_model else value)
    try:
        return op.resolve_params(raw, n_models)
    except ConfigError:  # a cross-parameter rule (DELLA's epsilon, linear's weight sum)
        assume(False)


def keep_masks(op, taus, params, seed):
    """The masks ``op`` draws from generator seed ``seed``, model after model."""
    if not op.random:
        return None
    g = torch.Generator().manual_seed(seed)
    masks = []
    for i, tau in enumerate(taus):
        if op.name.startswith("dare"):
            kept = drop_random(tau, params["density"][i], g, "none")
        else:
            kept = drop_by_rank(tau, params["density"][i], params["epsilon"][i], g, "none")
        masks.append(kept.materialize() != 0)
    return masks


def decided(op, taus, params, masks):
    """Entries whose TIES election the rounding cannot turn: all of them when the
    arithmetic is exact (grid values, no rescale), else those whose sign sum is farther
    than rounding from zero. None for methods without an election."""
    family = reference.FAMILY.get(op.name)
    if family is None or not family[1]:
        return None
    if not params.get("rescale", False):
        return torch.ones(taus[0].shape, dtype=torch.bool)
    deltas = reference.family_sparsified(op.name, [t.double() for t in taus], params, masks)
    d = torch.stack([w * x for w, x in zip(params["weight"], deltas)])
    return d.sum(0).abs() > 1e-5 * d.abs().sum(0)


# --- sparsifiers: exactly the formula's entries -----------------------------------------

@settings(deadline=None)
@given(tau=any_tensor(), density=st.floats(0, 1), gamma=st.floats(0, 1),
       remembered=st.booleans())
def test_trims_keep_exactly_the_formulas_entries(tau, density, gamma, remembered):
    order = sorted_magnitudes(tau) if remembered else None
    trimmed = trim_magnitude(tau, density, rescale=False, order=order).materialize()
    assert torch.equal(trimmed, tau * reference.top_k_mask(tau, density))
    kept = trim_outliers(tau, density, gamma, rescale=False, order=order).materialize()
    assert torch.equal(kept, tau * reference.outlier_mask(tau, density, gamma))
    rescaled = trim_magnitude(tau, density, rescale=True, order=order).materialize()
    want = reference.l1_rescaled(tau.double(),
                                 tau.double() * reference.top_k_mask(tau, density))
    torch.testing.assert_close(rescaled.double(), want, rtol=1e-6, atol=1e-6)


@settings(deadline=None)
@given(tau=any_tensor(), density=st.floats(0.05, 0.95), epsilon=st.floats(0, 0.04),
       rescale=st.sampled_from(["none", "l1", "probability"]), seed=st.integers(0, 2**62))
def test_random_sparsifiers_follow_the_formula_given_their_mask(tau, density, epsilon,
                                                                rescale, seed):
    dare_density = round(density * 64) / 64
    keep = drop_random(tau, dare_density, torch.Generator().manual_seed(seed),
                       "none").materialize() != 0
    got = drop_random(tau, dare_density, torch.Generator().manual_seed(seed), rescale)
    torch.testing.assert_close(got.materialize().double(),
                               reference.dare(tau.double(), keep, dare_density, rescale),
                               rtol=2e-6, atol=1e-6)
    keep = drop_by_rank(tau, density, epsilon, torch.Generator().manual_seed(seed),
                        "none").materialize() != 0
    got = drop_by_rank(tau, density, epsilon, torch.Generator().manual_seed(seed), rescale)
    torch.testing.assert_close(got.materialize().double(),
                               reference.della(tau.double(), keep, density, epsilon,
                                               rescale),
                               rtol=2e-6, atol=1e-6)


def test_magprune_probabilities_rank_within_rows_along_dim_1():
    tau = torch.tensor([[[0.3, -0.1], [0.2, 0.5], [-0.2, 0.0]]])  # dim 1 has 3 entries
    p = reference.magprune_probabilities(tau, 0.5, 0.2)
    # column 0 along dim 1: |0.3| > |0.2| = |-0.2| (tie: lower index ranks lower)
    assert p[0, :, 0].tolist() == pytest.approx([0.7, 0.3, 0.5])
    assert p[0, :, 1].tolist() == pytest.approx([0.5, 0.7, 0.3])


# --- whole operators -------------------------------------------------------------------

WITH_FAST_PATH = [op for op in OPERATOR_LIST if op.name in reference.METHODS]


@pytest.mark.parametrize("op", WITH_FAST_PATH, ids=[op.name for op in WITH_FAST_PATH])
@settings(deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**62))
def test_every_operator_equals_its_formula(op, data, seed):
    n_models = data.draw(st.integers(op.min_models, op.max_models or 3))
    taus = data.draw(grid_tensors(n_models))
    params = data.draw(params_for(op, n_models))
    if op.name == "model_stock":  # near 1 + (k - 1) cos = 0 the ratio, and rounding, blow up
        assume(interpolation_ratio(taus, params["filter_wise"]).abs().max() < 10)
    if op.name == "slerp":  # either side of the linear fallback's threshold
        a, b = (x.double().reshape(-1) for x in taus)
        cos = float(a @ b) / max(float(a.norm()), 1e-8) / max(float(b.norm()), 1e-8)
        assume(abs(abs(cos) - 0.9995) > 1e-4)
    masks = keep_masks(op, taus, params, seed)
    generator = torch.Generator().manual_seed(seed) if op.random else None
    fast = op(taus, params, generator=generator)
    want = reference.merge(op.name, [t.double() for t in taus], params, masks)
    compared = decided(op, taus, params, masks)
    if compared is not None:
        fast, want = fast[compared], want[compared]
    scale = max(1.0, float(want.abs().max())) if want.numel() else 1.0
    torch.testing.assert_close(fast.double(), want, rtol=1e-5, atol=1e-6 * scale)



CONSENSUS_OPS = [op for op in OPERATOR_LIST if reference.FAMILY.get(op.name, ("", False))[1]]


@pytest.mark.parametrize("op", CONSENSUS_OPS, ids=[op.name for op in CONSENSUS_OPS])
@settings(deadline=None)
@given(data=st.data(), weight=quarters(-2, 2), seed=st.integers(0, 2**62))
def test_an_exactly_cancelling_sign_sum_is_elected_as_the_formula_says(op, data, weight,
                                                                        seed):
    (tau,) = data.draw(grid_tensors(1))
    params = data.draw(params_for(op, 2))
    params.update(weight=[weight, weight], density=[1.0, 1.0])  # every entry sums to 0
    fast = op([tau, -tau], params, generator=torch.Generator().manual_seed(seed))
    want = reference.merge(op.name, [tau.double(), -tau.double()], params, [tau == tau] * 2)
    torch.testing.assert_close(fast.double(), want, rtol=1e-6, atol=1e-6)
