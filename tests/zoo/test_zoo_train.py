"""Zoo training: seeded and bit-reproducible, and it gives back the settings it changes."""

from __future__ import annotations

import torch

from evomerge.zoo.data import training_stream
from evomerge.zoo.train import ModelShape, TrainSettings, char_tokenizer, new_model, train

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
