"""Native and mergekit YAML: import -> export -> import gives the same recipe."""

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from evomerge.errors import ConfigError
from evomerge.export.mergekit_yaml import from_mergekit, load_any_recipe, to_mergekit
from evomerge.merge.recipe import Recipe, load_recipe_dict

METHOD_PARAMS = {
    "linear": {"weight": (0, 1)},
    "task_arithmetic": {"weight": (-1, 2)},
    "ties": {"weight": (0, 1), "density": (0, 1)},
    "dare_ties": {"weight": (0, 1), "density": (0, 1)},
    "dare_linear": {"weight": (0, 1), "density": (0, 1)},
    "breadcrumbs": {"weight": (0, 1), "density": (0, 1), "gamma": (0, 0.5)},
    "breadcrumbs_ties": {"weight": (0, 1), "density": (0, 1), "gamma": (0, 0.5)},
    "della": {"weight": (0, 1), "density": (0.2, 0.8), "epsilon": (0, 0.1)},
    "della_linear": {"weight": (0, 1), "density": (0.2, 0.8), "epsilon": (0, 0.1)},
}


@st.composite
def mergekit_configs(draw):
    method = draw(st.sampled_from(sorted(METHOD_PARAMS)))
    models = []
    for name in ("a", "b"):
        params = {}
        for p, (lo, hi) in METHOD_PARAMS[method].items():
            value = draw(st.one_of(
                st.floats(lo, hi),
                st.lists(st.floats(lo, hi), min_size=2, max_size=4),
                st.just([{"filter": "self_attn", "value": lo}, {"value": hi}])))
            params[p] = value
        models.append({"model": name, "parameters": params})
    cfg = {"merge_method": method, "models": models}
    if method != "linear":
        cfg["base_model"] = "base"
    if draw(st.booleans()):
        cfg["dtype"] = draw(st.sampled_from(["float32", "bfloat16", "float16"]))
    return cfg


@given(mergekit_configs())
def test_mergekit_round_trip(cfg):
    recipe = from_mergekit(cfg)
    exported = to_mergekit(recipe)
    again = from_mergekit(exported)
    assert again == recipe
    assert again.content_hash() == recipe.content_hash()


@given(mergekit_configs(), st.integers(0, 2**31))
def test_native_round_trip(cfg, seed):
    recipe = load_recipe_dict({**cfg, "format": "evomerge/recipe-v1", "seed": seed})
    again = load_recipe_dict(yaml.safe_load(recipe.to_yaml()))
    assert again == recipe


def test_files_told_apart_by_format_marker(tmp_path):
    native = tmp_path / "n.yaml"
    native.write_text(yaml.safe_dump({"format": "evomerge/recipe-v1", "merge_method": "linear",
                                      "seed": 7, "models": [{"model": "a",
                                                             "parameters": {"weight": 1.0}}]}))
    assert load_any_recipe(native).seed == 7
    mk = tmp_path / "mk.yaml"
    mk.write_text(yaml.safe_dump({"merge_method": "linear", "seed": 7,
                                  "models": [{"model": "a", "parameters": {"weight": 1.0}}]}))
    with pytest.raises(ConfigError, match="'seed' belongs to native recipes"):
        load_any_recipe(mk)


def test_native_only_features_refuse_mergekit_export():
    recipe = load_recipe_dict({"merge_method": "task_arithmetic", "base_model": "base",
                               "lines": {"alpha": 0.5, "beta": 0.5},
                               "models": [{"model": "a", "parameters": {"weight": 1.0}}]})
    with pytest.raises(ConfigError, match="LiNeS"):
        to_mergekit(recipe)


def test_empty_modules_are_refused():
    with pytest.raises(ConfigError, match="modules"):
        from_mergekit({"merge_method": "linear", "modules": {}})


def test_content_hash_ignores_name_but_not_values():
    cfg = {"merge_method": "linear", "models": [{"model": "a", "parameters": {"weight": 1.0}}]}
    a = Recipe.model_validate(cfg)
    b = Recipe.model_validate({**cfg, "name": "other"})
    c = Recipe.model_validate({**cfg, "seed": 1})
    assert a.content_hash() == b.content_hash() != c.content_hash()
