"""check_compatible: same names and shapes, with messages that say which model has what."""

from __future__ import annotations

import pytest

from evomerge.checkpoint import CheckpointReader, check_compatible
from evomerge.errors import CheckpointError
from evomerge.zoo.random_models import save_random_llama


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("compat")
    return {
        "a": save_random_llama(root / "a", seed=0),
        "b_same": save_random_llama(root / "b_same", seed=1),
        "wide": save_random_llama(root / "wide", seed=2, intermediate_size=64),
        "deep": save_random_llama(root / "deep", seed=3, num_layers=3),
        "tied": save_random_llama(root / "tied", seed=4, tie_word_embeddings=True),
    }


def _readers(models, *keys):
    return [CheckpointReader(models[k]) for k in keys]


def test_same_architecture_is_compatible(models):
    check_compatible(_readers(models, "a", "b_same", "a"))
    check_compatible(_readers(models, "a"))
    check_compatible([])


def test_tied_and_untied_heads_are_compatible(models):
    check_compatible(_readers(models, "a", "tied"))
    check_compatible(_readers(models, "tied", "a"))


def test_shape_mismatch_names_model_tensor_and_shapes(models):
    with pytest.raises(CheckpointError) as err:
        check_compatible(_readers(models, "a", "wide"))
    message = str(err.value)
    assert ("model 'wide': tensor 'model.layers.0.mlp.up_proj.weight' has shape (64, 32) "
            "but model 'a' has (80, 32)") in message
    # 3 MLP matrices x 2 layers differ; 5 are quoted and the sixth is counted.
    assert message.count("has shape") == 5
    assert "model 'wide': 1 more tensor(s) differ in shape" in message


def test_missing_and_extra_tensors_are_counted_and_listed(models):
    with pytest.raises(CheckpointError) as err:
        check_compatible(_readers(models, "deep", "a"))
    message = str(err.value)
    assert "model 'a' lacks 9 tensor(s) present in 'deep': 'model.layers.2." in message
    assert "and 4 more" in message
    with pytest.raises(CheckpointError, match=r"model 'deep' has 9 tensor\(s\) absent from 'a'"):
        check_compatible(_readers(models, "a", "deep"))


def test_models_sharing_a_folder_name_are_told_apart_by_path(models, tmp_path):
    other = save_random_llama(tmp_path / "a", seed=9, intermediate_size=64)
    with pytest.raises(CheckpointError) as err:
        check_compatible([CheckpointReader(models["a"]), CheckpointReader(other)])
    assert f"model '{other}'" in str(err.value)
    assert f"model '{models['a']}'" in str(err.value)
