"""Whole-tensor sums stay accurate on large tensors, where torch's CPU norms drift."""

import math

import pytest
import torch

from evomerge.merge.operators.random_drop import drop_random
from evomerge.merge.operators.reductions import gram, l1_norm
from evomerge.merge.operators.slerp import slerp_coefficients

#: large enough that torch's float32 ``vector_norm`` is off by about 1e-3 (L1)
N = 8_000_000


@pytest.fixture(scope="module")
def pair():
    g = torch.Generator().manual_seed(0)
    return torch.randn(N, generator=g), torch.randn(N, generator=g)


def test_l1_norm_matches_float64(pair):
    x = pair[0]
    exact = float(x.double().abs().sum())
    assert l1_norm(x) == pytest.approx(exact, rel=1e-6)
    assert l1_norm(x[:1000].view(10, 100)) == pytest.approx(float(x[:1000].double().abs().sum()),
                                                           rel=1e-6)
    assert l1_norm(torch.empty(0)) == 0.0


def test_gram_matches_float64(pair):
    a, b = pair
    exact = torch.stack([a, b]).double()
    exact = exact @ exact.T
    # each entry to 1e-6 of the norms' product: cosines are then right to 1e-6
    scale = exact.diagonal().sqrt()
    assert ((gram([a, b]) - exact).abs() <= 1e-6 * scale[:, None] * scale[None, :]).all()


def test_slerp_cosine_near_its_threshold_takes_the_right_branch(pair):
    """True cosine 0.9993: under the 0.9995 above which SLERP falls back to linear.
    Norms 0.02% low (float32 accumulation at this size) would push it over."""
    a, noise = pair
    noise = noise - (noise @ a) / (a @ a) * a  # orthogonal to a
    cos = 0.9993
    b = a * cos + noise * (math.sqrt(1 - cos**2) * a.norm() / noise.norm())
    a64, b64 = a.double(), b.double()
    true_cos = float(a64 @ b64 / (a64.norm() * b64.norm()))
    theta = math.acos(true_cos)
    expected = (math.sin(0.5 * theta) / math.sin(theta),) * 2
    assert slerp_coefficients(0.5, a, b) == pytest.approx(expected, rel=1e-6)


def test_dare_l1_rescale_is_exact_on_a_large_tensor(pair):
    tau = pair[0]
    kept = drop_random(tau, 0.3, torch.Generator().manual_seed(1), rescale="l1")
    survivors = kept.flat.double()
    expected = float(tau.double().abs().sum()) / float(survivors.abs().sum())
    assert kept.scale == pytest.approx(expected, rel=1e-6)
