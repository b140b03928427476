"""CheckpointWriter: sharding, transformers round trips, atomic placement and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from evomerge.checkpoint import CheckpointReader, CheckpointWriter
from evomerge.errors import CheckpointError, ConfigError
from evomerge.testing.random_models import save_random_llama


def _copy_model(source: Path, out: Path, **writer_kw) -> None:
    """Stream every stored tensor of ``source`` through a writer into ``out``."""
    with CheckpointReader(source) as r, CheckpointWriter(out, copy_from=source, **writer_kw) as w:
        for name in r.tensor_names():
            w.add(name, r.get(name))


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir())


def test_sharded_round_trip_loads_in_transformers(llama_fp32, tmp_path, logits_of):
    limit = 16_000
    out = tmp_path / "copy"
    _copy_model(llama_fp32, out, max_shard_bytes=limit)

    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 3
    assert shards == [f"model-{k:05d}-of-{len(shards):05d}.safetensors"
                      for k in range(1, len(shards) + 1)]
    assert not (out / "model.safetensors").exists()
    source = CheckpointReader(llama_fp32)
    assert sorted(index["weight_map"]) == source.tensor_names()
    assert index["metadata"]["total_size"] == sum(source.nbytes(n) for n in source.tensor_names())
    for shard in shards:
        with safe_open(str(out / shard), framework="pt") as f:
            assert f.metadata() == {"format": "pt"}
            sizes = [f.get_slice(n).get_shape() for n in f.keys()]
            nbytes = sum(4 * torch.Size(s).numel() for s in sizes)
            # Over the limit only when a single tensor is itself larger than the limit.
            assert nbytes <= limit or len(sizes) == 1
    # config, generation config and tokenizer came along
    assert {"config.json", "generation_config.json", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert torch.equal(logits_of(out), logits_of(llama_fp32))
    assert _siblings(out) == ["copy"]  # no temp folder left behind


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_round_trip(tmp_path, dtype, logits_of):
    source = save_random_llama(tmp_path / "src", seed=5, dtype=dtype)
    out = tmp_path / "out"
    _copy_model(source, out)  # default limit: one shard
    assert (out / "model.safetensors").exists()
    assert not (out / "model.safetensors.index.json").exists()
    a, b = CheckpointReader(source), CheckpointReader(out)
    for name in a.tensor_names():
        assert b.dtype(name) == dtype
        assert torch.equal(a.get(name), b.get(name))
    logits = logits_of(out)
    assert logits.dtype == dtype
    assert torch.equal(logits, logits_of(source))


def test_tied_model_round_trip(llama_tied, tmp_path, logits_of):
    out = tmp_path / "tied_copy"
    _copy_model(llama_tied, out, max_shard_bytes=20_000)
    r = CheckpointReader(out)
    assert r.tied_embeddings and "lm_head.weight" not in r.tensor_names()
    assert torch.equal(logits_of(out), logits_of(llama_tied))


def test_exception_inside_with_leaves_nothing(llama_fp32, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(RuntimeError, match="boom"):
        with CheckpointReader(llama_fp32) as r, CheckpointWriter(out, max_shard_bytes=8_000) as w:
            for name in r.tensor_names()[:6]:
                w.add(name, r.get(name))
            assert any(w._tmp.glob("*.safetensors"))  # shards were already on disk
            raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_tensors_go_to_disk_as_they_are_added(tmp_path):
    with CheckpointWriter(tmp_path / "m", max_shard_bytes=100) as w:
        w.add("a", torch.zeros(20))  # 80 bytes, already in the open shard's file
        assert [p.name for p in w._tmp.iterdir()] == ["shard-00001.safetensors"]
        w.add("b", torch.zeros(20))  # 160 > 100: the first shard is closed, a second opened
        assert sorted(p.name for p in w._tmp.iterdir()) == [
            "shard-00001.safetensors", "shard-00002.safetensors"]
        assert list(w._shard.entries) == ["b"]
        w.add("huge", torch.zeros(1000))  # larger than the limit: a shard of its own
        w.add("c", torch.zeros(1))
    weight_map = json.loads((tmp_path / "m" / "model.safetensors.index.json").read_text())["weight_map"]
    assert weight_map == {"a": "model-00001-of-00004.safetensors",
                          "b": "model-00002-of-00004.safetensors",
                          "huge": "model-00003-of-00004.safetensors",
                          "c": "model-00004-of-00004.safetensors"}


def test_views_and_shared_buffers_are_stored_compactly(tmp_path):
    big = torch.arange(10_000, dtype=torch.float32)
    shared = torch.ones(3)
    with CheckpointWriter(tmp_path / "m") as w:
        w.add("slice", big[10:14])
        w.add("first", shared)
        w.add("second", shared)  # same storage twice in one shard
    file = tmp_path / "m" / "model.safetensors"
    assert file.stat().st_size < 1_000  # the 40 kB base of the slice was not written
    r = CheckpointReader(tmp_path / "m")
    assert torch.equal(r.get("slice"), big[10:14])
    assert torch.equal(r.get("first"), r.get("second"))


def test_write_config_replaces_copied_config(llama_fp32, tmp_path):
    config = json.loads((llama_fp32 / "config.json").read_text())
    config["num_hidden_layers"] = 1
    with CheckpointReader(llama_fp32) as r, CheckpointWriter(tmp_path / "m", copy_from=llama_fp32) as w:
        for name in r.tensor_names():
            if not name.startswith("model.layers.1."):
                w.add(name, r.get(name))
        w.write_config(config)
    out = CheckpointReader(tmp_path / "m")
    assert out.config["num_hidden_layers"] == 1
    assert (tmp_path / "m" / "tokenizer_config.json").read_bytes() == \
        (llama_fp32 / "tokenizer_config.json").read_bytes()


# -- where the output goes ---------------------------------------------------------------


def _write_one(out: Path, value: float, **kw) -> None:
    with CheckpointWriter(out, **kw) as w:
        w.add("x", torch.full((2,), value))
        w.write_config({"value": value})


def test_existing_model_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "m"
    _write_one(out, 1.0)
    before = _siblings(out)
    with pytest.raises(CheckpointError, match=r"already holds a model; pass overwrite=True"):
        CheckpointWriter(out)
    assert _siblings(out) == before
    assert CheckpointReader(out).get("x")[0] == 1.0


def test_overwrite_replaces_the_old_model(tmp_path):
    out = tmp_path / "m"
    _write_one(out, 1.0)
    _write_one(out, 2.0, overwrite=True)
    assert CheckpointReader(out).get("x")[0] == 2.0
    assert _siblings(out) == ["m"]  # the old model and the temp folder are gone


def test_failed_overwrite_keeps_the_old_model(tmp_path):
    out = tmp_path / "m"
    _write_one(out, 1.0)
    with pytest.raises(ValueError):
        with CheckpointWriter(out, overwrite=True) as w:
            w.add("x", torch.zeros(2))
            w.add("x", torch.zeros(2))  # duplicate name
    assert CheckpointReader(out).get("x")[0] == 1.0
    assert _siblings(out) == ["m"]


def test_existing_empty_folder_is_fine(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    _write_one(out, 3.0)
    assert CheckpointReader(out).get("x")[0] == 3.0


def test_folder_of_other_files_is_never_replaced(tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(CheckpointError, match="is not empty and holds no model"):
            CheckpointWriter(out, overwrite=overwrite)
    assert (out / "todo.txt").read_text() == "keep me"


def test_no_tensors_writes_nothing(tmp_path):
    with pytest.raises(CheckpointError, match="no tensors were added"):
        with CheckpointWriter(tmp_path / "m"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="max_shard_bytes"):
        CheckpointWriter(tmp_path / "m", max_shard_bytes=0)
    with pytest.raises(CheckpointError, match=r"'.*missing' \(copy_from\) does not exist"):
        CheckpointWriter(tmp_path / "m", copy_from=tmp_path / "missing")
    with pytest.raises(RuntimeError, match="inside a `with` block"):
        CheckpointWriter(tmp_path / "m").add("x", torch.ones(1))
    assert list(tmp_path.iterdir()) == []
