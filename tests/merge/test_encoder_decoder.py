"""Encoder-decoder checkpoints merged module by module, each stack over its own depth.

T5 against mergekit 0.1.5 (the same tensors and config.json). mergekit 0.1.5 merges no
Whisper checkpoint (its definition's decoder prefix lacks a dot), so Whisper is checked
against the formula and against transformers loading the result.
"""

from pathlib import Path

import pytest
import torch

from evomerge.testing.random_encoder_decoder import save_random_t5, save_random_whisper


@pytest.fixture(scope="module")
def t5(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("t5")
    return tuple(str(save_random_t5(root / n, seed=s, tied=False)) for n, s in (("a", 0), ("b", 1)))


@pytest.fixture(scope="module")
def whisper(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("whisper")
    return tuple(str(save_random_whisper(root / n, seed=s)) for n, s in (("a", 0), ("b", 1)))


def _compare(config: dict, tmp: Path, ulps: int = 0) -> None:
    """Both tools on ``config``: the same tensors (within ``ulps`` units in the last
    place of a 16-bit dtype) and the same config.json."""
    from test_mergekit_oracle import _config_json, _evomerge, _mergekit

    theirs, ours = _mergekit(config, tmp / "mk"), _evomerge(config, tmp)
    assert sorted(ours) == sorted(theirs)
    for name, want in theirs.items():
        assert ours[name].dtype == want.dtype, name
        ulp = torch.finfo(want.dtype).eps * want.float().abs().clamp(min=2**-14)
        tolerance = ulps * ulp if ulps else 1e-6 * (1 + want.float().abs())
        assert ((ours[name].float() - want.float()).abs() <= tolerance).all(), name
    assert _config_json(tmp / "evo") == _config_json(tmp / "mk")


@pytest.mark.oracle
def test_t5_models_take_each_stacks_gradient(t5, tmp_path):
    a, b = t5
    _compare({"merge_method": "linear", "models": [
        {"model": a, "parameters": {"weight": [0.0, 1.0]}},
        {"model": b, "parameters": {"weight": [1.0, 0.5]}}]}, tmp_path)


@pytest.mark.oracle
@pytest.mark.parametrize("method", ["passthrough", "linear"])
def test_t5_in_mergekits_whisper_test_configs(method, t5, tmp_path):
    """mergekit's test_whisper_merges.py configs (a bfloat16 copy, a bfloat16 linear
    0.6/0.4), which 0.1.5 runs on T5 only."""
    a, b = t5
    models = ([{"model": a}] if method == "passthrough" else
              [{"model": a, "parameters": {"weight": 0.6}},
               {"model": b, "parameters": {"weight": 0.4}}])
    _compare({"merge_method": method, "dtype": "bfloat16", "models": models}, tmp_path,
             ulps=0 if method == "passthrough" else 2)


@pytest.mark.oracle
def test_t5_each_stack_has_its_own_slices(t5, tmp_path):
    """The encoder and the decoder re-cut to other depths (their keys ``num_layers`` and
    ``num_decoder_layers``), the shared embedding and head from their own models."""
    a, b = t5
    _compare({"merge_method": "linear", "parameters": {"weight": 0.5}, "modules": {
        "encoder": {"slices": [
            {"sources": [{"model": b, "layer_range": [1, 2]}]},
            {"sources": [{"model": a, "layer_range": [0, 2]}, {"model": b, "layer_range": [0, 2]}]}]},
        "decoder": {"parameters": {"weight": [0.1, 0.9]}, "slices": [
            {"sources": [{"model": a, "layer_range": [0, 2]},
                         {"model": b, "layer_range": [0, 2]}]},
            {"sources": [{"model": b, "layer_range": [2, 3]}]}]},
        "shared": {"models": [{"model": b, "parameters": {"weight": 0.3}},
                              {"model": a, "parameters": {"weight": 0.7}}]}}}, tmp_path)


@pytest.mark.oracle
def test_mergekit_0_1_5_merges_no_whisper(whisper, tmp_path):
    """What the README says of Whisper: mergekit 0.1.5 looks for its decoder's tensors
    under ``model.decoder`` without the dot."""
    from test_mergekit_oracle import _mergekit

    with pytest.raises(RuntimeError, match="model.decoderembed_tokens.weight"):
        _mergekit({"merge_method": "linear", "dtype": "bfloat16", "models": [
            {"model": m, "parameters": {"weight": 0.5}} for m in whisper]}, tmp_path)


def test_whisper_models_take_each_stacks_gradient(whisper, tmp_path):
    """Each stack's layer ``i`` of ``n`` at ``t = i / (n - 1)``; tensors outside the
    layers at ``t = 0``."""
    from safetensors.torch import load_file
    from test_mergekit_oracle import _evomerge

    a, b = whisper
    ours = _evomerge({"merge_method": "linear", "models": [
        {"model": a, "parameters": {"weight": [0.0, 1.0]}},
        {"model": b, "parameters": {"weight": 1.0}}]}, tmp_path)
    ta, tb = load_file(f"{a}/model.safetensors"), load_file(f"{b}/model.safetensors")
    assert sorted(ours) == sorted(ta)
    for name, t in [("model.encoder.layers.1.fc1.weight", 1.0),
                    ("model.decoder.layers.1.fc1.weight", 0.5),
                    ("model.decoder.layers.2.self_attn.q_proj.weight", 1.0),
                    ("model.decoder.embed_tokens.weight", 0.0),
                    ("model.decoder.layer_norm.bias", 0.0)]:
        want = (t * ta[name] + tb[name]) / (t + 1)
        torch.testing.assert_close(ours[name], want, atol=1e-6, rtol=1e-6, msg=name)


def test_whisper_stacks_re_cut_load_in_transformers(whisper, tmp_path):
    from test_mergekit_oracle import _config_json, _evomerge
    from transformers import WhisperForConditionalGeneration

    a, b = whisper
    _evomerge({"merge_method": "passthrough", "modules": {
        "encoder": {"slices": [{"sources": [{"model": a, "layer_range": [0, 2]}]},
                               {"sources": [{"model": b, "layer_range": [1, 2]}]}]},
        "decoder": {"slices": [{"sources": [{"model": b, "layer_range": [0, 1]}]}]}}},
              tmp_path)
    config = _config_json(tmp_path / "evo")
    assert (config["encoder_layers"], config["decoder_layers"]) == (3, 1)
    model = WhisperForConditionalGeneration.from_pretrained(tmp_path / "evo")
    assert len(model.model.encoder.layers) == 3 and len(model.model.decoder.layers) == 1


def test_top_level_slices_are_refused(t5, tmp_path, capsys):
    from test_modules import _refused

    config = {"merge_method": "passthrough",
              "slices": [{"sources": [{"model": t5[0], "layer_range": [0, 1]}]}]}
    assert "several stacks of layers" in _refused(config, tmp_path, capsys)


def test_t5_block_0_paired_with_another_block_is_refused(t5, tmp_path, capsys):
    """Only block 0 holds T5's relative attention bias: a slice pairing it with another
    block has an input without it (mergekit merges the models that have it)."""
    import yaml

    from evomerge.cli import main

    a, b = t5
    both = {"models": [{"model": a}, {"model": b}]}
    config = {"merge_method": "linear", "parameters": {"weight": 0.5}, "modules": {
        "encoder": both, "shared": both, "decoder": {"slices": [{"sources": [
            {"model": a, "layer_range": [0, 2]}, {"model": b, "layer_range": [1, 3]}]}]}}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "recipe.yaml"), str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "relative_attention_bias.weight" in err
    assert "recipe.yaml" in err and "modules.decoder.slices[0].sources[1].layer_range" in err
    assert "pairs layers that hold the same tensors" in err
