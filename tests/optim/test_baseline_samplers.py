"""Random and Sobol' search: seeded sequences that ignore results."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from optim_toys import MINIMIZE, TWO_OBJECTIVES, evaluate
from scipy.stats import qmc

from evomerge.optim.random_search import RandomSearch
from evomerge.optim.sobol import SobolSearch, sobol_points

BASELINES = [RandomSearch, SobolSearch]


def xs(candidates) -> list:
    return [c.x for c in candidates]


@pytest.mark.parametrize("cls", BASELINES)
def test_the_sequence_does_not_depend_on_batching_or_results(cls):
    whole = xs(cls(3, MINIMIZE, 4).ask(7))
    opt = cls(3, MINIMIZE, 4)
    first = opt.ask(2)
    opt.tell([(c, evaluate(c, MINIMIZE, 3)) for c in first])
    assert xs(first) + xs(opt.ask(1)) + xs(opt.ask(4)) == whole


@pytest.mark.parametrize("cls", BASELINES)
def test_seeds_give_different_sequences(cls):
    assert xs(cls(2, MINIMIZE, 0).ask(4)) != xs(cls(2, MINIMIZE, 1).ask(4))


@pytest.mark.parametrize("cls", BASELINES)
def test_state_is_the_number_asked(cls):
    opt = cls(2, TWO_OBJECTIVES, 3)
    opt.ask(5)
    state = opt.state_dict()
    assert state["asked"] == 5
    restored = cls(2, TWO_OBJECTIVES, 3)
    restored.load_state_dict(state)
    assert xs(restored.ask(3)) == xs(opt.ask(3))


def test_sobol_covers_the_box_more_evenly_than_random_points():
    n, dim = 64, 4
    sobol = np.array(xs(SobolSearch(dim, MINIMIZE, 0).ask(n)))
    uniform = np.array(xs(RandomSearch(dim, MINIMIZE, 0).ask(n)))
    assert qmc.discrepancy(sobol) < 0.5 * qmc.discrepancy(uniform)


def test_sobol_points_are_scipy_scrambled_sobol_points():
    expected = qmc.Sobol(d=3, scramble=True, rng=9).random(8)
    assert np.array_equal(np.array(xs(SobolSearch(3, MINIMIZE, 9).ask(8))), expected)


def test_sobol_points_continue_one_sequence_in_any_batches_without_warnings():
    expected = qmc.Sobol(d=3, scramble=True, rng=9).random(16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy warns on a first draw of 5 points
        parts = [sobol_points(3, 5, 9), sobol_points(3, 3, 9, skip=5),
                 sobol_points(3, 1, 9, skip=8), sobol_points(3, 7, 9, skip=9)]
    np.testing.assert_array_equal(np.vstack(parts), expected)
    assert sobol_points(3, 0, 9).shape == (0, 3)
