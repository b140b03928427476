"""mergekit's modular vision-language architectures (Gemma 3, Llama 4, Qwen2-VL,
Qwen2.5-VL, Qwen3-VL) merged
module by module: the same tensors as mergekit 0.1.5, and its config.json but for the
per-block lists it leaves at the source depth."""

from pathlib import Path

import pytest
import torch

from evomerge.testing import random_vlm

pytestmark = pytest.mark.oracle

#: architecture -> (text module, vision module), as mergekit names them
MODULES = {"gemma3": ("text_decoder", "vision_tower"),
           "llama4": ("text_decoder", "vision_model"),
           "qwen2_vl": ("text_decoder", "vision_tower"),
           "qwen2_5_vl": ("text_decoder", "vision_tower"),
           "qwen3_vl": ("text_decoder", "vision_tower")}


@pytest.fixture(scope="module", params=list(MODULES))
def pair(request, tmp_path_factory) -> tuple[str, str, str]:
    save = getattr(random_vlm, f"save_random_{request.param}")
    root = tmp_path_factory.mktemp(request.param)
    return request.param, str(save(root / "a", seed=0)), str(save(root / "b", seed=1))


def _compare(config: dict, tmp: Path) -> tuple[dict, dict]:
    """Both tools on ``config``: tensors compared; the two config.json files returned."""
    from test_mergekit_oracle import _config_json, _evomerge, _mergekit

    theirs, ours = _mergekit(config, tmp / "mk"), _evomerge(config, tmp)
    assert sorted(ours) == sorted(theirs)
    for name, want in theirs.items():
        torch.testing.assert_close(ours[name], want, atol=1e-6, rtol=1e-6, msg=name)
    return _config_json(tmp / "mk"), _config_json(tmp / "evo")


def test_models_take_each_modules_gradient(pair, tmp_path):
    """Each module's gradient runs over its own depth (Qwen2-VL's merger MLP, which
    mergekit lists as two layers of the same names, at t = 1)."""
    _, a, b = pair
    config = {"merge_method": "linear", "models": [
        {"model": a, "parameters": {"weight": [0.0, 1.0]}},
        {"model": b, "parameters": {"weight": [1.0, 0.5]}}]}
    theirs, ours = _compare(config, tmp_path)
    assert ours == theirs


def test_each_module_has_its_own_slices(pair, tmp_path):
    """Both stacks re-cut, the projector given slices (their layer ranges cut nothing
    there, but for Qwen3-VL's three deepstack mergers, a stack of its own), and a last
    slice with more sources than the first."""
    kind, a, b = pair
    text, vision = MODULES[kind]
    config = {"merge_method": "linear", "parameters": {"weight": 0.5}, "modules": {
        text: {"slices": [
            {"sources": [{"model": b, "layer_range": [0, 1]}]},
            {"sources": [{"model": a, "layer_range": [0, 2]}, {"model": b, "layer_range": [0, 2]}]}]},
        vision: {"parameters": {"weight": [0.1, 0.9]}, "slices": [
            {"sources": [{"model": b, "layer_range": [0, 1]}]},
            {"sources": [{"model": a, "layer_range": [1, 3]}, {"model": b, "layer_range": [0, 2]}]}]},
        "multi_modal_projector": {"slices": [
            {"sources": [{"model": a, "layer_range": [0, 1]}, {"model": b, "layer_range": [2, 3]}],
             "parameters": {"weight": [0.2, 0.7]}},
            {"sources": [{"model": b, "layer_range": [0, 2]}, {"model": a, "layer_range": [0, 2]}],
             "parameters": {"weight": [0.3, 2.0]}}]}}}
    theirs, ours = _compare(config, tmp_path)
    # mergekit writes the new depth (Qwen2-VL's at the top only, where it reads it) and
    # leaves the per-block lists at the source depth: a config transformers refuses
    # (Gemma 3, Llama 4) or reads with the source's depth (Qwen2-VL)
    assert ours["text_config"]["num_hidden_layers"] == 3
    if kind != "qwen3_vl":  # the one without a list of attention kinds
        assert len(ours["text_config"]["layer_types"]) == 3
        for side in (ours, theirs):
            side["text_config"].pop("layer_types")
    if kind == "qwen2_vl":
        assert ours["num_hidden_layers"] == 3
        theirs["text_config"]["num_hidden_layers"] = 3
    if kind == "llama4":  # and its lists of blocks without rotary embeddings, with experts
        assert len(ours["text_config"].pop("no_rope_layers")) == 3
        assert ours["text_config"].pop("moe_layers") == [0, 1, 2]
        theirs["text_config"].pop("no_rope_layers"), theirs["text_config"].pop("moe_layers")
    assert ours == theirs


def test_a_module_mergekit_does_not_name_is_refused(pair, tmp_path, capsys):
    from test_modules import _refused

    _, a, _ = pair
    config = {"merge_method": "linear", "modules": {"default": {
        "models": [{"model": a, "parameters": {"weight": 1.0}}]}}}
    err = _refused(config, tmp_path, capsys)
    assert "'multi_modal_projector'" in err and "'text_decoder'" in err
