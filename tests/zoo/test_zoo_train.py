"""Zoo training: seeded and bit-reproducible, and it gives back the settings it changes."""

from __future__ import annotations

import pytest
import torch

from evomerge.zoo.data import training_stream
from evomerge.zoo.skills import glyphs_to_decimal
from evomerge.zoo.train import (
    ModelShape,
    TrainSettings,
    char_tokenizer,
    new_model,
    train,
    train_translator,
)

SHAPE = ModelShape(hidden=16, layers=1, heads=2)
SETTINGS = TrainSettings(steps=3, lr=1e-2, batch_size=4)


def _trained(seed: int):
    tok = char_tokenizer()
    model = new_model(SHAPE, tok, seed=seed)
    losses = train(model, tok, training_stream({"sort": 1.0}, seed=seed), SETTINGS, seed=seed)
    return model.state_dict(), losses


def test_training_restores_the_random_state_threads_and_determinism_flag():
    threads = torch.get_num_threads()
    flag = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(5)
    expected = torch.rand(4)
    torch.manual_seed(5)
    _trained(seed=0)
    assert torch.equal(torch.rand(4), expected)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == flag


def test_same_seed_trains_bit_identical_weights():
    first, losses = _trained(seed=0)
    again, losses_again = _trained(seed=0)
    other, _ = _trained(seed=1)
    assert losses == losses_again
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def _first_layer_output(model, tok, texts: list[str]) -> torch.Tensor:
    ids = tok(texts, return_tensors="pt").input_ids
    with torch.no_grad():
        return model.model(ids, output_hidden_states=True).hidden_states[1]


def test_a_translator_first_layer_outputs_the_embeddings_of_the_translated_text():
    tok = char_tokenizer()
    base = new_model(ModelShape(hidden=16, layers=2, heads=2), tok, seed=0)
    losses: list[float] = []
    reader = train_translator(base, tok, training_stream({"glyph": 1.0, "copy": 1.0}, seed=0),
                              glyphs_to_decimal, TrainSettings(steps=150, lr=1e-2,
                                                               batch_size=16), seed=0,
                              on_step=lambda _, loss: losses.append(loss))
    # held-out text: a foreign number and a decimal one of the same length
    foreign, decimal = "copy:PKTS=", "copy:8039="
    out = _first_layer_output(reader, tok, [foreign, decimal])
    wanted = base.model.embed_tokens(tok([decimal, decimal], return_tensors="pt").input_ids)
    error = (out - wanted).norm(dim=-1) / wanted.norm(dim=-1)
    assert error.max() < 0.1, error
    assert losses[-1] < losses[0] / 100
    # only the first layer moved; the base is left as it was
    changed = {n for n, t in reader.state_dict().items() if not t.equal(base.state_dict()[n])}
    assert changed and all(n.startswith("model.layers.0.") for n in changed)
    assert (base.model.layers[0].mlp.down_proj.weight != 0).any()


def test_a_translation_that_changes_the_length_is_refused():
    tok = char_tokenizer()
    base = new_model(ModelShape(hidden=16, layers=1, heads=2), tok, seed=0)
    with pytest.raises(ValueError, match="one character"):
        train_translator(base, tok, training_stream({"glyph": 1.0}, seed=0),
                         lambda text: text + "0", TrainSettings(steps=1, lr=1e-3,
                                                                batch_size=2), seed=0)
