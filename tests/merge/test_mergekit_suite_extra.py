"""The configs of mergekit's test_merges.py, test_merge_dtypes.py and test_config_filter.py
on tiny stand-ins (mergekit 0.1.5 as the oracle), and encoder-decoders without module names
refused."""

import shutil

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from evomerge.cli import main


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory) -> str:
    from transformers import GPT2Config, GPT2LMHeadModel

    out = tmp_path_factory.mktemp("gpt2")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=3, n_head=4,
                                   n_positions=32)).save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def mixed(tiny_models, tmp_path_factory) -> str:
    """test_merge_dtypes' checkpoint: bfloat16 but for its float32 norms."""
    out = tmp_path_factory.mktemp("mixed") / "m"
    shutil.copytree(tiny_models["a"], out)
    for f in out.glob("*.safetensors"):
        save_file({n: t if "norm" in n else t.bfloat16() for n, t in load_file(f).items()},
                  f, metadata={"format": "pt"})
    return str(out)


def _same(config: dict, tmp) -> None:
    from test_mergekit_oracle import _config_json, _evomerge, _mergekit

    theirs, ours = _mergekit(config, tmp / "mk"), _evomerge(config, tmp)
    assert sorted(ours) == sorted(theirs)
    for name, want in theirs.items():
        assert ours[name].dtype == want.dtype, name
        torch.testing.assert_close(ours[name], want, atol=1e-6, rtol=1e-6, msg=name)
    assert _config_json(tmp / "evo") == _config_json(tmp / "mk")


@pytest.mark.oracle
def test_gpt2_copy(gpt2, tmp_path):
    _same({"merge_method": "passthrough", "models": [{"model": gpt2}], "dtype": "bfloat16"},
          tmp_path)


@pytest.mark.oracle
@pytest.mark.parametrize("dtypes", [{}, {"dtype": "bfloat16", "out_dtype": "float32"}])
def test_checkpoints_of_mixed_dtypes_merge_in_the_promoted_dtype(dtypes, mixed, tiny_models,
                                                                 tmp_path):
    """Without a dtype each tensor is computed and written in its inputs' promotion."""
    config = {"merge_method": "linear", "parameters": {"weight": 1.0}, **dtypes,
              "models": [{"model": mixed}, {"model": str(tiny_models["b"])}]}
    _same(config, tmp_path)


@pytest.mark.oracle
def test_filters_are_substrings_as_in_mergekit_0_1_5(tiny_models, tmp_path):
    """A glob such as ``*self_attn*`` (later mergekit versions) matches no name here, as
    in 0.1.5: the next entry decides."""
    base, a, b = (str(tiny_models[k]) for k in ("base", "a", "b"))
    density = [{"filter": "*self_attn*", "value": 0.03}, {"filter": "mlp", "value": 0.05},
               {"value": 1.0}]
    _same({"merge_method": "ties", "base_model": base, "models": [
        {"model": a, "parameters": {"weight": 0.5, "density": density}},
        {"model": b, "parameters": {"weight": 0.5, "density": 0.5}}]}, tmp_path)


def _exit_code(config: dict, tmp, capsys) -> tuple[int, str]:
    recipe = tmp / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    code = main(["merge", str(recipe), str(tmp / "out"), "--quiet"])
    return code, capsys.readouterr().err.strip()


def test_a_slice_reading_one_model_twice_is_refused(gpt2, tmp_path, capsys):
    """test_merges.py's GPT-2 stack lists one source twice in a slice (mergekit 0.1.5
    refuses it too: duplicate merge inputs)."""
    config = {"merge_method": "passthrough", "dtype": "bfloat16",
              "slices": [{"sources": [{"model": gpt2, "layer_range": [0, 3]}] * 2}]}
    code, err = _exit_code(config, tmp_path, capsys)
    assert code == 2 and "\n" not in err and "exactly 1" in err


def test_other_encoder_decoder_models_are_refused(tmp_path, capsys):
    """Encoder-decoders without module names (BART; mergekit 0.1.5 has no definition)."""
    from transformers import BartConfig, BartForConditionalGeneration

    path = tmp_path / "bart"
    BartForConditionalGeneration(BartConfig(
        vocab_size=64, d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=16,
        decoder_ffn_dim=16, max_position_embeddings=16)).save_pretrained(path)
    config = {"merge_method": "linear",
              "models": [{"model": str(path), "parameters": {"weight": 1.0}}]}
    code, err = _exit_code(config, tmp_path, capsys)
    assert code == 2 and "\n" not in err and "encoder-decoder" in err
