"""``evomerge report``: a self-contained page of a finished, multi-objective, running or
empty campaign; its plots are real PNGs inlined, nothing on it reaches the network."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

import pytest
from report_support import FAILING_ERROR, REPORT_ACC, run_scripted, write_campaign

from evomerge.campaign.choice import best_trials
from evomerge.cli import main
from evomerge.merge.recipe import load_recipe_dict
from evomerge.report.coefficients import layer_coefficients

SECTIONS = ["summary", "best", "progress", "objectives", "pareto", "coefficients", "workers",
            "search-vs-test", "failures", "campaign"]


class Page(HTMLParser):
    """Sections by id with their text, images, and every external reference."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.images: dict[str, list[str]] = {}
        self.external: list[str] = []
        self._open: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._open = attrs["id"]
            self.sections[self._open] = []
            self.images[self._open] = []
        for key in ("src", "href"):
            if key in attrs and not attrs[key].startswith("data:"):
                self.external.append(attrs[key])
        if tag == "img" and self._open:
            self.images[self._open].append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "section":
            self._open = None

    def handle_data(self, data):
        if self._open:
            self.sections[self._open].append(data)

    def text(self, section: str) -> str:
        return " ".join(" ".join(self.sections[section]).split())


def _png_size(src: str) -> tuple[int, int]:
    data = base64.b64decode(src.removeprefix("data:image/png;base64,"))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _report(folder, tmp_path, capsys) -> Page:
    out = tmp_path / "page.html"
    assert main(["report", str(folder.out), "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    return Page(out.read_text())


def test_a_finished_campaign(finished, tmp_path, capsys):
    page = _report(finished, tmp_path, capsys)
    assert list(page.sections) == SECTIONS
    assert page.external == []  # opens offline: every image is inside the page
    for section in ("progress", "objectives", "coefficients", "workers"):
        (src,) = page.images[section]
        width, height = _png_size(src)
        assert width > 300 and height > 100
    assert page.images["pareto"] == []
    trials = finished.open_record().trials()
    best = best_trials(trials, finished.campaign.objectives)
    assert best[0].candidate.uid in page.text("best")
    assert "trials 10: 9 complete, 1 failed" in page.text("summary")
    failed = [t for t in trials if t.state == "FAIL"]
    assert len(failed) == 1
    assert f"trial {failed[0].number}" in page.text("failures")
    assert FAILING_ERROR in page.text("failures")
    # the two best were scored on the report tasks; the rest say so
    versus = page.text("search-vs-test")
    for t in best[:2]:
        assert f"{t.report['objectives'][REPORT_ACC]:.4g}" in versus
    assert versus.count("not scored") == 3  # ranks 3 to 5
    assert "format: evomerge/campaign-v1" in page.text("campaign")
    # task arithmetic's lambda is 1 over the whole merge: named, not drawn
    assert "lambda = 1 everywhere" in page.text("coefficients")
    assert "scripted" in page.text("workers")


def test_two_objectives_show_their_pareto_front(two_objectives, tmp_path, capsys):
    page = _report(two_objectives, tmp_path, capsys)
    (src,) = page.images["pareto"]
    assert _png_size(src)[0] > 300
    trials = two_objectives.open_record().trials()
    front = best_trials(trials, two_objectives.campaign.objectives)
    text = page.text("pareto")
    on_front = [t.candidate.uid for t in trials if t.candidate.uid in text]
    assert sorted(on_front) == sorted(t.candidate.uid for t in front)


def test_a_campaign_still_running(models, task_dir, tmp_path, capsys):
    """A run killed (or still going) leaves RUNNING trials: the page shows what finished."""
    folder = run_scripted(write_campaign(tmp_path / "c.yaml", models, task_dir,
                                         budget={"evaluations": 4}), tmp_path / "out")
    record = folder.open_record()
    candidate = folder.campaign.build_optimizer().ask(1)[0]
    record.start(candidate, [g.name for g in folder.campaign.space.genes], "f" * 16)
    page = _report(folder, tmp_path, capsys)
    assert "1 candidates running" in page.text("summary")
    assert len(page.images["progress"]) == 1


def test_a_campaign_with_no_finished_candidate(models, task_dir, tmp_path, capsys):
    from evomerge.campaign.config import load_campaign
    from evomerge.campaign.folder import new_folder

    folder = new_folder(tmp_path / "out", load_campaign(
        write_campaign(tmp_path / "c.yaml", models, task_dir)), None)
    # killed while loading its models: no study yet, still a page
    assert "trials 0:" in _report(folder, tmp_path, capsys).text("summary")
    record = folder.open_record(create=True)
    candidate = folder.campaign.build_optimizer().ask(1)[0]
    record.start(candidate, [g.name for g in folder.campaign.space.genes], None)
    page = _report(folder, tmp_path, capsys)
    assert list(page.sections) == SECTIONS
    assert "No candidate has finished with scores" in page.text("best")
    assert all(not images for images in page.images.values())


def test_report_of_a_folder_without_a_campaign_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a campaign folder" in err
    assert err.count("\n") == 1 and list(tmp_path.iterdir()) == []


def test_coefficients_resolve_gradients_and_filters_per_layer(models):
    recipe = load_recipe_dict({
        "merge_method": "ties", "base_model": str(models["base"]),
        "models": [{"model": str(models["a"]), "parameters": {
                       "weight": [{"filter": "self_attn", "value": [0.2, 1.0]},
                                  {"value": 0.6}],
                       "density": 0.5}},
                   {"model": str(models["b"]), "parameters": {"weight": 0.3,
                                                              "density": [0.1, 0.9]}}]})
    grid = layer_coefficients(recipe)
    assert grid.layers == 2
    weight, density = grid.values["weight"], grid.values["density"]
    # gradients interpolate in floating point: equal to a rounding
    assert weight[("expert_a", "attention")] == pytest.approx([0.2, 1.0])
    assert weight[("expert_a", "mlp")] == pytest.approx([0.6, 0.6])
    assert weight[("expert_b", "attention")] == pytest.approx([0.3, 0.3])
    assert density[("expert_b", "mlp")] == pytest.approx([0.1, 0.9])
    assert density[("expert_a", "norm")] == pytest.approx([0.5, 0.5])
    assert not any(source == "base" for source, _ in weight)  # the base has no weight


def test_page_text_is_escaped(finished, tmp_path):
    """A traceback's ``<module>`` is shown as text, never read as markup."""
    page = tmp_path / "p.html"
    assert main(["report", str(finished.out), "-o", str(page)]) == 0
    text = page.read_text()
    assert "in &lt;module&gt;" in text and "<module>" not in text


def test_a_routed_recipe_draws_its_layer_path():
    from evomerge.merge.routing import Routing
    from evomerge.report.plots import routing_plot

    routing = Routing.model_validate({"embeddings": "m/a", "path": [
        {"model": "m/a", "layer": 0}, {"model": "m/b", "layer": 1, "scale": 0.5},
        {"model": "m/a", "layer": 1}]})
    src = "data:image/png;base64," + base64.b64encode(routing_plot(routing)).decode()
    width, height = _png_size(src)
    assert width >= 600 and height >= 150
