"""The data-flow spaces: gene counts worked out by hand, what a point means (slots on the
path, the scale of each hop), exact round trips, and a decoded parameter + data-flow
recipe that builds and runs."""

import numpy as np
import pytest
import torch
import yaml
from space_support import DATAFLOW, SPACES, llama_tensor_names

from evomerge.errors import ConfigError
from evomerge.merge.live import LiveMerger
from evomerge.merge.recipe import load_recipe_dict
from evomerge.merge.routed_model import build_routed, load_sources
from evomerge.merge.routing import MERGED
from evomerge.space import DataflowSpace, ModelFacts, load_space


def _bind(name, n_layers, tied=False):
    space = load_space(SPACES / name)
    roles = space.models
    models = (["models/base", "models/expert"] if roles.base else []) + [
        f"models/{r}" for r in roles.sources]
    base = models.pop(0) if roles.base else None
    return space.bind(base, models, facts=ModelFacts(llama_tensor_names(n_layers, tied)))


# Hand counts with two models of L layers: M = 2L layers, r = 3 repeats, slots between
# the anchors (slot 0 and a's last layer in the last repeat): 2M + L - 2.
# Unanchored, with r = 2: a gene for each of the 2M slots.
ZOO = {"dataflow.yaml": (2 * 8 + 4 - 2) + 8 * 8,            # L = 4: 18 + W[i, j]
       "dataflow_compact.yaml": 18 + 8,                     # 18 + a scale per layer
       "dataflow_unanchored.yaml": 2 * 8 + 8,               # every slot + a scale per layer
       "dare_ties_dataflow.yaml": 2 * 4 + 18 + 8}           # DARE-TIES density, weight
SMOLLM2 = {"dataflow.yaml": (2 * 60 + 30 - 2) + 60 * 60,   # L = 30: 148 + 3600
           "dataflow_compact.yaml": 148 + 60,
           "dataflow_unanchored.yaml": 2 * 60 + 60,
           "dare_ties_dataflow.yaml": 2 * 30 + 148 + 60}


def test_hand_counts_cover_every_shipped_dataflow_space():
    assert set(ZOO) == set(DATAFLOW) == set(SMOLLM2)
    for name in DATAFLOW:
        assert (SPACES / name).read_text().startswith("#")
        space = load_space(SPACES / name)
        assert isinstance(space, DataflowSpace) and space.name == name.removesuffix(".yaml")
        assert _bind(name, 4).dim == ZOO[name]
        assert _bind(name, 30, tied=True).dim == SMOLLM2[name]


def _point(bound, on=(), scales=None, rest=0.5):
    """All slots off but the named ones (gene names), scale genes at ``rest`` or as named."""
    x = [rest] * bound.dim
    for i, gene in enumerate(bound.genes):
        if gene.name.startswith("on["):
            x[i] = 0.9 if gene.name in on else 0.1
        if scales and gene.name in scales:
            x[i] = scales[gene.name]
    return x


def test_a_point_says_which_slots_are_on_and_how_each_hop_is_scaled():
    bound = _bind("dataflow.yaml", 4)
    names = [g.name for g in bound.genes]
    assert names[0] == "on[a.1 r1]" and names[17] == "on[a.2 r3]"
    assert "scale[a.0 -> b.1]" in names
    x = _point(bound, on={"on[b.1 r1]", "on[b.1 r2]", "on[a.2 r3]"},
               scales={"scale[a.0 -> b.1]": 0.75, "scale[b.1 -> b.1]": 0.25})
    recipe, clipped = bound.decode(x)
    assert clipped == ()
    path = [(h.model, h.layer, h.scale) for h in recipe.routing.path]
    assert path == [("models/a", 0, 1.0), ("models/b", 1, 1.5), ("models/b", 1, 0.5),
                    ("models/a", 2, 1.0), ("models/a", 3, 1.0)]
    assert recipe.routing.embeddings == "models/a"
    assert recipe.routing.max_length == 24 and recipe.merge_method is None
    # nothing on: the shortest path the anchors allow
    shortest, _ = bound.decode(_point(bound))
    assert [(h.model, h.layer) for h in shortest.routing.path] == [("models/a", 0),
                                                                   ("models/a", 3)]


