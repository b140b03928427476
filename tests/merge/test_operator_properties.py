"""Algebraic properties every merge operator must have, checked with hypothesis.

Parameters are drawn from each operator's own ParamSpec bounds, so a new operator or
parameter is covered without editing this file.
"""

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from evomerge.errors import ConfigError
from evomerge.merge.operators import OPERATOR_LIST, OPERATORS
from evomerge.merge.operators.model_stock import interpolation_ratio
from evomerge.merge.operators.topk import keep_top_magnitudes, top_magnitude_mask

DELTA_OPS = [op for op in OPERATOR_LIST if op.kind == "delta"]
#: their weights are shares of an interpolation between directions (all zero means no
#: interpolation at all), not factors on each task vector
SHARE_WEIGHTED = {"nuslerp", "multislerp"}
WEIGHTED_DELTA_OPS = [op for op in DELTA_OPS if "weight" in {p.name for p in op.params}
                      and op.name not in SHARE_WEIGHTED]
#: an entry counts only above an absolute epsilon: scaling moves entries across it
ABSOLUTE_THRESHOLD = {"ram", "ramplus_tl"}
SCALE_EQUIVARIANT_OPS = [op for op in DELTA_OPS if op.name not in ABSOLUTE_THRESHOLD]
SPARSIFYING_OPS = [op for op in DELTA_OPS if "density" in {p.name for p in op.params}]
RANDOM_OPS = [op for op in OPERATOR_LIST if op.random]
SHAPES = [(7,), (6, 5), (3, 4, 2)]


def ids(ops):
    return [op.name for op in ops]


@st.composite
def tensors_for(draw, op, n_models=None):
    n = n_models or draw(st.integers(op.min_models, op.max_models or 3))
    shape = draw(st.sampled_from(SHAPES))
    seed = draw(st.integers(0, 2**31))
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) for _ in range(n)]


def number(spec):
    low = -2.0 if spec.low is None else spec.low
    high = 2.0 if spec.high is None else spec.high
    if spec.integer:
        return st.integers(int(low), int(high) + 3)
    if spec.name == "epsilon":  # keep density +/- epsilon inside (0, 1) most of the time
        high = 0.2
    # three decimals: no weights so small that float32 products underflow (a weight of
    # 1e-45 says nothing about merging)
    return st.floats(low, high, allow_nan=False).map(lambda v: round(v, 3))


@st.composite
def params_for(draw, op, n_models, **fixed):
    """Valid parameters for ``op``, drawn from its ParamSpec bounds."""
    raw = {}
    for spec in op.params:
        if spec.name in fixed:
            continue
        value = st.booleans() if spec.is_flag else number(spec)
        raw[spec.name] = draw(st.lists(value, min_size=n_models, max_size=n_models)
                              if spec.per_model else value)
    raw.update(fixed)
    try:
        return op.resolve_params(raw, n_models)
    except ConfigError:  # a cross-parameter rule (DELLA's epsilon, linear's weight sum)
        assume(False)


def run(op, tensors, params, seed=0):
    generator = torch.Generator().manual_seed(seed) if op.random else None
    return op(tensors, params, generator=generator)


@pytest.mark.parametrize("op", OPERATOR_LIST, ids=ids(OPERATOR_LIST))
@given(data=st.data())
def test_inputs_are_never_modified_and_the_shape_is_kept(op, data):
    tensors = data.draw(tensors_for(op))
    params = data.draw(params_for(op, len(tensors)))
    before = [t.clone() for t in tensors]
    out = run(op, tensors, params)
    assert out.shape == tensors[0].shape and out.dtype == torch.float32
    assert all(torch.equal(a, b) for a, b in zip(before, tensors))


@pytest.mark.parametrize("op", WEIGHTED_DELTA_OPS, ids=ids(WEIGHTED_DELTA_OPS))
@given(data=st.data())
def test_weight_zero_gives_the_base(op, data):
    tensors = data.draw(tensors_for(op))
    params = data.draw(params_for(op, len(tensors), weight=0.0))
    assert not run(op, tensors, params).any()


@pytest.mark.parametrize("op", WEIGHTED_DELTA_OPS, ids=ids(WEIGHTED_DELTA_OPS))
@given(data=st.data())
def test_one_model_merged_alone_gives_itself(op, data):
    tensors = data.draw(tensors_for(op, n_models=1))
    fixed = {"weight": 1.0, "lambda": 1.0}
    if "density" in {p.name for p in op.params}:
        fixed["density"] = 1.0
    params = data.draw(params_for(op, 1, **fixed))
    assert torch.equal(run(op, tensors, params), tensors[0])


@pytest.mark.parametrize("op", SPARSIFYING_OPS, ids=ids(SPARSIFYING_OPS))
@given(data=st.data())
def test_density_one_keeps_every_delta(op, data):
    tensors = data.draw(tensors_for(op))
    params = data.draw(params_for(op, len(tensors), density=1.0))
    # with nothing dropped, only the combination rule is left: plain sum or TIES consensus
    consensus = op.name in ("ties", "dare_ties", "breadcrumbs_ties", "della")
    reference = OPERATORS.get("ties" if consensus else "task_arithmetic")
    same = {k: v for k, v in params.items() if k in {p.name for p in reference.params}}
    want = reference(tensors, reference.resolve_params(same, len(tensors)))
    torch.testing.assert_close(run(op, tensors, params), want, rtol=0, atol=0)


