"""mergekit's ``modules`` key: each module of a model merged on its own (its own models or
layer slices, parameters), the same tensors and config.json as mergekit writes."""

from pathlib import Path

import pytest
import torch
import yaml

from evomerge.cli import main
from evomerge.testing.random_vlm import save_random_llava, save_random_mistral3

pytestmark = pytest.mark.oracle


@pytest.fixture(scope="module")
def mistral3s(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("mistral3")
    return (str(save_random_mistral3(root / "a", seed=0)),
            str(save_random_mistral3(root / "b", seed=1)))


def _both(config: dict, tmp: Path) -> tuple[dict, dict]:
    from test_mergekit_oracle import _config_json, _evomerge, _mergekit

    theirs, ours = _mergekit(config, tmp / "mk"), _evomerge(config, tmp)
    assert _config_json(tmp / "evo") == _config_json(tmp / "mk")
    return theirs, ours


def _assert_same(theirs: dict, ours: dict) -> None:
    assert sorted(ours) == sorted(theirs)
    for name, want in theirs.items():
        torch.testing.assert_close(ours[name], want, atol=1e-6, rtol=1e-6, msg=name)


def test_default_module_of_a_decoder_is_its_slices(tiny_models, tmp_path):
    """One module, ``default``: its parameters rank between a slice's and the recipe's."""
    base, a, b = (str(tiny_models[k]) for k in ("base", "a", "b"))
    config = {"merge_method": "ties", "base_model": base, "parameters": {"density": 0.5},
              "modules": {"default": {
                  "parameters": {"weight": [{"filter": "mlp", "value": [0.2, 0.9]},
                                            {"value": 0.8}],
                                 "density": 0.7},
                  "slices": [{"sources": [{"model": base, "layer_range": [0, 2]},
                                          {"model": a, "layer_range": [0, 2]},
                                          {"model": b, "layer_range": [1, 3],
                                           "parameters": {"weight": 0.4}}]},
                             {"sources": [{"model": base, "layer_range": [2, 3]},
                                          {"model": a, "layer_range": [2, 3]}],
                              # a filter that misses falls through to the module's
                              "parameters": {"density": 0.3,
                                             "weight": [{"filter": "self_attn",
                                                         "value": 0.6}]}}]}}}
    _assert_same(*_both(config, tmp_path))


def test_models_of_a_vision_language_model_take_each_stack_gradient(mistral3s, tmp_path):
    a, b = mistral3s
    config = {"merge_method": "linear", "models": [
        {"model": a, "parameters": {"weight": [0.0, 1.0]}},
        {"model": b, "parameters": {"weight": 1.0}}]}
    _assert_same(*_both(config, tmp_path))


def test_each_module_has_its_own_slices(mistral3s, tmp_path):
    """Slices of the text decoder and of the vision tower, each stack's depth changed,
    and the projector's own models: mergekit's tensors and layer counts."""
    a, b = mistral3s
    config = {"merge_method": "linear", "parameters": {"weight": 0.5}, "modules": {
        "text_decoder": {"slices": [
            {"sources": [{"model": a, "layer_range": [0, 2]}, {"model": b, "layer_range": [0, 2]}]},
            {"sources": [{"model": b, "layer_range": [1, 2]}]}]},
        "vision_tower": {"parameters": {"weight": [0.1, 0.9]}, "slices": [
            {"sources": [{"model": b, "layer_range": [0, 1]}]},
            {"sources": [{"model": a, "layer_range": [1, 3]}, {"model": b, "layer_range": [0, 2]}]}]},
        "multi_modal_projector": {"models": [{"model": a}, {"model": b,
                                                            "parameters": {"weight": 2.0}}]}}}
    theirs, ours = _both(config, tmp_path)
    _assert_same(theirs, ours)
    from test_mergekit_oracle import _config_json

    written = _config_json(tmp_path / "evo")
    assert written["text_config"]["num_hidden_layers"] == 3
    assert written["vision_config"]["num_hidden_layers"] == 3


def _refused(config: dict, tmp: Path, capsys) -> str:
    recipe = tmp / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(config))
    capsys.readouterr()  # what building the models printed
    assert main(["merge", str(recipe), str(tmp / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(recipe) in err
    return err


def test_a_module_left_out_or_unknown_is_refused(mistral3s, tmp_path, capsys):
    a, b = mistral3s
    two = {"models": [{"model": a, "parameters": {"weight": 1.0}},
                      {"model": b, "parameters": {"weight": 1.0}}]}
    err = _refused({"merge_method": "linear", "modules": {"text_decoder": two}}, tmp_path,
                   capsys)
    assert "field 'modules'" in err and "'vision_tower'" in err and "left out" in err
    err = _refused({"merge_method": "linear", "modules": {"default": two}}, tmp_path, capsys)
    assert "'multi_modal_projector'" in err


def test_modules_of_a_model_without_module_names_are_refused(tmp_path, capsys):
    """mergekit names LLaVA's modules after transformers' internal layout (and leaves
    its language model out): such configs are refused, saying to use 'models'."""
    a = str(save_random_llava(tmp_path / "llava", seed=0))
    config = {"merge_method": "linear", "modules": {"default": {
        "models": [{"model": a, "parameters": {"weight": 1.0}}]}}}
    err = _refused(config, tmp_path, capsys)
    assert "several stacks of layers" in err and "'models'" in err


def test_a_module_gives_models_or_slices(tiny_models, tmp_path, capsys):
    a = str(tiny_models["a"])
    err = _refused({"merge_method": "linear", "modules": {"default": {
        "parameters": {"weight": 1.0}}}, "models": [{"model": a}]}, tmp_path, capsys)
    assert "'models'" in err


def test_tensors_after_the_layers_take_as_many_models_as_the_first_slice(tiny_models, tmp_path):
    """mergekit pairs the last slice's models with the first slice's inputs: a final norm
    and head from the last slice's first model only, when the first slice has one."""
    base, a, b = (str(tiny_models[k]) for k in ("base", "a", "b"))
    config = {"merge_method": "linear", "parameters": {"weight": 0.5}, "slices": [
        {"sources": [{"model": base, "layer_range": [0, 1]}]},
        {"sources": [{"model": a, "layer_range": [1, 3]}, {"model": b, "layer_range": [1, 3]}]}]}
    _assert_same(*_both(config, tmp_path))