def test_an_unanchored_path_starts_and_ends_in_any_model_and_is_never_empty():
    bound = _bind("dataflow_unanchored.yaml", 4)
    names = [g.name for g in bound.genes]
    assert names[:2] == ["on[a.0 r1]", "on[a.1 r1]"] and names[15] == "on[b.3 r2]"
    # the reading model's first layer, then all of the other model's: no anchor needed
    x = _point(bound, on={"on[a.0 r1]", *(f"on[b.{i} r1]" for i in range(4))},
               scales={"scale[-> b.0]": 0.25})
    recipe, _ = bound.decode(x)
    assert [(h.model, h.layer, h.scale) for h in recipe.routing.path] == [
        ("models/a", 0, 1.0), ("models/b", 0, 0.5), ("models/b", 1, 1.0),
        ("models/b", 2, 1.0), ("models/b", 3, 1.0)]
    assert recipe.routing.anchored is False and recipe.routing.embeddings == "models/a"
    assert bound.encode(recipe) == bound.encode(bound.decode(bound.encode(recipe)).recipe)
    # nothing on: the one slot whose gene is highest
    x = _point(bound)
    x[names.index("on[b.2 r2]")] = 0.4
    lone, _ = bound.decode(x)
    assert [(h.model, h.layer) for h in lone.routing.path] == [("models/b", 2)]
    # an anchored space refuses the unanchored path, naming why
    with pytest.raises(ConfigError, match="no slot of this space holds this hop"):
        _bind("dataflow_compact.yaml", 4).encode(recipe)


@pytest.mark.parametrize("name", DATAFLOW)
def test_random_points_round_trip_exactly(name):
    bound = _bind(name, 4)
    rng = np.random.default_rng(0)
    for _ in range(5):
        recipe, _ = bound.decode(rng.random(bound.dim).tolist())
        x = bound.encode(recipe)
        again, _ = bound.decode(x)
        assert again.to_dict() == recipe.to_dict()
        assert bound.encode(load_recipe_dict(yaml.safe_load(recipe.to_yaml()))) == x


def test_a_recipe_outside_the_space_is_refused_with_the_reason():
    bound = _bind("dataflow.yaml", 4)
    recipe, _ = bound.decode(_point(bound, on={"on[b.1 r1]"}))
    data = recipe.to_dict()
    data["routing"]["path"].insert(1, {"model": "models/c", "layer": 0, "scale": 1.0})
    with pytest.raises(ConfigError, match=r"routing.path\[1\].*no slot of this space"):
        bound.encode(data)
    data = recipe.to_dict()
    data["routing"]["path"][1]["scale"] = 2.5
    with pytest.raises(ConfigError, match="cannot make this path with these scales"):
        bound.encode(data)


def test_bad_space_files_name_the_field(tmp_path):
    path = tmp_path / "space.yaml"
    for section, field in [({"models": ["a", "merged"]}, "dataflow"),
                           ({"models": ["a"], "repeats": 0}, "dataflow.repeats"),
                           ({"models": ["a"], "scales": {"bounds": [2, 1]}},
                            "dataflow.scales")]:
        path.write_text(yaml.safe_dump({"dataflow": section}))
        with pytest.raises(ConfigError) as info:
            load_space(path)
        assert str(info.value).startswith(str(path)) and f"'{field}'" in str(info.value)


def test_parameter_and_dataflow_space_decode_to_one_recipe_that_builds(tiny4):
    space = load_space(SPACES / "dare_ties_dataflow.yaml")
    base, a, other = (str(tiny4[k]) for k in ("base", "a", "b"))
    bound = space.bind(base, [a, other])
    x = _point(bound, on={"on[b.2 r1]", "on[merged.1 r2]"}, scales={"scale[-> b.2]": 0.4})
    recipe, _ = bound.decode(x)
    assert recipe.merge_method == "dare_ties" and recipe.base_model == base
    assert [(h.model, h.layer, h.scale) for h in recipe.routing.path] == [
        (MERGED, 0, 1.0), (other, 2, 0.8), (MERGED, 1, 1.0), (MERGED, 3, 1.0)]
    assert bound.encode(recipe) == bound.encode(bound.decode(bound.encode(recipe)).recipe)
    # what a worker does: build the merge in place, then route through it
    merger = LiveMerger([a], base=base)
    merged = merger.new_model()
    merger.build(recipe, merged)
    model = build_routed(recipe, {MERGED: merged, **load_sources([other])})
    assert model.model.layers[0].layer.mlp is merged.model.layers[0].mlp
    with torch.no_grad():
        out = model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 6)


def test_a_self_contained_copy_decodes_as_the_file_does(tiny4, tmp_path):
    from evomerge.config_io import read_yaml
    from evomerge.space.files import self_contained, space_from_dict

    file = SPACES / "dare_ties_dataflow.yaml"
    data = self_contained(read_yaml(file), file)
    assert isinstance(data["dataflow"]["merge"], dict)
    models = [str(tiny4[k]) for k in ("base", "a", "b")]
    from_file = load_space(file).bind(models[0], models[1:])
    elsewhere = space_from_dict(data, tmp_path / "campaign.yaml").bind(models[0], models[1:])
    x = np.random.default_rng(3).random(from_file.dim).tolist()
    assert elsewhere.decode(x).recipe == from_file.decode(x).recipe
