"""CheckpointReader: lazy access, sharded folders, dtypes, tied heads, pickle and errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from evomerge.checkpoint import CheckpointReader
from evomerge.checkpoint.weight_files import SafetensorsFile
from evomerge.errors import CheckpointError


def _write_sharded(folder: Path, shards: dict[str, dict[str, torch.Tensor]],
                   config: dict | None = None) -> Path:
    """A hand-made sharded folder: one safetensors file per entry plus the index."""
    folder.mkdir(parents=True)
    weight_map = {}
    for file, tensors in shards.items():
        save_file(tensors, str(folder / file), metadata={"format": "pt"})
        weight_map.update({name: file for name in tensors})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


ALL_DTYPES = [torch.bfloat16, torch.float16, torch.float32, torch.float64, torch.int64,
              torch.int32, torch.int8, torch.uint8, torch.bool]


def test_single_file_matches_safetensors_contents(llama_fp32):
    stored = load_file(str(llama_fp32 / "model.safetensors"))
    with CheckpointReader(llama_fp32) as r:
        assert r.tensor_names() == sorted(stored)
        assert r.config["num_hidden_layers"] == 2
        assert not r.tied_embeddings
        for name, tensor in stored.items():
            assert r.shape(name) == tuple(tensor.shape)
            assert r.dtype(name) == tensor.dtype
            assert r.nbytes(name) == tensor.numel() * tensor.element_size()
            assert torch.equal(r.get(name), tensor)


def test_sharded_folder_every_dtype(tmp_path):
    gen = torch.Generator().manual_seed(0)
    tensors = {f"t_{str(d).split('.')[-1]}": (torch.randn(3, 5, generator=gen) * 50).to(d)
               for d in ALL_DTYPES}
    names = sorted(tensors)
    folder = _write_sharded(tmp_path / "m", {
        "model-00001-of-00002.safetensors": {n: tensors[n] for n in names[:4]},
        "model-00002-of-00002.safetensors": {n: tensors[n] for n in names[4:]},
    })
    r = CheckpointReader(folder)
    assert r.tensor_names() == names
    for name, tensor in tensors.items():
        assert r.dtype(name) == tensor.dtype
        assert r.shape(name) == (3, 5)
        got = r.get(name)
        assert got.dtype == tensor.dtype and torch.equal(got, tensor)
    # Each shard is opened once and kept, whatever the number of reads.
    assert len(r._files) == 2
    r.close()
    assert len(r._files) == 0


def test_metadata_never_loads_a_tensor(llama_fp32, monkeypatch):
    def refuse(self, name):
        raise AssertionError(f"tensor {name!r} was loaded")

    monkeypatch.setattr(SafetensorsFile, "get", refuse)
    r = CheckpointReader(llama_fp32)
    name = "model.layers.1.self_attn.q_proj.weight"
    assert (r.shape(name), r.dtype(name), r.nbytes(name)) == ((32, 32), torch.float32, 32 * 32 * 4)
    with pytest.raises(AssertionError, match="was loaded"):
        r.get(name)


def test_get_casts_and_returns_an_owned_copy(llama_fp32):
    r = CheckpointReader(llama_fp32)
    name = "model.layers.0.mlp.up_proj.weight"
    original = load_file(str(llama_fp32 / "model.safetensors"))[name]
    half = r.get(name, dtype=torch.float16)
    assert half.dtype == torch.float16 and torch.equal(half, original.half())
    edited = r.get(name)
    edited.add_(1.0)  # must not leak into the next read through the memory map
    assert torch.equal(r.get(name), original)


def test_tied_head_is_served_by_the_embedding(llama_tied):
    r = CheckpointReader(llama_tied)
    assert "lm_head.weight" not in r.tensor_names()
    assert r.tied_embeddings
    assert "lm_head.weight" in r
    embed = r.get("model.embed_tokens.weight")
    assert torch.equal(r.get("lm_head.weight"), embed)
    assert r.shape("lm_head.weight") == tuple(embed.shape)
    assert r.nbytes("lm_head.weight") == r.nbytes("model.embed_tokens.weight")


def test_untied_config_without_head_does_not_alias(llama_tied, tmp_path):
    folder = tmp_path / "untied"
    shutil.copytree(llama_tied, folder)
    config = json.loads((folder / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (folder / "config.json").write_text(json.dumps(config))
    r = CheckpointReader(folder)
    assert not r.tied_embeddings
    with pytest.raises(CheckpointError, match="'lm_head.weight' is not in model"):
        r.get("lm_head.weight")


# -- errors ------------------------------------------------------------------------------


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match=r"model folder '.*nowhere' does not exist"):
        CheckpointReader(tmp_path / "nowhere")


def test_folder_without_weights_lists_what_it_found(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError) as err:
        CheckpointReader(tmp_path)
    message = str(err.value)
    assert "has no weights" in message and "model.safetensors" in message
    assert "adapter_model.safetensors, config.json" in message


def test_index_pointing_at_a_missing_shard(tmp_path):
    folder = _write_sharded(tmp_path / "m", {"model-00001-of-00002.safetensors": {"a": torch.ones(1)}})
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"]["b"] = "model-00002-of-00002.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError) as err:
        CheckpointReader(folder)
    assert "'model-00002-of-00002.safetensors', which does not exist" in str(err.value)
    assert "'b'" in str(err.value)


def test_index_naming_a_tensor_its_shard_lacks(tmp_path):
    folder = _write_sharded(tmp_path / "m", {"s1.safetensors": {"a": torch.ones(1)}})
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"]["ghost"] = "s1.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="places tensor 'ghost' in 's1.safetensors'"):
        CheckpointReader(folder).get("ghost")


def test_unknown_tensor_lists_nearest_names(llama_fp32):
    r = CheckpointReader(llama_fp32)
    with pytest.raises(CheckpointError) as err:
        r.get("model.layers.0.mlp.up_proj.weights")
    message = str(err.value)
    assert "'model.layers.0.mlp.up_proj.weights' is not in model" in message
    assert "nearest names: 'model.layers.0.mlp.up_proj.weight'" in message


@pytest.mark.parametrize("sharded", [False, True])
def test_garbage_safetensors_file_is_named(tmp_path, sharded):
    folder = tmp_path / "m"
    if sharded:
        _write_sharded(folder, {"good.safetensors": {"a": torch.ones(1)}})
        index = {"weight_map": {"a": "good.safetensors", "b": "bad.safetensors"}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
        bad = folder / "bad.safetensors"
    else:
        folder.mkdir()
        bad = folder / "model.safetensors"
    bad.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(CheckpointError) as err:
        CheckpointReader(folder).get("b")
    assert f"weight file '{bad}' is not a valid safetensors file" in str(err.value)


def test_invalid_config_json_is_named(llama_fp32, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(llama_fp32, folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json' is not valid JSON"):
        CheckpointReader(folder)


# -- pickle ------------------------------------------------------------------------------


def _pickle_folder(folder: Path, sharded: bool) -> dict[str, torch.Tensor]:
    folder.mkdir()
    gen = torch.Generator().manual_seed(1)
    state = {"a.weight": torch.randn(4, 3, generator=gen),
             "b.weight": torch.randn(2, generator=gen).to(torch.bfloat16)}
    if sharded:
        torch.save({"a.weight": state["a.weight"]}, folder / "pytorch_model-00001-of-00002.bin")
        torch.save({"b.weight": state["b.weight"]}, folder / "pytorch_model-00002-of-00002.bin")
        index = {"weight_map": {"a.weight": "pytorch_model-00001-of-00002.bin",
                                "b.weight": "pytorch_model-00002-of-00002.bin"}}
        (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    else:
        torch.save(state, folder / "pytorch_model.bin")
    return state


@pytest.mark.parametrize("sharded", [False, True])
def test_pickle_refused_without_flag_and_read_with_it(tmp_path, sharded):
    state = _pickle_folder(tmp_path / "m", sharded)
    with pytest.raises(CheckpointError) as err:
        CheckpointReader(tmp_path / "m")
    assert "allow_pickle=True" in str(err.value) and "--allow-pickle" in str(err.value)
    r = CheckpointReader(tmp_path / "m", allow_pickle=True)
    assert r.tensor_names() == sorted(state)
    for name, tensor in state.items():
        assert r.dtype(name) == tensor.dtype and r.shape(name) == tuple(tensor.shape)
        assert torch.equal(r.get(name), tensor)


class _NotATensor:
    """Arbitrary objects in a pickle are what weights_only=True exists to refuse."""


def test_pickle_with_arbitrary_objects_is_refused_even_with_flag(tmp_path):
    (tmp_path / "m").mkdir()
    torch.save({"a": torch.ones(1), "payload": _NotATensor()}, tmp_path / "m" / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        CheckpointReader(tmp_path / "m", allow_pickle=True)
