"""`evomerge space show` and `evomerge space decode` as a user runs them."""

import doctest
import importlib

import pytest
import yaml

from evomerge.cli import main
from evomerge.merge.recipe import load_recipe_dict
from evomerge.space import load_space
from space_support import SPACES


def test_show_without_models_prints_the_formula(capsys):
    assert main(["space", "show", str(SPACES / "ties_layerwise.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "method ties; models: base 'base', n sources (n >= 1); L layers"
    assert out[-1] == "dim = 2 x n x L/2"
    assert any(line.split()[:2] == ["density", "model,"] and "[0.1, 1] linear" in line
               for line in out)


def test_show_with_models_names_every_gene(tiny4, capsys):
    models = [str(tiny4[k]) for k in ("base", "a", "b")]
    args = ["space", "show", str(SPACES / "slerp_layerwise.yaml")]
    assert main(args + ["--models", models[0], "--models", models[1]]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"method slerp; 4 layers; base = {models[0]}; sources = {models[1]}"
    assert out[1].split() == ["#", "gene", "values"]
    assert out[2].split() == ["0", "t[layer", "0,", "attention]", "[0,", "1]", "linear"]
    assert out[-1] == "dim = 12" and len(out) == 2 + 12 + 1


def test_decode_prints_a_native_recipe_that_encodes_back(tiny4, tmp_path, capsys):
    models = [str(tiny4[k]) for k in ("base", "a", "b")]
    space_file = str(SPACES / "dare_ties_layerwise.yaml")
    x = [round(0.05 * i, 2) for i in range(16)]
    x[3] = 1.5
    argv = ["space", "decode", space_file, "--x", ",".join(map(str, x))]
    for m in models:
        argv += ["--models", m]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "clipped x[3] (density[a, layer 3]) from 1.5 to 1" in captured.err
    recipe = load_recipe_dict(yaml.safe_load(captured.out))
    assert captured.out.startswith("format: evomerge/recipe-v1\nmerge_method: dare_ties\n")
    bound = load_space(space_file).bind(models[0], models[1:])
    assert bound.encode(recipe) == pytest.approx(x[:3] + [1.0] + x[4:], abs=1e-12)


def test_decode_without_models_names_the_roles(capsys):
    assert main(["space", "decode", str(SPACES / "task_arithmetic.yaml"), "--x", "0.25 0.5 1"]) == 0
    recipe = yaml.safe_load(capsys.readouterr().out)
    assert recipe["base_model"] == "base"
    assert [(m["model"], m["parameters"]["weight"]) for m in recipe["models"]] == [
        ("source_1", 0.25), ("source_2", 0.5), ("source_3", 1.0)]


def test_cli_errors_exit_2_with_one_message(tmp_path, capsys):
    assert main(["space", "decode", str(SPACES / "ties_layerwise.yaml"), "--x", "0.5"]) == 2
    assert "give --models" in capsys.readouterr().err
    assert main(["space", "decode", str(SPACES / "lines.yaml"), "--x", "0.5,abc"]) == 2
    assert "must be numbers separated by commas or spaces" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("merge_method: ties\ngenes: [{param: density}]\n")
    assert main(["space", "show", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: field 'models.base' = None: method 'ties' needs "
                          "a base model")


MODULES = ["model", "space_checks", "transforms", "facts", "layout", "assemble", "bound",
           "show", "forms", "cli"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"evomerge.space.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
