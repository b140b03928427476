"""The routing field of a recipe: its schema, the rules checked without models, and those
checked against the models' layer counts."""

import pytest
import yaml

from evomerge.errors import ConfigError
from evomerge.merge.recipe import load_recipe, load_recipe_dict
from evomerge.merge.routing import MERGED, check_layers


def _hops(*spec):
    return [{"model": m, "layer": layer, "scale": s} for m, layer, s in spec]


def _routing(path, **extra):
    return {"routing": {"embeddings": "m/a", "path": path, **extra}}


GOOD = _hops(("m/a", 0, 1.0), ("m/b", 1, 0.7), ("m/b", 1, 1.2), ("m/a", 2, 1.0))


def test_a_routing_only_recipe_round_trips_through_yaml_and_keeps_its_hash():
    recipe = load_recipe_dict(_routing(GOOD, max_length=6))
    again = load_recipe_dict(yaml.safe_load(recipe.to_yaml()))
    assert again.routing == recipe.routing
    assert again.content_hash() == recipe.content_hash()
    assert [(h.model, h.layer, h.scale) for h in again.routing.path] == [
        ("m/a", 0, 1.0), ("m/b", 1, 0.7), ("m/b", 1, 1.2), ("m/a", 2, 1.0)]
    assert again.routing.models() == ["m/a", "m/b"]
    assert not again.routing.plain()


def test_scales_change_the_hash():
    other = [dict(h) for h in GOOD]
    other[1]["scale"] = 0.8
    assert (load_recipe_dict(_routing(GOOD)).content_hash()
            != load_recipe_dict(_routing(other)).content_hash())


def test_a_weight_merge_and_a_routing_through_it_form_one_recipe():
    recipe = load_recipe_dict({
        "merge_method": "task_arithmetic", "base_model": "m/base",
        "models": [{"model": "m/a", "parameters": {"weight": 0.5}}],
        "routing": {"embeddings": MERGED, "path": _hops(
            (MERGED, 0, 1.0), ("m/b", 1, 0.9), (MERGED, 1, 1.0))}})
    assert recipe.routing.models() == [MERGED, "m/b"]
    assert recipe.source_models() == ["m/base", "m/a"]


@pytest.mark.parametrize("data, field, rule", [
    ({}, None, "give 'merge_method'"),
    (_routing(GOOD, max_length=3), "routing.path", "at most max_length = 3"),
    (_routing(_hops(("m/b", 0, 1.0), ("m/a", 2, 1.0))), "routing.path[0]",
     "must start with layer 0 of the embeddings model 'm/a'"),
    (_routing(_hops(("m/a", 1, 1.0), ("m/a", 2, 1.0))), "routing.path[0]",
     "must start with layer 0"),
    (_routing(_hops(("m/a", 0, float("inf")))), "routing.path[0].scale", "finite"),
    (_routing(_hops(("m/a", -1, 1.0))), "routing.path[0].layer", "greater than or equal"),
    (_routing([]), "routing.path", "at least 1"),
    (_routing(_hops((MERGED, 0, 1.0))) | {"routing": {"embeddings": MERGED,
                                                      "path": _hops((MERGED, 0, 1.0))}},
     "routing.embeddings", "has no 'merge_method'"),
    ({**_routing(GOOD), "models": [{"model": "m/a"}]}, None,
     "'models' belongs to a weight merge"),
    (_routing(GOOD, lenght=3), "routing.lenght", "did you mean 'max_length'"),
])
def test_invalid_routings_name_the_file_the_field_and_the_rule(tmp_path, data, field, rule):
    path = tmp_path / "routed.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert rule in message
    if field is not None:
        assert f"'{field}'" in message


def test_a_path_free_of_the_anchor_rule_may_start_and_end_anywhere():
    recipe = load_recipe_dict(_routing(_hops(("m/b", 2, 1.0), ("m/b", 0, 1.0)),
                                       anchored=False))
    check_layers(recipe.routing, {"m/a": 3, "m/b": 3})


@pytest.mark.parametrize("counts, field, rule", [
    ({"m/a": 3, "m/b": 1}, "routing.path[1].layer", "model 'm/b' has 1 layers (0 to 0)"),
    ({"m/a": 4, "m/b": 2}, "routing.path[3]",
     "must end with the last layer of the embeddings model 'm/a' (layer 3)"),
    ({"m/a": 3}, "routing.path[1].model", "not among the models given"),
])
def test_rules_that_need_the_models_name_the_hop(counts, field, rule):
    recipe = load_recipe_dict(_routing(GOOD))
    with pytest.raises(ConfigError) as info:
        check_layers(recipe.routing, counts)
    assert info.value.field == field
    assert rule in str(info.value)


def test_model_names_meet_whatever_their_spelling():
    recipe = load_recipe_dict(_routing(GOOD))
    check_layers(recipe.routing, {"m/a/": 3, "./m/b": 2})
