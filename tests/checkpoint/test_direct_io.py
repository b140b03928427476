"""Direct-I/O appends: exact bytes across chunk edges, fallbacks, and failures surfacing."""

import errno
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from evomerge.checkpoint import CheckpointWriter, direct_io
from evomerge.checkpoint.direct_io import BLOCK, DirectAppender
from evomerge.checkpoint.shard_file import ShardFile


def pieces(seed: int, sizes: list[int]) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]


# piece sizes that fall short of a chunk, fill one exactly, and span several
SIZES = [1, 4095, 4096, 3 * BLOCK + 17, 0, 2 * BLOCK, 5 * BLOCK + 1, 7]


@pytest.mark.parametrize("chunk_blocks,slots", [(1, 2), (2, 3), (64, 3)])
def test_appended_bytes_land_exactly_after_the_start(tmp_path, chunk_blocks, slots):
    path = tmp_path / "f"
    prefix = b"P" * (2 * BLOCK)
    path.write_bytes(prefix)
    data = pieces(0, SIZES)
    appender = DirectAppender(path, start=2 * BLOCK, chunk_bytes=chunk_blocks * BLOCK,
                              slots=slots)
    for piece in data:
        appender.write(memoryview(piece))
    end = appender.finish()
    body = b"".join(data)
    assert end == 2 * BLOCK + len(body)
    written = path.read_bytes()
    assert written[:2 * BLOCK] == prefix  # the caller's bytes before the start are kept
    assert written[2 * BLOCK:end] == body
    assert len(written) == -(-end // BLOCK) * BLOCK  # padded to a whole block at most


def test_misaligned_start_or_chunk_is_refused(tmp_path):
    with pytest.raises(ValueError, match="multiples of 4096"):
        DirectAppender(tmp_path / "f", start=100)
    with pytest.raises(ValueError, match="multiples of 4096"):
        DirectAppender(tmp_path / "f", start=0, chunk_bytes=1000)


def shard_tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"a": torch.randn(3000, 700, generator=g),  # 8.4 MB: crosses a chunk edge
            "b": torch.randn(5, generator=g).to(torch.bfloat16),
            "c": torch.randn(2100, 1000, generator=g),
            "empty": torch.zeros(0)}


def write_shard(path, direct: bool) -> None:
    shard = ShardFile(path, direct=direct)
    for name, t in shard_tensors().items():
        shard.append(name, t)
    shard.close({"format": "pt"})


def test_direct_and_cached_shards_are_the_same_file(tmp_path):
    write_shard(tmp_path / "direct.safetensors", direct=True)
    write_shard(tmp_path / "cached.safetensors", direct=False)
    assert (tmp_path / "direct.safetensors").read_bytes() == \
        (tmp_path / "cached.safetensors").read_bytes()
    loaded = load_file(tmp_path / "direct.safetensors")
    for name, t in shard_tensors().items():
        assert torch.equal(loaded[name], t)


def test_platform_without_direct_io_writes_through_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(direct_io, "direct_flag", lambda: 0)
    appender = DirectAppender(tmp_path / "f", start=0, chunk_bytes=BLOCK)
    assert not appender.direct
    appender.write(memoryview(b"xyz" * 5000))
    assert appender.finish() == 15000
    assert (tmp_path / "f").read_bytes()[:15000] == b"xyz" * 5000


def refusing_pwrite(monkeypatch, refused_errno: int, only_direct: bool):
    """os.pwrite that fails with ``refused_errno`` on the direct descriptor (or on all)."""
    real = os.pwrite
    direct_fds = set()
    real_open = os.open

    def tracking_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if flags & direct_io.direct_flag():
            direct_fds.add(fd)
        return fd

    def pwrite(fd, data, offset):
        if fd in direct_fds or not only_direct:
            raise OSError(refused_errno, os.strerror(refused_errno))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "open", tracking_open)
    monkeypatch.setattr(os, "pwrite", pwrite)


@pytest.mark.skipif(not direct_io.direct_flag(), reason="the platform has no O_DIRECT")
def test_file_system_refusing_direct_writes_falls_back(tmp_path, monkeypatch):
    refusing_pwrite(monkeypatch, errno.EINVAL, only_direct=True)
    appender = DirectAppender(tmp_path / "f", start=0, chunk_bytes=BLOCK)
    assert appender.direct  # the open went through; the first write is refused
    body = b"".join(pieces(2, SIZES))
    appender.write(memoryview(body))
    assert appender.finish() == len(body)
    assert not appender.direct
    assert (tmp_path / "f").read_bytes()[:len(body)] == body


def test_failed_write_fails_the_checkpoint_and_leaves_nothing(tmp_path, monkeypatch):
    refusing_pwrite(monkeypatch, errno.ENOSPC, only_direct=False)
    out = tmp_path / "m"
    with pytest.raises(OSError, match="No space left"):
        with CheckpointWriter(out) as w:
            w.add("w", torch.zeros(3 << 20))  # 12 MB: more than one chunk
            w.add("v", torch.zeros(10))
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
