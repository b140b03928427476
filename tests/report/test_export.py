"""``evomerge export``: the chosen recipe as native or mergekit YAML, the model built with
its model card, the same tensors as the campaign's in-memory candidate and as mergekit's
build of the exported config; bad input exits 2 and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from report_support import REPORT_ACC, write_campaign
from safetensors.torch import load_file

from evomerge.campaign.choice import best_trials
from evomerge.cli import main
from evomerge.export.mergekit_yaml import mergekit_yaml
from evomerge.merge.live import LiveMerger


def _best(folder):
    return best_trials(folder.open_record().trials(), folder.campaign.objectives)


def _load_dir(path: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(path.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def test_native_and_mergekit_exports_of_the_best_and_the_kth(finished, tmp_path, capsys):
    best = _best(finished)
    assert main(["export", str(finished.out)]) == 0
    said = capsys.readouterr()
    header, recipe = _split_header(said.out)
    assert recipe == finished.trial_recipe(best[0]).to_yaml()
    assert best[0].candidate.uid in said.err
    # where it came from, as comments both formats ignore
    assert f"uid {best[0].candidate.uid}" in header and "config hash" in header
    assert best[0].fitness.settings_hash in header and "evomerge 0.1.0" in header
    out = tmp_path / "second.yml"
    assert main(["export", str(finished.out), "--rank", "2", "--format", "mergekit",
                 "-o", str(out)]) == 0
    assert _split_header(out.read_text())[1] == mergekit_yaml(finished.trial_recipe(best[1]))
    assert "format" not in yaml.safe_load(out.read_text())
    last = best[-1].candidate.uid
    assert main(["export", str(finished.out), "--uid", last]) == 0
    assert _split_header(capsys.readouterr().out)[1] == \
        finished.trial_recipe(best[-1]).to_yaml()


def _split_header(text: str) -> tuple[str, str]:
    """The comment lines an export starts with, and the recipe after them."""
    lines = text.splitlines(keepends=True)
    n = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    return "".join(lines[:n]), "".join(lines[n:])


def test_two_objectives_rank_the_pareto_front(two_objectives, capsys):
    front = _best(two_objectives)
    assert len(front) >= 2
    assert main(["export", str(two_objectives.out), "--rank", "2"]) == 0
    assert _split_header(capsys.readouterr().out)[1] == \
        two_objectives.trial_recipe(front[1]).to_yaml()
    _bad([two_objectives.out, "--rank", str(len(front) + 1)], capsys,
         f"the campaign has {len(front)} candidates on its Pareto front")


def test_materialized_model_is_the_campaigns_candidate(finished, tmp_path, capsys):
    best = _best(finished)[0]
    model_dir = tmp_path / "model"
    recipe_file = tmp_path / "best.yml"
    assert main(["export", str(finished.out), "--format", "mergekit", "-o", str(recipe_file),
                 "--materialize", str(model_dir)]) == 0
    written = _load_dir(model_dir)
    # the candidate as the campaign's workers built it: in memory, float32
    recipe = finished.trial_recipe(best)
    campaign = finished.campaign
    with LiveMerger(campaign.sources, base=campaign.base) as merger:
        model = merger.new_model()
        merger.build(recipe, model)
    in_memory = model.state_dict()
    assert set(written) <= set(in_memory)
    for name, tensor in written.items():
        # in memory the task vectors are computed once, on disk per tensor: the same
        # formula summed in another order, equal to float32 rounding (as in test_live)
        torch.testing.assert_close(tensor, in_memory[name], atol=1e-6, rtol=1e-6)
    names = sorted(p.name for p in model_dir.iterdir())
    assert {"README.md", "evomerge_recipe.yaml", "mergekit_config.yml", "config.json"} <= \
        set(names)
    card = (model_dir / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: transformers" in card
    # report scores: the campaign's recorded ones for the merge, every source scored here
    assert f"| this merge | {best.report['objectives']['score']:.4g} |" in card
    assert "the merge's as the campaign scored it, the sources' scored at export" in card
    for source in [campaign.base, *campaign.sources]:
        assert f"| `{source}`" in card
    assert f"uid `{best.candidate.uid}`" in card and "campaign `report-test`" in card
    assert "evomerge 0.1.0" in card


@pytest.mark.oracle
def test_mergekit_builds_the_exported_config_to_the_same_tensors(finished, tmp_path):
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    config = tmp_path / "mk.yml"
    model_dir = tmp_path / "model"
    assert main(["export", str(finished.out), "--format", "mergekit", "-o", str(config),
                 "--materialize", str(model_dir), "--no-scores"]) == 0
    run_merge(MergeConfiguration.model_validate(yaml.safe_load(config.read_text())),
              str(tmp_path / "mk"), options=MergeOptions(copy_tokenizer=False, quiet=True,
                                                         lazy_unpickle=False))
    ours, theirs = _load_dir(model_dir), _load_dir(tmp_path / "mk")
    assert set(ours) == set(theirs)
    for name in ours:
        torch.testing.assert_close(ours[name].float(), theirs[name].float(), rtol=0,
                                   atol=1e-6)


def test_a_candidate_without_report_scores_is_scored_for_its_card(finished, tmp_path):
    """The third best was not scored by the campaign (report.best = 2): export scores
    it, and every source, on the report tasks with lm-eval."""
    third = _best(finished)[2]
    assert third.report is None
    assert main(["export", str(finished.out), "--rank", "3",
                 "--materialize", str(tmp_path / "m")]) == 0
    card = (tmp_path / "m" / "README.md").read_text()
    section = card.split("On the report tasks")[1].split("## Campaign")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows[0] == f"| model | score | {REPORT_ACC} |"
    assert len(rows) == 1 + 4  # the merge, the base and both sources
    assert all(len(r.split("|")) == 5 for r in rows)


def _bad(args, capsys, message):
    assert main(["export", *map(str, args)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err


def test_bad_input_exits_2_and_writes_nothing(finished, models, task_dir, tmp_path, capsys):
    out, recipe = tmp_path / "model", tmp_path / "r.yaml"
    _bad([tmp_path / "nothing"], capsys, "not a campaign folder")
    _bad([finished.out, "--rank", "99", "-o", recipe], capsys, "must lie in [1, 9]")
    _bad([finished.out, "--rank", "0"], capsys, "--rank")
    _bad([finished.out, "--uid", "no-such-uid", "--materialize", out], capsys,
         "no trial of the campaign has this uid")
    failed = next(t for t in finished.open_record().trials() if t.state == "FAIL")
    _bad([finished.out, "--uid", failed.candidate.uid], capsys, "is FAIL")
    assert not recipe.exists() and not out.exists()

    assert main(["export", str(finished.out), "--materialize", str(out), "--no-scores"]) == 0
    assert capsys.readouterr().out == ""  # the recipe is in the folder, not printed
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    _bad([finished.out, "--rank", "2", "-o", recipe, "--materialize", out], capsys,
         "already holds a model")
    assert not recipe.exists()
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert main(["export", str(finished.out), "--rank", "2", "--materialize", str(out),
                 "--overwrite", "--no-scores"]) == 0
    assert _best(finished)[1].candidate.uid in (out / "README.md").read_text()


def test_a_campaign_with_no_finished_candidate_exits_2(models, task_dir, tmp_path, capsys):
    from evomerge.campaign.config import load_campaign
    from evomerge.campaign.folder import new_folder

    folder = new_folder(tmp_path / "out", load_campaign(
        write_campaign(tmp_path / "c.yaml", models, task_dir)), None)
    # killed while loading its models: the study does not exist yet
    _bad([folder.out], capsys, "no candidate with scores yet (0 trials")
    record = folder.open_record(create=True)
    record.start(folder.campaign.build_optimizer().ask(1)[0],
                 [g.name for g in folder.campaign.space.genes], None)
    _bad([folder.out, "-o", tmp_path / "r.yaml"], capsys,
         "no candidate with scores yet (1 trials, 0 finished")
    assert not (tmp_path / "r.yaml").exists()


def test_lines_recipes_are_refused_as_mergekit_with_the_reason(tmp_path, capsys, models,
                                                               task_dir):
    """A campaign over LiNeS exports natively; as mergekit it says what mergekit lacks."""
    from report_support import run_scripted

    path = write_campaign(tmp_path / "c.yaml", models, task_dir,
                          space=str(Path(__file__).resolve().parents[2] / "search_spaces"
                                    / "lines.yaml"), budget={"evaluations": 2})
    folder = run_scripted(path, tmp_path / "out", fail_at=None)
    _bad([folder.out, "--format", "mergekit"], capsys, "mergekit has no LiNeS")
    assert main(["export", str(folder.out)]) == 0
    assert "lines:" in capsys.readouterr().out


@pytest.mark.parametrize(("scale", "mergekit"), [(0.5, False), (1.0, True)])
def test_a_routed_recipe_materializes_with_its_card(finished, models, tmp_path, scale,
                                                    mergekit):
    """A data-flow candidate (a layer path) is built in memory and exported as a routed
    checkpoint; an unscaled path is a mergekit passthrough merge as well."""
    from dataclasses import replace

    from evomerge.errors import ConfigError
    from evomerge.export.campaign_export import (
        chosen_candidate,
        materialize,
        recipe_text,
    )
    from evomerge.export.scores import MERGE, report_scores
    from evomerge.merge.recipe import load_recipe_dict
    from evomerge.records import Candidate

    a, b = str(models["a"]), str(models["b"])
    routed = load_recipe_dict({"routing": {"embeddings": a, "path": [
        {"model": a, "layer": 0}, {"model": b, "layer": 1, "scale": scale},
        {"model": a, "layer": 1}]}})
    chosen = chosen_candidate(finished)
    trial = replace(chosen.trial, candidate=Candidate(recipe=routed.to_dict()))
    chosen = replace(chosen, trial=trial, recipe=finished.trial_recipe(trial))
    if mergekit:  # an unscaled path is a passthrough stack of the same layers
        passthrough = yaml.safe_load(recipe_text(routed, "mergekit"))
        assert passthrough["merge_method"] == "passthrough"
        assert [(s["sources"][0]["model"], s["sources"][0]["layer_range"])
                for s in passthrough["slices"]] == [(a, [0, 1]), (b, [1, 2]), (a, [1, 2])]
    else:
        with pytest.raises(ConfigError, match="mergekit has no layer routing"):
            recipe_text(routed, "mergekit")
    scores = None
    if not mergekit:  # the routed candidate in memory and its sources, scored by lm-eval
        scores = report_scores(finished.campaign, chosen.recipe)
        assert sorted(scores) == sorted([MERGE, a, b])
    written = materialize(chosen, tmp_path / "routed", scores=scores)
    assert written == "a routed model of 3 hops"
    card = (tmp_path / "routed" / "README.md").read_text()
    assert "routing the hidden state along a path of 3 layers" in card
    assert f"- `{b}`" in card
    assert ("On the report tasks: not scored." in card) == mergekit
    assert (tmp_path / "routed" / "mergekit_config.yml").is_file() == mergekit
    assert ("mergekit cannot express this recipe" in card) != mergekit