@given(data=st.data())
def test_slerp_endpoints_give_the_inputs(data):
    slerp = OPERATORS.get("slerp")
    a, b = data.draw(tensors_for(slerp))
    assert torch.equal(slerp([a, b], {"t": 0.0}), a)
    assert torch.equal(slerp([a, b], {"t": 1.0}), b)
    t = data.draw(st.floats(0, 1))
    torch.testing.assert_close(slerp([a, a], {"t": t}), a)  # one point: nowhere to go


@given(data=st.data())
def test_linear_and_model_stock_of_copies_give_the_copy(data):
    linear, stock = OPERATORS.get("linear"), OPERATORS.get("model_stock")
    (x,) = data.draw(tensors_for(linear, n_models=1))
    k = data.draw(st.integers(2, 4))
    weights = data.draw(st.lists(st.floats(0.1, 2), min_size=k, max_size=k))
    torch.testing.assert_close(linear([x] * k, {"weight": weights, "normalize": True}), x)
    filter_wise = data.draw(st.booleans())
    torch.testing.assert_close(stock([x] * k, {"filter_wise": filter_wise}), x)


@pytest.mark.parametrize("op", RANDOM_OPS, ids=ids(RANDOM_OPS))
@given(data=st.data(), seed=st.integers(0, 2**62))
def test_same_generator_seed_gives_bit_identical_output(op, data, seed):
    tensors = data.draw(tensors_for(op))
    params = data.draw(params_for(op, len(tensors)))
    assert torch.equal(run(op, tensors, params, seed), run(op, tensors, params, seed))


@pytest.mark.parametrize("op", RANDOM_OPS, ids=ids(RANDOM_OPS))
def test_different_seeds_draw_different_masks(op):
    tensors = [torch.randn(20, 10, generator=torch.Generator().manual_seed(i)) for i in (1, 2)]
    params = op.resolve_params({"weight": 1.0, "density": 0.5, "epsilon": 0.2}
                               if "epsilon" in {p.name for p in op.params}
                               else {"weight": 1.0, "density": 0.5}, 2)
    assert not torch.equal(run(op, tensors, params, 1), run(op, tensors, params, 2))


def nuslerp_cosines(tensors, params) -> torch.Tensor:
    """The cosines between the vectors nuslerp interpolates (rows, columns or whole)."""
    v0, v1 = tensors
    if params["nuslerp_flatten"]:
        v0, v1 = v0.reshape(-1), v1.reshape(-1)
    elif params["nuslerp_row_wise"]:
        v0, v1 = v0.transpose(0, -1), v1.transpose(0, -1)
    return torch.nn.functional.cosine_similarity(v0.double(), v1.double(), dim=-1)


@pytest.mark.parametrize("op", SCALE_EQUIVARIANT_OPS, ids=ids(SCALE_EQUIVARIANT_OPS))
@given(data=st.data(), scale=st.floats(0.1, 10))
def test_scaling_every_task_vector_scales_the_merged_delta(op, data, scale):
    # the property that lets LiNeS scale the merged delta instead of each task vector
    tensors = data.draw(tensors_for(op))
    params = data.draw(params_for(op, len(tensors)))
    if op.name == "model_stock":
        # near 1 + (k - 1) cos = 0 the ratio blows up and rounding with it: not a scale issue
        assume(interpolation_ratio(tensors, params["filter_wise"]).abs().max() < 10)
    if op.name == "nuslerp":
        # near opposite directions (t = 1/2 divides by cos(theta / 2) ~ 0) or at the
        # switch to the linear formula, float32 rounding decides: not a scale issue
        assume(nuslerp_cosines(tensors, params).abs().max() < 0.999)
    if op.name == "multislerp" and params.get("normalize_weights", True):
        # weights summing to almost 0 become huge once normalized (1.484 and -1.5 give
        # -93 and 94), and float32 rounding with them: not a scale issue
        weights = [float(w) for w in params["weight"]]
        assume(abs(sum(weights)) > 0.1 * sum(abs(w) for w in weights))
    scaled = run(op, [t * scale for t in tensors], params)
    torch.testing.assert_close(scaled, run(op, tensors, params) * scale,
                               rtol=1e-4, atol=1e-5 * scale)


# --- fast top-k against an exact sort ------------------------------------------------

def stable_top_mask(x, k):
    order = np.argsort(-x.abs().reshape(-1).numpy(), kind="stable")[:k]
    mask = np.zeros(x.numel(), dtype=bool)
    mask[order] = True
    return torch.from_numpy(mask).view(x.shape)


def adversarial(kind, n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g)
    if kind == "few values":  # heavy ties everywhere, including at the cut
        return torch.randint(-3, 4, (n,), generator=g).float()
    if kind == "mostly zeros":
        return x * (torch.rand(n, generator=g) < 0.1)
    if kind == "all zeros":
        return torch.zeros(n)
    if kind == "constant":
        return torch.full((n,), -0.5)
    if kind == "bf16 deltas":  # what task vectors between bf16 checkpoints look like
        return x.bfloat16().float() - torch.randn(n, generator=g).bfloat16().float()
    if kind == "sorted":
        return x.abs().sort().values
    return x


@given(n=st.one_of(st.integers(1, 300), st.integers(65_537, 200_000)),
       kind=st.sampled_from(["normal", "few values", "mostly zeros", "all zeros",
                             "constant", "bf16 deltas", "sorted"]),
       density=st.one_of(st.just(0.0), st.just(1.0), st.floats(0, 1)),
       seed=st.integers(0, 2**31))
def test_fast_top_k_equals_exact_sort_based_top_k(n, kind, density, seed):
    x = adversarial(kind, n, seed)
    k = int(density * n)
    want = stable_top_mask(x, k)
    assert torch.equal(top_magnitude_mask(x, k), want)
    assert torch.equal(keep_top_magnitudes(x, k), x * want)
