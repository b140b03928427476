"""Properties of NuSLERP, Multi-SLERP, Karcher, SCE, NearSwap, Arcee Fusion and RAM that
say what each is for (the shared suite in test_operator_properties covers the rest)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evomerge.merge.operators import OPERATORS

SHAPES = [(7,), (6, 5), (3, 4, 2)]


@st.composite
def tensors(draw, n):
    shape = draw(st.sampled_from(SHAPES))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    return [torch.randn(shape, generator=g) for _ in range(n)]


def merge(name, inputs, **params):
    op = OPERATORS.get(name)
    return op(inputs, op.resolve_params(params, len(inputs)))


@given(pair=tensors(2), flatten=st.booleans(), row_wise=st.booleans())
def test_nuslerp_weights_pick_the_endpoints(pair, flatten, row_wise):
    a, b = pair
    options = {"nuslerp_flatten": flatten, "nuslerp_row_wise": row_wise}
    torch.testing.assert_close(merge("nuslerp", [a, b], weight=[1.0, 0.0], **options), a)
    torch.testing.assert_close(merge("nuslerp", [a, b], weight=[0.0, 1.0], **options), b)
    torch.testing.assert_close(merge("nuslerp", [a, a], weight=[0.3, 0.7], **options), a)


@given(pair=tensors(2))
def test_nuslerp_midpoint_keeps_the_norm_of_equal_norm_inputs(pair):
    a, b = pair
    b = b * (a.norm() / b.norm())
    mid = merge("nuslerp", [a, b], weight=[1.0, 1.0])
    torch.testing.assert_close(mid.norm(), a.norm())  # on the sphere, not through it


@given(xs=tensors(3), k=st.integers(1, 4))
def test_multislerp_and_karcher_of_copies_give_the_copy(xs, k):
    x = xs[0]
    torch.testing.assert_close(merge("multislerp", [x] * k, weight=[1.0] * k), x)
    torch.testing.assert_close(merge("karcher", [x] * k), x)


def test_multislerp_and_karcher_follow_the_arc():
    a, b = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 2.0])
    half = torch.tensor([2 ** 0.5, 2 ** 0.5])  # the arc's midpoint, at the inputs' norm
    torch.testing.assert_close(merge("multislerp", [a, b], weight=[1.0, 1.0]), half)
    torch.testing.assert_close(merge("karcher", [a, b]), half)


@given(xs=tensors(1))
def test_sce_of_one_model_gives_it(xs):
    torch.testing.assert_close(merge("sce", xs), xs[0])


@given(xs=tensors(3), share=st.floats(0.05, 0.95))
def test_sce_keeps_only_majority_signs_and_selected_entries(xs, share):
    merged = merge("sce", xs, select_topk=share)
    stacked = torch.stack(xs)
    elected = torch.where(stacked.sum(0) >= 0, 1.0, -1.0)
    # a merged entry is a weighted mean of agreeing values: its sign is the elected one
    assert ((merged == 0) | (torch.sign(merged) == elected)).all()
    assert (merged != 0).sum() <= int(share * merged.numel())


@given(pair=tensors(2), t=st.floats(0.0, 5.0))
def test_nearswap_moves_each_entry_between_base_and_other(pair, t):
    base, other = pair
    merged = merge("nearswap", [base, other], t=t)
    low, high = torch.minimum(base, other), torch.maximum(base, other)
    assert ((merged >= low - 1e-6) & (merged <= high + 1e-6)).all()
    assert torch.equal(merge("nearswap", [base, other], t=0.0), base)
    far = float((base - other).abs().max()) + 1
    torch.testing.assert_close(merge("nearswap", [base, other], t=far), other)


@given(pair=tensors(2))
def test_arcee_fusion_takes_each_entry_from_one_model(pair):
    base, other = pair
    merged = merge("arcee_fusion", [base, other])
    taken = torch.isclose(merged, other, rtol=1e-6, atol=1e-6)  # base + (other - base)
    assert ((merged == base) | taken).all()
    assert torch.equal(merge("arcee_fusion", [base, base]), base)


@settings(max_examples=50)
@given(xs=tensors(2), k=st.integers(1, 3))
def test_ram_keeps_unique_updates_and_averages_shared_ones(xs, k):
    tau, other = xs
    torch.testing.assert_close(merge("ram", [tau] * k), tau)  # shared by all: the mean
    left = torch.zeros_like(tau).reshape(-1)
    left[::2] = tau.reshape(-1)[::2]
    right = (tau.reshape(-1) - left)
    disjoint = [left.view(tau.shape), right.view(tau.shape)]
    torch.testing.assert_close(merge("ram", disjoint), tau)  # unique: kept whole


@given(xs=tensors(3))
def test_ramplus_without_boost_is_ram(xs):
    torch.testing.assert_close(merge("ramplus_tl", xs, r=0.0), merge("ram", xs))
    boosted = merge("ramplus_tl", xs, r=1.0, alpha=1.0)
    assert boosted.abs().sum() >= merge("ram", xs).abs().sum() - 1e-5


@pytest.mark.parametrize("value", [2.5, "ten"])
def test_karcher_iterations_must_be_whole_numbers(value):
    from evomerge.errors import ConfigError

    with pytest.raises(ConfigError, match="max_iter"):
        OPERATORS.get("karcher").resolve_params({"max_iter": value}, 2)


def test_karcher_iterations_are_no_gene():
    from evomerge.errors import ConfigError
    from evomerge.space import Space

    space = {"merge_method": "karcher", "models": {"sources": {"min": 2}},
             "genes": [{"param": "max_iter", "bounds": [1, 20]}]}
    with pytest.raises(ConfigError, match="takes whole numbers only; set it under 'fixed'"):
        Space.from_dict(space)
