"""The one Pareto-front implementation, on hand-made points."""

from __future__ import annotations

import numpy as np
import pytest

from evomerge.pareto import as_losses, dominance_matrix, non_dominated_mask, pareto_filter

MAX2 = ("maximize", "maximize")


def pairwise_front(losses: np.ndarray) -> np.ndarray:
    """The definition, spelled out: no other point is <= everywhere and < somewhere."""
    return np.array([
        not any(np.all(other <= point) and np.any(other < point)
                for j, other in enumerate(losses) if j != i)
        for i, point in enumerate(losses)
    ], dtype=bool)


def test_a_hand_made_front_of_two_minimised_objectives():
    points = [[1, 5], [2, 3], [3, 3], [4, 1], [2, 4], [5, 5]]
    assert non_dominated_mask(points).tolist() == [True, True, False, True, False, False]


def test_duplicates_on_the_front_are_all_kept_and_duplicates_behind_it_all_dropped():
    points = [[1, 2], [2, 1], [1, 2], [3, 3], [3, 3]]
    assert non_dominated_mask(points).tolist() == [True, True, True, False, False]


def test_a_tie_in_one_objective_is_decided_by_the_other():
    # same first value: the smaller second dominates; same second: the smaller first
    assert non_dominated_mask([[1, 2], [1, 3]]).tolist() == [True, False]
    assert non_dominated_mask([[2, 1], [3, 1]]).tolist() == [True, False]


def test_mixed_directions_turn_maximised_objectives_around():
    # (accuracy: maximise, loss: minimise)
    points = [[0.9, 0.5], [0.8, 0.3], [0.8, 0.5], [0.95, 0.6], [0.7, 0.3]]
    mask = non_dominated_mask(points, ["maximize", "minimize"])
    assert mask.tolist() == [True, True, False, True, False]
    # the same points read as both minimised give the mirror image
    assert non_dominated_mask(points).tolist() == [False, False, False, False, True]


def test_one_objective_keeps_every_point_tied_for_the_best():
    assert non_dominated_mask([[3.0], [1.0], [2.0], [1.0]]).tolist() == [False, True, False, True]
    assert non_dominated_mask([[3.0], [1.0], [3.0]], ["maximize"]).tolist() == [True, False, True]


def test_no_points_give_an_empty_front():
    assert non_dominated_mask([]).tolist() == []
    assert non_dominated_mask(np.zeros((0, 2)), MAX2).tolist() == []
    assert pareto_filter(np.zeros((0, 3))).shape == (0, 3)


def test_a_nan_never_dominates_and_is_never_dominated():
    points = [[np.nan, 0.0], [0.0, 0.0], [1.0, 1.0]]
    assert non_dominated_mask(points).tolist() == [True, True, False]
    assert dominance_matrix(np.array(points)).any(axis=0).tolist() == [False, False, True]


def test_tiny_differences_are_compared_exactly():
    # equal loss sums in floating point (1e17 + 1 == 1e17), yet the second dominates
    assert non_dominated_mask([[1e17, 1.0], [1e17, 0.0]]).tolist() == [False, True]


@pytest.mark.parametrize("shape", [(60, 2), (60, 3), (40, 4), (1, 3)])
def test_the_front_agrees_with_the_definition_and_the_dominance_matrix(shape):
    rng = np.random.default_rng(shape[0] * shape[1])
    points = np.round(rng.random(shape), 1)  # many ties and duplicates
    expected = pairwise_front(points)
    np.testing.assert_array_equal(non_dominated_mask(points), expected)
    np.testing.assert_array_equal(~dominance_matrix(points).any(axis=0), expected)
    directions = ["maximize", "minimize"] * (shape[1] // 2) + ["minimize"] * (shape[1] % 2)
    np.testing.assert_array_equal(non_dominated_mask(points, directions),
                                  pairwise_front(as_losses(points, directions)))


def test_dominance_is_strict_and_never_reflexive():
    d = dominance_matrix(np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 1.0]]))
    assert d.tolist() == [[False, False, True], [False, False, True], [False, False, False]]


def test_pareto_filter_keeps_rows_in_order_and_units():
    points = [[0.2, 0.9], [0.4, 0.4], [0.9, 0.2], [0.5, 0.5]]
    assert pareto_filter(points, MAX2).tolist() == [[0.2, 0.9], [0.9, 0.2], [0.5, 0.5]]


def test_directions_are_checked():
    with pytest.raises(ValueError, match="one direction per objective"):
        non_dominated_mask([[1, 2]], ["maximize"])
    with pytest.raises(ValueError, match="'up'"):
        as_losses([[1, 2]], ["up", "maximize"])
    with pytest.raises(ValueError, match=r"\(n, m\) array"):
        as_losses(np.zeros((2, 2, 2)))
