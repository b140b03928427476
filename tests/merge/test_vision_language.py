"""Vision-language (LLaVA-style) checkpoints merge: both stacks of layers, each over its
own depth, and no input ends in a traceback."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from evomerge.checkpoint.architecture import layer_stack, tensor_info
from evomerge.cli import main
from evomerge.testing.random_vlm import save_random_llava


@pytest.fixture(scope="module")
def llavas(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("llava")
    return save_random_llava(root / "a", seed=0), save_random_llava(root / "b", seed=1)


def _merge(config: dict, tmp: Path, *extra: str) -> int:
    recipe = tmp / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(config))
    return main(["merge", str(recipe), str(tmp / "out"), "--quiet", *extra])


def _weight_of_first(merged, a, b) -> float:
    """w with merged = (w a + b) / (w + 1): the first model's weight, read back."""
    return ((b - merged) / (merged - a)).median().item()


def test_both_stacks_are_layers():
    assert tensor_info("language_model.model.layers.1.self_attn.q_proj.weight").layer == 1
    assert tensor_info("vision_tower.encoder.layers.2.layer_norm1.weight").group == "norm"
    assert layer_stack("vision_tower.encoder.layers.0.mlp.fc1.weight") != \
        layer_stack("language_model.model.layers.0.mlp.up_proj.weight")


def test_each_stack_takes_the_gradient_over_its_own_layers(llavas, tmp_path):
    """2 text layers and 3 vision layers: the weight [0, 1] runs 0..1 across each."""
    a, b = llavas
    config = {"merge_method": "linear", "models": [
        {"model": str(a), "parameters": {"weight": [0.0, 1.0]}},
        {"model": str(b), "parameters": {"weight": 1.0}}]}
    assert _merge(config, tmp_path) == 0
    out, ta, tb = (load_file(p / "model.safetensors") for p in (tmp_path / "out", a, b))
    assert sorted(out) == sorted(ta)  # every tensor of both towers and the projector
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["text_config"]["num_hidden_layers"] == 2
    assert config["vision_config"]["num_hidden_layers"] == 3
    expected = {"language_model.model.layers.0.mlp.up_proj.weight": 0.0,
                "language_model.model.layers.1.mlp.up_proj.weight": 1.0,
                "vision_tower.encoder.layers.0.mlp.fc1.weight": 0.0,
                "vision_tower.encoder.layers.1.mlp.fc1.weight": 0.5,
                "vision_tower.encoder.layers.2.mlp.fc1.weight": 1.0,
                "multi_modal_projector.linear_1.weight": 0.0}  # outside layers: t = 0
    for name, weight in expected.items():
        got = _weight_of_first(out[name], ta[name], tb[name])
        assert got == pytest.approx(weight, abs=1e-4), name


def test_merged_vision_language_model_loads(llavas, tmp_path):
    from transformers import LlavaForConditionalGeneration

    a, b = llavas
    config = {"merge_method": "slerp", "base_model": str(a),
              "models": [{"model": str(a)}, {"model": str(b)}], "parameters": {"t": 0.5}}
    assert _merge(config, tmp_path) == 0
    model = LlavaForConditionalGeneration.from_pretrained(tmp_path / "out")
    merged = load_file(tmp_path / "out" / "model.safetensors")
    name = "vision_tower.encoder.layers.2.mlp.fc2.weight"
    loaded = model.model.vision_tower.encoder.layers[2].mlp.fc2.weight
    assert torch.equal(loaded.detach(), merged[name])


def test_slices_over_two_stacks_are_refused(llavas, tmp_path, capsys):
    a, _ = llavas
    config = {"merge_method": "passthrough",
              "slices": [{"sources": [{"model": str(a), "layer_range": [0, 1]}]}]}
    assert _merge(config, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "field 'slices'" in err and "several stacks of layers" in err


def test_a_model_without_numbered_blocks_merges(tiny_models, tmp_path):
    """Nothing recognised as a layer (0 layers): every tensor is merged as a loose one."""
    from evomerge.testing.random_models import save_edited_copy

    def rename(tensors):
        for name in list(tensors):
            tensors[name.replace("layers.", "blocks_")] = tensors.pop(name)

    odd = save_edited_copy(tiny_models["a"], tmp_path / "odd", rename)
    config = {"merge_method": "linear", "models": [
        {"model": str(odd), "parameters": {"weight": 1.0}}]}
    assert _merge(config, tmp_path) == 0
    assert sorted(load_file(tmp_path / "out" / "model.safetensors")) == \
        sorted(load_file(odd / "model.safetensors"))


def test_an_unexpected_failure_is_one_line_and_status_2(tiny_models, tmp_path, capsys,
                                                        monkeypatch):
    import evomerge.merge.to_disk as to_disk

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(to_disk, "merge_to_disk", broken)
    config = {"merge_method": "linear", "models": [
        {"model": str(tiny_models["a"]), "parameters": {"weight": 1.0}}]}
    assert _merge(config, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: RuntimeError: disk on fire") and "\n" not in err


@pytest.mark.oracle
def test_vision_tower_and_projector_match_mergekit(llavas, tmp_path):
    """mergekit 0.1.5 writes the vision tower and the projector of these checkpoints
    (under transformers' new names) and leaves the language model out; what it writes
    must be what evomerge writes."""
    from test_mergekit_oracle import _mergekit

    a, b = llavas
    config = {"merge_method": "linear", "models": [
        {"model": str(a), "parameters": {"weight": [0.0, 1.0]}},
        {"model": str(b), "parameters": {"weight": 1.0}}]}
    theirs = _mergekit(config, tmp_path / "mk")
    assert _merge(config, tmp_path) == 0
    ours = load_file(tmp_path / "out" / "model.safetensors")
    assert len(theirs) == 59  # 80 tensors less the language model's 21
    for name, want in theirs.items():
        assert name.startswith(("model.vision_tower.", "model.multi_modal_projector."))
        torch.testing.assert_close(ours[name.removeprefix("model.")], want, atol=1e-6,
                                   rtol=1e-6)
