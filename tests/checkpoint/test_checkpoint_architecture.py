"""Architecture facts on the real tensor names of each supported family.

Names come from transformers models instantiated on the meta device with tiny configs,
so they are exactly what those models save, without allocating any weights.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evomerge.checkpoint import (
    filter_matches,
    is_output_head,
    is_token_embedding,
    layer_prefix,
    layer_stack,
    num_layers,
    rename_layer,
    tensor_info,
)

LAYERS = 3
_SIZES = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=LAYERS,
              num_attention_heads=2)


def _family_configs():
    import transformers as tf

    return {
        "llama": (tf.LlamaForCausalLM, tf.LlamaConfig(**_SIZES)),
        "mistral": (tf.MistralForCausalLM, tf.MistralConfig(**_SIZES, num_key_value_heads=1)),
        "qwen2": (tf.Qwen2ForCausalLM, tf.Qwen2Config(**_SIZES, num_key_value_heads=1)),
        "gemma": (tf.GemmaForCausalLM, tf.GemmaConfig(**_SIZES, head_dim=8)),
        "gemma2": (tf.Gemma2ForCausalLM, tf.Gemma2Config(**_SIZES, head_dim=8)),
        "gemma3": (tf.Gemma3ForCausalLM, tf.Gemma3TextConfig(**_SIZES, head_dim=8)),
        "phi": (tf.PhiForCausalLM, tf.PhiConfig(**_SIZES)),
        "phi3": (tf.Phi3ForCausalLM, tf.Phi3Config(**_SIZES, pad_token_id=0)),
        "gpt_neox": (tf.GPTNeoXForCausalLM, tf.GPTNeoXConfig(**_SIZES)),
        "gpt2": (tf.GPT2LMHeadModel, tf.GPT2Config(n_layer=LAYERS, n_embd=16, n_head=2,
                                                   vocab_size=64, n_positions=32)),
    }


@pytest.fixture(scope="module")
def family_names() -> dict[str, list[str]]:
    names = {}
    for family, (cls, config) in _family_configs().items():
        with torch.device("meta"):
            names[family] = sorted(cls(config).state_dict())
    return names


# Facts a reader of each family's modeling code would state, per family.
EXPECTED = {
    "llama": {
        "model.embed_tokens.weight": (None, "embedding"),
        "model.layers.2.self_attn.k_proj.weight": (2, "attention"),
        "model.layers.0.mlp.gate_proj.weight": (0, "mlp"),
        "model.layers.1.input_layernorm.weight": (1, "norm"),
        "model.layers.1.post_attention_layernorm.weight": (1, "norm"),
        "model.norm.weight": (None, "norm"),
        "lm_head.weight": (None, "head"),
    },
    "mistral": {"model.layers.1.self_attn.o_proj.weight": (1, "attention"),
                "model.layers.2.mlp.down_proj.weight": (2, "mlp")},
    "qwen2": {"model.layers.0.self_attn.q_proj.bias": (0, "attention"),
              "model.layers.2.mlp.up_proj.weight": (2, "mlp")},
    "gemma": {"model.layers.0.post_attention_layernorm.weight": (0, "norm"),
              "model.embed_tokens.weight": (None, "embedding")},
    "gemma2": {"model.layers.1.pre_feedforward_layernorm.weight": (1, "norm"),
               "model.layers.1.post_feedforward_layernorm.weight": (1, "norm")},
    "gemma3": {"model.layers.2.self_attn.q_norm.weight": (2, "attention"),
               "model.layers.2.self_attn.k_norm.weight": (2, "attention"),
               "model.layers.0.pre_feedforward_layernorm.weight": (0, "norm")},
    "phi": {"model.layers.0.self_attn.dense.weight": (0, "attention"),
            "model.layers.1.mlp.fc1.bias": (1, "mlp"),
            "model.layers.2.input_layernorm.bias": (2, "norm"),
            "model.final_layernorm.weight": (None, "norm"),
            "lm_head.bias": (None, "head")},
    "phi3": {"model.layers.0.self_attn.qkv_proj.weight": (0, "attention"),
             "model.layers.0.mlp.gate_up_proj.weight": (0, "mlp")},
    "gpt_neox": {"gpt_neox.embed_in.weight": (None, "embedding"),
                 "gpt_neox.layers.1.attention.query_key_value.weight": (1, "attention"),
                 "gpt_neox.layers.1.attention.dense.bias": (1, "attention"),
                 "gpt_neox.layers.2.mlp.dense_h_to_4h.weight": (2, "mlp"),
                 "gpt_neox.layers.0.post_attention_layernorm.weight": (0, "norm"),
                 "gpt_neox.final_layer_norm.weight": (None, "norm")},
    "gpt2": {"transformer.wte.weight": (None, "embedding"),
             "transformer.wpe.weight": (None, "embedding"),
             "transformer.h.1.attn.c_attn.weight": (1, "attention"),
             "transformer.h.1.attn.c_proj.bias": (1, "attention"),
             "transformer.h.0.mlp.c_fc.weight": (0, "mlp"),
             "transformer.h.2.mlp.c_proj.weight": (2, "mlp"),
             "transformer.h.0.ln_1.weight": (0, "norm"),
             "transformer.h.2.ln_2.bias": (2, "norm"),
             "transformer.ln_f.weight": (None, "norm")},
}


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_family_facts(family, family_names):
    names = family_names[family]
    for name, (layer, group) in EXPECTED[family].items():
        assert name in names, f"{name} is not a real {family} tensor name"
        info = tensor_info(name)
        assert (info.layer, info.group) == (layer, group), name
    assert num_layers(names) == LAYERS
    infos = [tensor_info(n) for n in names]
    assert all(i.group != "other" for i in infos), [n for n, i in zip(names, infos) if i.group == "other"]
    for layer in range(LAYERS):  # every block has all three kinds of sub-module
        assert {i.group for i in infos if i.layer == layer} == {"attention", "mlp", "norm"}
    outside = {i.group for i in infos if i.layer is None}
    assert {"embedding", "norm", "head"} <= outside
    assert sum(is_token_embedding(n) for n in names) == 1
    assert [n for n in names if is_output_head(n)] == ["lm_head.weight"]


def test_names_as_older_checkpoints_store_them():
    # GPT-2 on the hub stores names without "transformer."; Pythia stores its head as embed_out.
    assert tensor_info("h.4.attn.c_attn.weight") == tensor_info("transformer.h.4.attn.c_attn.weight")
    assert tensor_info("wte.weight").group == "embedding" and is_token_embedding("wte.weight")
    assert tensor_info("embed_out.weight").group == "head" and is_output_head("embed_out.weight")
    assert tensor_info("model.language_model.layers.7.mlp.up_proj.weight").layer == 7
    # Buffers are not mistaken for blocks; a vision tower's blocks are blocks of their own.
    assert tensor_info("model.rotary_emb.inv_freq").group == "other"
    assert tensor_info("model.vision_tower.encoder.layers.0.mlp.fc1.weight").layer == 0
    assert layer_stack("model.vision_tower.encoder.layers.0.mlp.fc1.weight") != \
        layer_stack("model.language_model.layers.0.mlp.up_proj.weight")
    assert tensor_info("model.layers.x.mlp.up_proj.weight").layer is None


def test_num_layers_without_blocks():
    assert num_layers([]) == 0
    assert num_layers(["lm_head.weight", "model.norm.weight"]) == 0


@settings(max_examples=150, deadline=None)
@given(data=st.data(), new_layer=st.integers(0, 500))
def test_rename_layer_moves_only_the_index(family_names, data, new_layer):
    family = data.draw(st.sampled_from(sorted(family_names)))
    name = data.draw(st.sampled_from(family_names[family]))
    info = tensor_info(name)
    if info.layer is None:
        with pytest.raises(ValueError, match="not inside a numbered layer"):
            rename_layer(name, new_layer)
        assert layer_prefix(name) is None
        return
    moved = rename_layer(name, new_layer)
    assert tensor_info(moved).layer == new_layer
    assert tensor_info(moved).group == info.group
    assert moved.removeprefix(layer_prefix(moved)) == name.removeprefix(layer_prefix(name))
    assert rename_layer(moved, info.layer) == name


def test_rename_layer_rejects_negative_index():
    with pytest.raises(ValueError, match="new_layer=-1"):
        rename_layer("model.layers.0.mlp.up_proj.weight", -1)


# -- mergekit's filter rule ----------------------------------------------------------------


def _mergekit_matches(filter: str | None, name: str) -> bool:
    from mergekit.config import ConditionalParameter, evaluate_setting

    setting = ConditionalParameter(value=1.0, filter=filter)
    return evaluate_setting(name, setting, validate=float) is not None


@pytest.mark.oracle
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_filter_matches_agrees_with_mergekit(family_names, data):
    pool = sorted({n for names in family_names.values() for n in names})
    name = data.draw(st.one_of(st.sampled_from(pool), st.just(""), st.text(max_size=12)))
    filter = data.draw(st.one_of(
        st.sampled_from([None, "*", "self_attn", "mlp", "attn", "norm", "layers.1.", ""]),
        st.text(max_size=6),
        st.sampled_from(pool).flatmap(lambda n: st.integers(0, len(n)).flatmap(
            lambda i: st.integers(i, len(n)).map(lambda j: n[i:j]))),
    ))
    assert filter_matches(filter, name) == _mergekit_matches(filter, name)
