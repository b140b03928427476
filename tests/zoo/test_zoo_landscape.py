import pytest

from evomerge.zoo.landscape import Point, measure, pareto_front, render, summary

LIMIT = 16


@pytest.fixture(scope="module")
def landscape(tiny_zoo):
    return measure(tiny_zoo, levels=(0.0, 1.0), limit=LIMIT)


def test_grid_corners_are_the_base_and_the_experts(landscape):
    assert len(landscape.grid) == 2 ** len(landscape.skills)
    by_weights = {tuple(p.weights.values()): p for p in landscape.grid}
    assert by_weights[(0.0,) * len(landscape.skills)].scores == landscape.base.scores
    for i, skill in enumerate(landscape.skills):
        one_hot = tuple(1.0 if j == i else 0.0 for j in range(len(landscape.skills)))
        assert by_weights[one_hot].scores == landscape.experts[skill].scores


def test_summary_margins_and_front_are_consistent(landscape):
    s = summary(landscape)["acc"]
    best = s["best_merge"]["average"]
    assert best >= max(s["experts"].values()) and best >= s["base"]
    assert s["margins"]["vs_base"] == pytest.approx(best - s["base"])
    assert s["margins"]["vs_best_expert"] == pytest.approx(best - max(s["experts"].values()))
    assert 1 <= s["pareto_front_size"] <= s["grid_size"]
    assert set(s["targets"]["foreign_add"]) == {
        "base", "expert_read", "expert_add", "best_merge", "best_grid_for_target"}
    text = render(landscape)
    assert "best merge" in text and "foreign_add" in text and "Pareto front" in text


def test_pareto_front_keeps_exactly_the_undominated_points():
    def pt(name, x, y):
        return Point(name, {}, {"acc": {"x": x, "y": y}})

    points = [pt("a", 1, 0), pt("b", 0, 1), pt("c", 0.5, 0.5), pt("d", 0.4, 0.4),
              pt("e", 0.5, 0.5)]
    assert [p.name for p in pareto_front(points, "acc", ["x", "y"])] == ["a", "b", "c", "e"]
