"""Exported routed models: an unscaled path as a standard checkpoint (plain transformers,
mergekit's passthrough gives the same tensors), a scaled one with its shipped code
(trust_remote_code) and through evomerge without it; both give the in-memory logits."""

import ast
import json
import subprocess

import pytest
import torch
import yaml
from routing_support import LAYERS, assert_same_outputs, routed_recipe
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from evomerge.cli import main
from evomerge.errors import ConfigError
from evomerge.export.passthrough import passthrough_recipe
from evomerge.export.routed import MODELING_FILE, export_recipe, export_routed
from evomerge.merge.recipe import load_recipe_dict
from evomerge.merge.routed_model import (
    build_routed,
    load_routed,
    routed_from_folders,
)
from evomerge.merge.routing import MERGED


def test_an_unscaled_path_exports_as_a_standard_checkpoint(routing_pair, tmp_path):
    a, b, sources = routing_pair
    recipe = routed_recipe(a, b, scales=False)
    model = build_routed(recipe, sources)
    out = export_routed(model, tmp_path / "plain", recipe=recipe)
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == 5 and config["model_type"] == "llama"
    assert not (out / MODELING_FILE).exists() and "auto_map" not in config
    assert (out / "tokenizer.json").exists() and (out / "evomerge_recipe.yaml").exists()
    loaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    assert_same_outputs(model, loaded, seed=4)


@pytest.mark.oracle
def test_mergekit_builds_the_same_tensors_from_the_exported_passthrough_yaml(routing_pair, tmp_path):
    a, b, sources = routing_pair
    recipe = routed_recipe(a, b, scales=False)
    out = export_routed(build_routed(recipe, sources), tmp_path / "plain", recipe=recipe)
    theirs = tmp_path / "mergekit"
    subprocess.run(["mergekit-yaml", str(out / "mergekit_config.yml"), str(theirs),
                    "--no-copy-tokenizer", "--quiet"], check=True, capture_output=True,
                   timeout=300)
    ours, got = load_file(out / "model.safetensors"), {}
    for f in theirs.glob("*.safetensors"):
        got.update(load_file(f))
    assert set(got) == set(ours)
    for name, tensor in ours.items():
        assert torch.equal(got[name], tensor), name


def test_the_passthrough_recipe_joins_runs_of_consecutive_layers(routing_pair):
    a, b, _ = routing_pair
    recipe = routed_recipe(a, b, scales=False)
    slices = [(s.sources[0].model, s.sources[0].layer_range)
              for s in passthrough_recipe(recipe.routing).slices]
    assert slices == [(a, (0, 1)), (b, (1, 2)), (b, (1, 2)), (a, (1, 3))]
    with pytest.raises(ConfigError, match="scales the hidden state"):
        passthrough_recipe(routed_recipe(a, b).routing)


def test_a_scaled_path_exports_with_its_code_and_loads_both_ways(routing_pair, tmp_path):
    a, b, sources = routing_pair
    recipe = routed_recipe(a, b)
    model = build_routed(recipe, sources)
    out = export_routed(model, tmp_path / "scaled", recipe=recipe)
    config = json.loads((out / "config.json").read_text())
    routing = config["evomerge_routing"]
    # b's layer 1 is visited twice and stored once: 4 distinct layers for 5 hops
    assert [s["layer"] for s in routing["stored"]] == [0, 1, 1, 2]
    assert routing["path"] == [[0, 1.0], [1, 0.8], [1, 1.3], [2, 0.6], [3, 1.0]]
    stored = {n.split(".")[2] for n in load_file(out / "model.safetensors")
              if ".stored_layers." in n}
    assert stored == {"0", "1", "2", "3"}
    assert not (out / "mergekit_config.yml").exists()
    shipped = ast.parse((out / MODELING_FILE).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(shipped)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(shipped)
                 if isinstance(node, ast.ImportFrom)}
    assert imported == {"__future__", "copy", "collections", "torch", "transformers"}
    with pytest.raises(ValueError, match="trust_remote_code=True"):  # never a plain Llama
        AutoModelForCausalLM.from_pretrained(out)
    remote = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True,
                                                  dtype=torch.float32).eval()
    assert type(remote).__name__ == "EvomergeRoutedForCausalLM"
    assert_same_outputs(model, remote, seed=4)
    ours = load_routed(out)
    assert len(ours.model.stored_layers) == 4 and len(ours.model.layers) == 5
    assert_same_outputs(model, ours, seed=4)


def test_a_merge_and_a_routing_through_it_export_from_the_recipe_alone(routing_pair, tmp_path):
    a, b, sources = routing_pair
    recipe = load_recipe_dict({
        "merge_method": "task_arithmetic", "base_model": a,
        "models": [{"model": b, "parameters": {"weight": 0.5}}],
        "routing": {"embeddings": MERGED, "path": [
            {"model": MERGED, "layer": 0}, {"model": b, "layer": 1, "scale": 0.9},
            {"model": MERGED, "layer": 1}, {"model": MERGED, "layer": LAYERS - 1}]}})
    out = export_recipe(recipe, tmp_path / "merged_routed")
    model = routed_from_folders(recipe)
    merged = model.model.layers[0].layer
    assert not torch.equal(merged.mlp.up_proj.weight,  # the merge, not the base
                           sources[a].model.layers[0].mlp.up_proj.weight)
    assert_same_outputs(model, load_routed(out), seed=4)
    assert (out / "tokenizer.json").exists()


def test_loading_a_standard_folder_as_routed_is_refused(routing_pair):
    a, _, _ = routing_pair
    with pytest.raises(ConfigError, match="not a routed checkpoint"):
        load_routed(a)
    assert LAYERS == 3


def test_evomerge_merge_builds_a_routed_recipe_and_refuses_a_bad_path(routing_pair, tmp_path,
                                                                      capsys):
    a, b, sources = routing_pair
    recipe = routed_recipe(a, b)
    path = tmp_path / "routed.yaml"
    path.write_text(recipe.to_yaml())
    assert main(["merge", str(path), str(tmp_path / "out")]) == 0
    assert_same_outputs(build_routed(recipe, sources), load_routed(tmp_path / "out"), seed=5)
    assert main(["merge", str(path), str(tmp_path / "out")]) == 2  # no --overwrite
    data = yaml.safe_load(recipe.to_yaml())
    data["routing"]["path"][2]["layer"] = 7
    path.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert main(["merge", str(path), str(tmp_path / "bad")]) == 2
    assert "'routing.path[2].layer' = 7: model" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
