"""config.json's layer count follows the output, under whatever key the family keeps it."""

import json
from pathlib import Path

import pytest
import torch
from test_mergekit_oracle import _evomerge, _mergekit

pytestmark = pytest.mark.oracle


@pytest.fixture(scope="module")
def gpt2s(tmp_path_factory) -> tuple[Path, Path]:
    from transformers import GPT2Config, GPT2LMHeadModel

    root = tmp_path_factory.mktemp("gpt2")
    paths = []
    for seed, name in enumerate("ab"):
        config = GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=3, n_head=4,
                            bos_token_id=0, eos_token_id=0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            GPT2LMHeadModel(config).save_pretrained(root / name)
        paths.append(root / name)
    return paths[0], paths[1]


def test_gpt2_stacking_writes_n_layer_as_mergekit(gpt2s, tmp_path):
    a, b = (str(p) for p in gpt2s)
    config = {"merge_method": "passthrough", "slices": [
        {"sources": [{"model": a, "layer_range": [0, 3]}]},
        {"sources": [{"model": b, "layer_range": [1, 3]}]}]}
    expected = _mergekit(config, tmp_path / "mk")
    got = _evomerge(config, tmp_path)
    ours = json.loads((tmp_path / "evo" / "config.json").read_text())
    assert ours["n_layer"] == 5
    assert ours == json.loads((tmp_path / "mk" / "config.json").read_text())
    assert sorted(got) == sorted(expected)
    assert all(torch.equal(got[n], expected[n]) for n in expected)


def test_llama_stacking_writes_num_hidden_layers(tiny_models, tmp_path):
    a = str(tiny_models["a"])
    config = {"merge_method": "passthrough", "slices": [
        {"sources": [{"model": a, "layer_range": [0, 3]}]},
        {"sources": [{"model": a, "layer_range": [0, 2]}]}]}
    _evomerge(config, tmp_path)
    assert json.loads((tmp_path / "evo" / "config.json").read_text())[
        "num_hidden_layers"] == 5


def _family(name: str):
    import transformers as tf

    sizes = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                 num_attention_heads=2)
    return {
        "llama": (tf.LlamaForCausalLM, tf.LlamaConfig(**sizes)),
        "gemma2": (tf.Gemma2ForCausalLM, tf.Gemma2Config(**sizes, head_dim=8)),
        "phi": (tf.PhiForCausalLM, tf.PhiConfig(**sizes)),
        "gpt_neox": (tf.GPTNeoXForCausalLM, tf.GPTNeoXConfig(**sizes)),
        "opt": (tf.OPTForCausalLM, tf.OPTConfig(vocab_size=64, hidden_size=16, ffn_dim=32,
                                                num_hidden_layers=3, num_attention_heads=2,
                                                word_embed_proj_dim=16)),
        "gpt2": (tf.GPT2LMHeadModel, tf.GPT2Config(n_layer=3, n_embd=16, n_head=2,
                                                   vocab_size=64, n_positions=32)),
    }[name]


@pytest.mark.parametrize("family", ["llama", "gemma2", "phi", "gpt_neox", "opt", "gpt2"])
def test_stacked_model_of_every_family_loads_with_its_depth(family, tmp_path):
    """5 layers from 3: the config says 5, under the family's own key, and the model
    loads with every tensor in place."""
    from transformers import AutoModelForCausalLM

    cls, config = _family(family)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        cls(config).save_pretrained(tmp_path / "src")
    src = str(tmp_path / "src")
    recipe = {"merge_method": "passthrough", "slices": [
        {"sources": [{"model": src, "layer_range": [0, 3]}]},
        {"sources": [{"model": src, "layer_range": [1, 3]}]}]}
    _evomerge(recipe, tmp_path)
    model, info = AutoModelForCausalLM.from_pretrained(tmp_path / "evo",
                                                       output_loading_info=True)
    assert model.config.num_hidden_layers == 5
    assert not info["missing_keys"] and not info["unexpected_keys"]
