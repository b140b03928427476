import json

import pytest
from click.testing import CliRunner

from evomerge.zoo.build import load_zoo
from evomerge.zoo.cli import zoo as zoo_cli
from evomerge.zoo.data import read_jsonl, write_jsonl
from evomerge.zoo.landscape import Point, measure, pareto_front, render, summary

LIMIT = 16
LEVELS = (0.0, 1.0)


@pytest.fixture(scope="module")
def landscape(tiny_zoo):
    return measure(tiny_zoo, levels=LEVELS, limit=LIMIT)


@pytest.fixture(scope="module")
def mirror_zoo(tiny_zoo, tmp_path_factory):
    """The tiny zoo's models with two-choice documents whose test split mirrors the search
    split: the same prompts and choices (right, wrong), labelled right on the search split
    and wrong on the test split. Any model's test ``acc`` is 1 minus its search ``acc``, so
    the test split on its own would choose the search split's worst merge."""
    root = tmp_path_factory.mktemp("mirror")
    data = {}
    for task in tiny_zoo.manifest["data"]:
        search, test = [], []
        for row in read_jsonl(tiny_zoo.split_file(task, "search"))[:LIMIT]:
            right = row["choices"][row["label"]]
            wrong = next(c for c in row["choices"] if c != right)
            search.append(row | {"choices": [right, wrong], "label": 0})
            test.append(row | {"choices": [right, wrong], "label": 1,
                               "doc_id": row["doc_id"].replace("-search-", "-test-")})
        data[task] = {}
        for split, rows in (("search", search), ("test", test)):
            write_jsonl(root / task / f"{split}.jsonl", rows)
            data[task][split] = f"{task}/{split}.jsonl"
    manifest = tiny_zoo.manifest | {
        "data": data,
        "models": {n: str(p) for n, p in tiny_zoo.models.items()},
        "experts": {s: str(p) for s, p in tiny_zoo.experts.items()}}
    (root / "zoo.json").write_text(json.dumps(manifest))
    return load_zoo(root)


@pytest.fixture(scope="module")
def mirror_search(mirror_zoo):
    return measure(mirror_zoo, split="search", levels=LEVELS)


@pytest.fixture(scope="module")
def mirror_test(mirror_zoo):
    return measure(mirror_zoo, split="test", levels=LEVELS)


def test_grid_corners_are_the_base_and_the_experts(landscape):
    assert len(landscape.grid) == 2 ** len(landscape.skills)
    by_weights = {tuple(p.weights.values()): p for p in landscape.grid}
    assert by_weights[(0.0,) * len(landscape.skills)].scores == landscape.base.scores
    for i, skill in enumerate(landscape.skills):
        one_hot = tuple(1.0 if j == i else 0.0 for j in range(len(landscape.skills)))
        assert by_weights[one_hot].scores == landscape.experts[skill].scores


def _avg(point, metric, tasks):
    return sum(point.scores[metric][t] for t in tasks) / len(tasks)


@pytest.mark.parametrize("metric", ["acc", "exact_match"])
def test_summary_reports_the_argmax_of_the_grid_and_its_margins(landscape, metric):
    skills = landscape.skills
    best = max(landscape.grid, key=lambda p: _avg(p, metric, skills))
    best_expert = max(_avg(p, metric, skills) for p in landscape.experts.values())
    s = summary(landscape)[metric]
    assert s["best_merge"]["weights"] == best.weights
    assert s["best_merge"]["average"] == pytest.approx(_avg(best, metric, skills))
    assert s["best_merge"]["scores"] == best.scores[metric]
    assert s["experts"] == {k: pytest.approx(_avg(p, metric, skills))
                            for k, p in landscape.experts.items()}
    assert s["base"] == pytest.approx(_avg(landscape.base, metric, skills))
    assert s["margins"] == pytest.approx({
        "vs_best_expert": _avg(best, metric, skills) - best_expert,
        "vs_base": _avg(best, metric, skills) - _avg(landscape.base, metric, skills)})
    target = s["targets"]["foreign_add"]
    assert target == pytest.approx({
        "base": landscape.base.scores[metric]["foreign_add"],
        "expert_read": landscape.experts["read"].scores[metric]["foreign_add"],
        "expert_add": landscape.experts["add"].scores[metric]["foreign_add"],
        "best_merge": best.scores[metric]["foreign_add"],
        "best_grid_for_target": max(p.scores[metric]["foreign_add"] for p in landscape.grid)})
    front = pareto_front(landscape.grid, metric, skills)
    assert s["pareto_front_size"] == len(front) and s["grid_size"] == len(landscape.grid)
    text = render(landscape)
    assert f"best merge ({metric}) {','.join(f'{w:g}' for w in best.weights.values())}" in text


def test_the_test_split_reports_the_merges_chosen_on_the_search_split(mirror_search,
                                                                      mirror_test):
    search, test = mirror_search, mirror_test
    skills = search.skills
    averages = [_avg(p, "acc", skills) for p in search.grid]
    # the grid is not flat, so the test split's own choice (the search split's worst merge)
    # differs from the search split's choice
    assert max(averages) > min(averages)
    chosen = search.best_merge("acc")
    reported = test.best_merge("acc")
    assert reported.weights == chosen.weights
    assert _avg(reported, "acc", skills) == pytest.approx(1 - _avg(chosen, "acc", skills))
    # the target's best grid point and the best expert are chosen on the search split too
    for t in search.targets:
        best_for_t = max(search.grid, key=lambda p, t=t: p.scores["acc"][t])
        assert test.target_report("acc")[t]["best_grid_for_target"] == pytest.approx(
            1 - best_for_t.scores["acc"][t])
    expert = max(search.experts, key=lambda s: _avg(search.experts[s], "acc", skills))
    assert test.best_expert("acc").name == f"expert_{expert}"
    assert test.margins("acc")["vs_best_expert"] == pytest.approx(
        _avg(search.experts[expert], "acc", skills) - _avg(chosen, "acc", skills))
    # exact_match's choice is the search split's as well
    assert test.best_merge("exact_match").weights == search.best_merge("exact_match").weights


def test_landscape_command_says_where_the_reported_merge_was_chosen(mirror_zoo, mirror_search,
                                                                    tmp_path):
    out = tmp_path / "test.json"
    shown = CliRunner().invoke(zoo_cli, ["landscape", str(mirror_zoo.root), "--split", "test",
                                         "--levels", "0,1", "--json", str(out)])
    assert shown.exit_code == 0, shown.output
    assert "chosen on the search split" in shown.output
    s = json.loads(out.read_text())
    assert (s["split"], s["chosen_on"]) == ("test", "search")
    assert s["acc"]["best_merge"]["weights"] == mirror_search.best_merge("acc").weights


def test_pareto_front_keeps_exactly_the_undominated_points():
    def pt(name, x, y):
        return Point(name, {}, {"acc": {"x": x, "y": y}})

    points = [pt("a", 1, 0), pt("b", 0, 1), pt("c", 0.5, 0.5), pt("d", 0.4, 0.4),
              pt("e", 0.5, 0.5)]
    assert [p.name for p in pareto_front(points, "acc", ["x", "y"])] == ["a", "b", "c", "e"]
