"""Bad recipes are refused with one message naming the file, the full field path, the
value and the rule, whichever rule they break and wherever in the recipe."""

import math

import pytest
import yaml

from evomerge.cli import main
from evomerge.errors import ConfigError
from evomerge.merge.recipe import Recipe, load_recipe


def _ties(**weight_b):
    return {"merge_method": "ties", "base_model": "base",
            "models": [{"model": "a", "parameters": {"weight": 1.0, "density": 0.5}},
                       {"model": "b", "parameters": {"density": 0.5, **weight_b}}]}


@pytest.mark.parametrize("cfg, field, value, rule", [
    (_ties(weight="heavy"), "models[1].parameters.weight", "'heavy'",
     "must be a number, true or false, a list of numbers"),
    (_ties(weight=[1.0, "x"]), "models[1].parameters.weight", "[1.0, 'x']",
     "must be a number, true or false"),
    (_ties(weight=math.nan), "models[1].parameters.weight", "nan", "not NaN"),
    (_ties(weight=[{"filter": "mlp", "value": math.nan}, {"value": 1}]),
     "models[1].parameters.weight", "nan", "not NaN"),
    (_ties(weight=1.0, density=[0.2, 1.5]), "models[1].parameters.density", "1.5",
     "must lie in [0.0, 1.0]"),
    ({**_ties(weight=1.0), "parameters": {"normalize": 1}}, "parameters.normalize", "1",
     "must be true or false"),
    ({**_ties(weight=1.0), "format": "evomerge/recipe-v1", "lines": {"alpha": math.nan}},
     "lines.alpha", "nan", "not NaN"),
    ({**_ties(weight=1.0), "dtype": "int8"}, "dtype", "'int8'", "'bfloat16'"),
    ({"merge_method": "passthrough", "slices": [
        {"sources": [{"model": "a", "layer_range": [0, 2]}]},
        {"sources": [{"model": "b", "layer_range": [3, 1]}]}]},
     "slices[1].sources[0].layer_range", "[3, 1]", "0 <= start < end"),
    ({"merge_method": "slerp", "base_model": "base", "parameters": {"t": 0.5},
      "models": [{"model": "a"}, {"model": "b"}]},
     "models", "['a', 'b']", "takes exactly 2 models, got 3"),
])
def test_message_names_file_field_value_and_rule(tmp_path, capsys, cfg, field, value, rule):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["merge", str(path), str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: field {field!r} = {value}: "), err
    assert rule in err
    assert len(err.splitlines()) == 1


def test_layer_range_past_the_model_names_the_slice(tiny_models, tmp_path, capsys):
    cfg = {"merge_method": "passthrough", "slices": [
        {"sources": [{"model": str(tiny_models["a"]), "layer_range": [0, 2]}]},
        {"sources": [{"model": str(tiny_models["b"]), "layer_range": [2, 5]}]}]}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["merge", str(path), str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "field 'slices[1].sources[0].layer_range' = [2, 5]" in err
    assert "has only 3 layers" in err and str(path) in err


def test_a_recipe_built_in_code_is_checked_the_same_way():
    with pytest.raises(ConfigError, match=r"'models\[1\].parameters.weight' = nan"):
        Recipe.model_validate(_ties(weight=math.nan))


def test_read_recipe_round_trips_through_its_yaml(tmp_path):
    cfg = _ties(weight=[{"filter": "self_attn", "value": [0.2, 0.8]}, {"value": 0.5}])
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(cfg))
    recipe = load_recipe(path)
    again = tmp_path / "again.yaml"
    again.write_text(recipe.to_yaml())
    assert load_recipe(again).content_hash() == recipe.content_hash()
    assert yaml.safe_load(recipe.to_yaml())["models"][1]["parameters"]["weight"] == \
        cfg["models"][1]["parameters"]["weight"]
