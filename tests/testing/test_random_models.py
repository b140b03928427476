"""Random tiny checkpoints: seeded, and built without touching the caller's random state."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from evomerge.testing.random_models import save_perturbed, save_random_llama


def test_same_seed_same_weights_and_the_callers_random_state_is_kept(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    a = load_file(save_random_llama(tmp_path / "a", seed=0) / "model.safetensors")
    assert torch.equal(torch.rand(4), expected)

    again = load_file(save_random_llama(tmp_path / "again", seed=0) / "model.safetensors")
    other = load_file(save_random_llama(tmp_path / "other", seed=1) / "model.safetensors")
    assert all(torch.equal(a[k], again[k]) for k in a)
    assert not torch.equal(a["model.layers.0.mlp.up_proj.weight"],
                           other["model.layers.0.mlp.up_proj.weight"])


def test_a_perturbed_copy_moves_every_weight_by_about_the_scale(tmp_path):
    base = save_random_llama(tmp_path / "base", seed=0)
    ft = load_file(save_perturbed(base, tmp_path / "ft", seed=1, scale=0.01)
                   / "model.safetensors")
    ref = load_file(base / "model.safetensors")
    assert ft.keys() == ref.keys()
    assert all(not torch.equal(ft[k], ref[k]) for k in ref)
    deltas = torch.cat([(ft[k] - ref[k]).flatten() for k in ref])
    assert abs(deltas.std().item() - 0.01) < 0.0005 and abs(deltas.mean().item()) < 0.0005
