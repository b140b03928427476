"""decode and encode: clipping, ties, flags, partial groups, refusals; and a property
test that no point decodes to a recipe the engine refuses."""

import math

import pytest
from hypothesis import given, strategies as st

from evomerge.errors import ConfigError
from evomerge.merge.plan import plan_merge
from evomerge.records import Candidate
from evomerge.space import ModelFacts, Space, load_space
from space_support import SHIPPED, SPACES, bind_shipped, llama_tensor_names

NAMES = {n: llama_tensor_names(n) for n in (2, 4, 6)}


def _bind(data, n_layers=4, sources=("m/a", "m/b")):
    return Space.from_dict(data).bind("m/base", list(sources),
                                      facts=ModelFacts(NAMES[n_layers]))


def _ties(*genes, **fields):
    return {"merge_method": "ties", "models": {"base": "base"}, "genes": list(genes), **fields}


def _resolved(recipe, n_layers=4):
    """tensor -> resolved parameters, as the engine reads the recipe."""
    return {t.out_name: t.params for t in plan_merge(recipe, lambda m: NAMES[n_layers])}


def test_points_outside_the_box_are_clipped_and_recorded():
    bound = _bind(_ties({"param": "density", "per": ["model"], "bounds": [0.2, 0.8]}))
    recipe, clipped = bound.decode([-0.5, 1.25])
    assert [m.parameters["density"] for m in recipe.models] == [0.2, 0.8]
    assert [(c.index, c.gene, c.given, c.used) for c in clipped] == [
        (0, "density[a]", -0.5, 0.0), (1, "density[b]", 1.25, 1.0)]
    candidate = bound.decode_candidate(Candidate(x=[2.0, 0.5]))
    assert candidate.meta["clipped"] == [
        {"index": 0, "gene": "density[a]", "given": 2.0, "used": 1.0}]
    assert candidate.recipe["models"][1]["parameters"]["density"] == 0.5
    with pytest.raises(ConfigError, match=r"'x\[1\]' = nan: gene 'density\[b\]' needs a number"):
        bound.decode([0.5, math.nan])
    with pytest.raises(ConfigError, match="needs 2, one per gene"):
        bound.decode([0.5])
    import numpy as np  # optimizers hand over numpy arrays, float32 ones too

    models = bound.decode(np.array([0.25, 0.5], np.float32)).recipe.models
    assert models[0].parameters["density"] == pytest.approx(0.35)


def test_log_transform_spans_its_bounds_geometrically():
    bound = _bind(_ties({"param": "density", "bounds": [0.01, 1.0], "transform": "log"}))
    values = [bound.decode([u]).recipe.parameters["density"] for u in (0.0, 0.5, 1.0)]
    assert values[0] == 0.01 and values[2] == 1.0 and math.isclose(values[1], 0.1)
    assert bound.encode(bound.decode([0.3]).recipe) == pytest.approx([0.3], abs=1e-12)


def test_tied_entries_read_one_coordinate_through_their_own_bounds():
    bound = _bind(_ties({"param": "density", "per": ["model"], "bounds": [0.5, 1.0]},
                        {"param": "weight", "per": ["model"], "bounds": [0.0, 2.0],
                         "tie": "density"}))
    assert bound.dim == 2
    recipe, _ = bound.decode([0.5, 1.0])
    assert [m.parameters for m in recipe.models] == [
        {"weight": 1.0, "density": 0.75}, {"weight": 2.0, "density": 1.0}]
    assert bound.encode(recipe) == [0.5, 1.0]


def test_a_flag_is_a_choice_of_false_or_true():
    bound = _bind(_ties({"param": "normalize"}, fixed={"weight": 1.0}))
    assert [g.choices for g in bound.genes] == [(False, True)]
    assert bound.decode([0.2]).recipe.parameters == {"normalize": False, "weight": 1.0}
    assert bound.decode([0.7]).recipe.parameters["normalize"] is True
    assert bound.encode(bound.decode([0.9]).recipe) == [0.75]


def test_groups_without_rest_fall_back_to_the_fixed_value():
    bound = _bind(_ties({"param": "density", "per": ["group"], "groups": ["mlp"]},
                        fixed={"density": 0.3, "weight": 1.0}))
    recipe, _ = bound.decode([0.9])
    params = _resolved(recipe)
    assert params["model.layers.1.mlp.up_proj.weight"]["density"] == [0.9, 0.9]
    assert params["model.layers.1.self_attn.q_proj.weight"]["density"] == [0.3, 0.3]
    assert params["lm_head.weight"]["density"] == [0.3, 0.3]
    assert bound.encode(recipe) == [0.9]


