"""In-memory builds write exactly what the disk merge writes, into one reused model."""

import pytest
import torch
import yaml
from safetensors.torch import load_file

from evomerge.cli import main
from evomerge.merge.live import LiveMerger
from evomerge.merge.recipe import load_recipe_dict


def _recipe(m, method, **params):
    p = dict(weight=0.8, **params)
    return {"merge_method": method, "base_model": str(m["base"]), "seed": 3,
            "format": "evomerge/recipe-v1",
            "models": [{"model": str(m["a"]), "parameters": p},
                       {"model": str(m["b"]), "parameters": dict(p, weight=0.5)}]}


@pytest.fixture(scope="module")
def merger(tiny_models):
    return LiveMerger([str(tiny_models[k]) for k in ("a", "b")], base=str(tiny_models["base"]))


@pytest.mark.parametrize("method,params", [
    ("task_arithmetic", {}), ("ties", {"density": 0.5}), ("dare_ties", {"density": 0.6}),
    ("breadcrumbs", {"density": 0.7, "gamma": 0.05}), ("della", {"density": 0.5, "epsilon": 0.1}),
])
def test_live_build_equals_disk_merge(tiny_models, merger, tmp_path, method, params):
    cfg = _recipe(tiny_models, method, **params)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["merge", str(path), str(tmp_path / "out"), "--quiet"]) == 0
    on_disk = load_file(tmp_path / "out" / "model.safetensors")

    model = merger.new_model()
    merger.build(load_recipe_dict(cfg), model)
    state = model.state_dict()
    for name, want in on_disk.items():
        torch.testing.assert_close(state[name], want, atol=1e-6, rtol=1e-6)


def test_one_model_object_reused_across_candidates(tiny_models, merger):
    model = merger.new_model()
    first = load_recipe_dict(_recipe(tiny_models, "ties", density=0.3))
    second = load_recipe_dict(_recipe(tiny_models, "ties", density=0.9))
    merger.build(first, model)
    snap1 = {k: v.clone() for k, v in model.state_dict().items()}
    ptr = model.model.layers[0].mlp.up_proj.weight.data_ptr()
    merger.build(second, model)
    assert model.model.layers[0].mlp.up_proj.weight.data_ptr() == ptr  # in place
    assert not torch.equal(snap1["model.layers.0.mlp.up_proj.weight"],
                           model.state_dict()["model.layers.0.mlp.up_proj.weight"])
    merger.build(first, model)  # rebuilding a recipe gives it back bit-identically
    assert all(torch.equal(snap1[k], v) for k, v in model.state_dict().items())


def test_resident_sources_are_not_modified(tiny_models, merger):
    before = {k: v.clone() for k, v in merger.deltas[str(tiny_models["a"])].items()}
    merger.build(load_recipe_dict(_recipe(tiny_models, "dare_ties", density=0.5)),
                 merger.new_model())
    after = merger.deltas[str(tiny_models["a"])]
    assert all(torch.equal(before[k], after[k]) for k in before)


def _sources_in_memory(tiny_models):
    """The tiny base and experts read into memory: (folder keys, weights by key)."""
    from evomerge.checkpoint import CheckpointReader

    keys = [str(tiny_models[k]) for k in ("base", "a", "b")]
    weights = {}
    for key in keys:
        with CheckpointReader(key) as reader:
            weights[key] = {n: reader.get(n) for n in reader.tensor_names()}
    return keys, weights


def _assert_same_build(reference, other, cfg):
    """Both mergers build ``cfg`` into bit-identical models; returns ``other``'s model."""
    recipe = load_recipe_dict(cfg)
    want, got = reference.new_model(), other.new_model()
    reference.build(recipe, want)
    other.build(recipe, got)
    for (name, a), (_, b) in zip(want.state_dict().items(), got.state_dict().items()):
        assert torch.equal(a, b), name
    return got


def test_sources_given_in_memory_build_what_folders_build(tiny_models, merger):
    keys, weights = _sources_in_memory(tiny_models)
    in_memory = LiveMerger.from_weights(weights, merger.config, base=keys[0])
    _assert_same_build(merger, in_memory, _recipe(tiny_models, "dare_ties", density=0.6))


def test_sources_given_in_memory_must_share_names_and_shapes():
    from evomerge.errors import ConfigError

    weights = {"base": {"w": torch.zeros(2, 3)}, "a": {"w": torch.zeros(3, 2)}}
    with pytest.raises(ConfigError, match="differ from those of 'base'"):
        LiveMerger.from_weights(weights, {}, base="base")
    with pytest.raises(ConfigError, match="not among the sources"):
        LiveMerger.from_weights({"a": {"w": torch.zeros(2)}}, {}, base="base")


