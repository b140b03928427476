"""check_compatible: same names and shapes, with messages that say which model has what."""

from __future__ import annotations

import re

import pytest

from evomerge.checkpoint import CheckpointReader, check_compatible
from evomerge.errors import CheckpointError
from evomerge.testing.random_models import save_edited_copy, save_random_llama


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


UP = "model.layers.1.mlp.up_proj.weight"
EXTRA = "model.layers.1.mlp.extra.weight"

#: One change of each kind to a copy of model 'a', and what the error must say about it.
MISMATCHES = {
    "missing": (lambda t: t.pop(UP),
                f"model 'missing' lacks 1 tensor(s) present in 'a': '{UP}'"),
    "extra": (lambda t: t.__setitem__(EXTRA, t[UP].clone()),
              f"model 'extra' has 1 tensor(s) absent from 'a': '{EXTRA}'"),
    "shape": (lambda t: t.__setitem__(UP, t[UP][:40].clone()),
              f"model 'shape': tensor '{UP}' has shape (40, 32) but model 'a' has (80, 32)"),
}


@pytest.mark.parametrize("kind", sorted(MISMATCHES))
def test_each_mismatch_kind_raises_naming_the_model_and_tensor(models, tmp_path, kind):
    edit, expected = MISMATCHES[kind]
    changed = save_edited_copy(models["a"], tmp_path / kind, edit)
    with pytest.raises(CheckpointError) as err:
        check_compatible([CheckpointReader(models["a"]), CheckpointReader(changed)])
    assert expected in str(err.value)
    # every model is compared, not only the first two
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        check_compatible(_readers(models, "a", "b_same") + [CheckpointReader(changed)])


def test_same_architecture_passes_where_one_changed_tensor_fails(models, tmp_path):
    check_compatible(_readers(models, "a", "b_same", "a"))
    check_compatible(_readers(models, "a"))
    check_compatible([])
    # b_same with a single tensor cut short is refused: the pass above was a real check
    cut = save_edited_copy(models["b_same"], tmp_path / "b_cut",
                       lambda t: t.__setitem__(UP, t[UP][:, :16].clone()))
    with pytest.raises(CheckpointError, match=re.escape(f"tensor '{UP}' has shape (80, 16)")):
        check_compatible([CheckpointReader(models["a"]), CheckpointReader(cut)])


def test_a_tied_head_counts_as_lm_head_and_a_missing_head_does_not(models, tmp_path):
    check_compatible(_readers(models, "a", "tied"))
    check_compatible(_readers(models, "tied", "a"))
    # an untied model that stores no head lacks lm_head.weight, tied or not on the other side
    headless = save_edited_copy(models["a"], tmp_path / "headless",
                            lambda t: t.pop("lm_head.weight"))
    assert not CheckpointReader(headless).tied_embeddings
    for ref in ("a", "tied"):
        with pytest.raises(CheckpointError) as err:
            check_compatible([CheckpointReader(models[ref]), CheckpointReader(headless)])
        assert (f"model 'headless' lacks 1 tensor(s) present in '{ref}': 'lm_head.weight'"
                in str(err.value))


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