def test_per_layer_and_group_values_reach_exactly_their_tensors():
    bound = _bind(_ties({"param": "density", "per": ["model", "layer", "group"], "block": 2,
                         "groups": ["attention", "mlp", "rest"]},
                        fixed={"weight": 1.0}), n_layers=6)
    x = [i / (bound.dim + 1) for i in range(bound.dim)]
    recipe, _ = bound.decode(x)
    expect = {g.name: v for g, v in zip(bound.genes, x)}
    params = _resolved(recipe, 6)
    for layer in range(6):
        block = f"layers {layer // 2 * 2}-{layer // 2 * 2 + 1}"
        for tensor, group in [("self_attn.k_proj", "attention"), ("mlp.down_proj", "mlp"),
                              ("post_attention_layernorm", "rest")]:
            got = params[f"model.layers.{layer}.{tensor}.weight"]["density"]
            assert got == [expect[f"density[a, {block}, {group}]"],
                           expect[f"density[b, {block}, {group}]"]]
    # outside the layers: embeddings follow the first block, the head the last (mergekit)
    first, last = expect["density[a, layers 0-1, rest]"], expect["density[b, layers 4-5, rest]"]
    assert params["model.embed_tokens.weight"]["density"][0] == first
    assert params["lm_head.weight"]["density"][1] == last


def test_a_recipe_outside_the_space_is_refused():
    bound = _bind(_ties({"param": "density", "per": ["model"], "bounds": [0.2, 0.8]},
                        fixed={"weight": 1.0}))
    recipe = bound.decode([0.5, 0.5]).recipe.to_dict()
    recipe["models"][0]["parameters"]["density"] = 0.9
    with pytest.raises(ConfigError, match=r"models\[0\].parameters.density' = 0.9: the recipe "
                                          r"is not in this space: gene 'density\[a\]' spans"):
        bound.encode(recipe)
    recipe = bound.decode([0.5, 0.5]).recipe.to_dict()
    recipe["seed"] = 5
    with pytest.raises(ConfigError, match="'seed' = 5: the recipe is not in this space"):
        bound.encode(recipe)
    recipe["merge_method"] = "dare_ties"
    with pytest.raises(ConfigError, match="'merge_method' = 'dare_ties'"):
        bound.encode(recipe)


def test_method_choice_decodes_each_method_with_its_own_parameters():
    bound = load_space(SPACES / "method_choice.yaml").bind(
        "m/base", ["m/a", "m/b"], facts=ModelFacts(NAMES[2]))
    methods = [bound.decode([u, 0.5, 0.5, 0.5, 0.5]).recipe for u in (0.1, 0.5, 0.9)]
    assert [r.merge_method for r in methods] == ["ties", "dare_ties", "task_arithmetic"]
    assert methods[2].models[0].parameters == {"weight": 0.5}
    assert methods[0].models[0].parameters == {"weight": 0.5, "density": 0.55}
    assert bound.encode(methods[2]) == [5 / 6, 0.5, 0.5, 0.5, 0.5]


@given(st.data(), st.sampled_from(SHIPPED), st.sampled_from([2, 4, 6]),
       st.integers(1, 3))
def test_no_point_decodes_to_a_recipe_the_engine_refuses(data, name, n_layers, n_sources):
    bound = bind_shipped(name, n_layers, n_sources)
    x = [data.draw(st.floats(-3, 3) if g.transform == "identity" and not g.categorical
                   else st.floats(-0.5, 1.5)) for g in bound.genes]
    recipe, clipped = bound.decode(x)
    assert all(not 0 <= c.given <= 1 for c in clipped)
    tasks = plan_merge(recipe, lambda m: NAMES[n_layers])
    assert sorted(t.out_name for t in tasks) == sorted(NAMES[n_layers])
    assert bound.decode(bound.encode(recipe)).recipe == recipe


def test_a_tied_entry_encodes_where_its_target_is_not_in_the_decoded_method():
    data = {"merge_method": {"choice": ["ties", "task_arithmetic"]},
            "models": {"base": "base"},
            "genes": [{"param": "density", "per": ["model"], "bounds": [0.5, 1.0]},
                      {"param": "weight", "per": ["model"], "bounds": [0.0, 2.0],
                       "tie": "density"}]}
    bound = _bind(data)
    recipe, _ = bound.decode([0.9, 0.25, 0.75])  # task arithmetic: no density
    assert [m.parameters for m in recipe.models] == [{"weight": 0.5}, {"weight": 1.5}]
    assert bound.encode(recipe) == [0.75, 0.25, 0.75]