def test_task_vectors_only_builds_the_same_and_refuses_raw_weight_methods(tiny_models, merger):
    from evomerge.errors import ConfigError

    keys, weights = _sources_in_memory(tiny_models)
    lean = LiveMerger.from_weights(weights, merger.config, base=keys[0],
                                   task_vectors_only=True)
    assert list(lean.weights) == [keys[0]]  # the experts live on only as task vectors
    got = _assert_same_build(merger, lean, _recipe(tiny_models, "ties", density=0.5))
    linear = {"merge_method": "linear", "format": "evomerge/recipe-v1",
              "models": [{"model": k, "parameters": {"weight": 0.5}} for k in keys[1:]]}
    with pytest.raises(ConfigError, match="task vectors only"):
        lean.build(load_recipe_dict(linear), got)


@pytest.mark.parametrize("method,params", [
    ("ties", {"density": 0.4}), ("breadcrumbs", {"density": 0.7, "gamma": 0.05}),
])
def test_remembered_order_builds_the_same_merge(tiny_models, merger, method, params):
    from evomerge.merge.operators.topk import SORTED_MAGNITUDES

    keys = [str(tiny_models[k]) for k in ("a", "b")]
    ordered = LiveMerger(keys, base=str(tiny_models["base"]), remember_order=True)
    names = list(ordered.deltas[keys[0]])
    call = ordered.context.for_inputs([(keys[0], name) for name in names])
    assert all(call.recall(i, SORTED_MAGNITUDES) is not None for i in range(len(names)))
    _assert_same_build(merger, ordered, _recipe(tiny_models, method, **params))


def _disk_merge(cfg, tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["merge", str(path), str(tmp_path / "out"), "--quiet"]) == 0
    return load_file(tmp_path / "out" / "model.safetensors")


def _weight_recipes(m):
    a, b, base = str(m["a"]), str(m["b"]), str(m["base"])
    return {
        "linear": {"merge_method": "linear", "models": [
            {"model": a, "parameters": {"weight": 0.7}},
            {"model": b, "parameters": {"weight": [0.1, 0.6]}}]},
        "slerp": {"merge_method": "slerp", "base_model": base, "parameters": {"t": 0.3},
                  "models": [{"model": base}, {"model": a}]},
        "slices": {"merge_method": "passthrough", "slices": [
            {"sources": [{"model": a, "layer_range": [0, 2]}]},
            {"sources": [{"model": b, "layer_range": [2, 3]}]}]},
    }


@pytest.mark.parametrize("kind", ["linear", "slerp", "slices"])
def test_weight_methods_and_slices_build_what_the_disk_merge_writes(tiny_models, merger,
                                                                    tmp_path, kind):
    cfg = _weight_recipes(tiny_models)[kind]
    on_disk = _disk_merge(cfg, tmp_path)
    model = merger.new_model()
    merger.build(load_recipe_dict(cfg), model)
    state = model.state_dict()
    for name, want in on_disk.items():
        torch.testing.assert_close(state[name], want, atol=1e-6, rtol=1e-6)


def test_a_recipe_defining_fewer_layers_is_refused_before_anything_is_written(
        tiny_models, merger):
    from evomerge.errors import ConfigError

    model = merger.new_model()
    merger.build(load_recipe_dict(_recipe(tiny_models, "ties", density=0.5)), model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    two_layers = {"merge_method": "passthrough", "slices": [
        {"sources": [{"model": str(tiny_models["b"]), "layer_range": [0, 2]}]}]}
    with pytest.raises(ConfigError, match="leaves .* undefined") as info:
        merger.build(load_recipe_dict(two_layers), model)
    assert "model.layers.2." in str(info.value)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing written


def test_closing_a_merger_stops_its_pool_and_keeps_it_usable(tiny_models):
    keys = [str(tiny_models[k]) for k in ("a", "b")]
    recipe = load_recipe_dict(_recipe(tiny_models, "dare_ties", density=0.5))
    with LiveMerger(keys, base=str(tiny_models["base"])) as merger:
        model = merger.new_model()
        merger.build(recipe, model)
        first = {k: v.clone() for k, v in model.state_dict().items()}
    merger.build(recipe, model)  # a closed pool starts again on demand
    assert all(torch.equal(first[k], v) for k, v in model.state_dict().items())
    merger.close()
