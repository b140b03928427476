"""Durable shard writes: direct I/O against the page cache.

Writes the same tensors (float32, the mix of sizes of a Llama checkpoint) into a
safetensors shard three ways, taking turns, with the page cache flushed (``sync``, not
timed) before each run, and prints the median wall time and throughput of each:

- ``direct``: ``ShardFile`` with direct I/O (evomerge's default), fsynced on close;
- ``cached + fsync``: ``ShardFile`` through the page cache, writeback started as it
  grows, fsynced on close (evomerge's fallback where direct I/O is refused);
- ``cached, no fsync``: a plain ``write`` of the same bytes, not made durable (what a
  tool that does not fsync pays while the data sits in the page cache).

    python benchmarks/durable_write.py --gb 2 --rounds 3 --dir runs
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from evomerge.checkpoint.shard_file import ShardFile


def tensors(total_bytes: int) -> list[torch.Tensor]:
    """Random float32 tensors shaped like one Llama layer after another, ~total_bytes."""
    hidden, mlp = 1024, 2816
    layer = [(hidden, hidden)] * 4 + [(mlp, hidden)] * 2 + [(hidden, mlp), (hidden,), (hidden,)]
    out, size, g = [], 0, torch.Generator().manual_seed(0)
    while size < total_bytes:
        for shape in layer:
            out.append(torch.randn(shape, generator=g))
            size += out[-1].numel() * 4
    return out


def write_shard(path: Path, data: list[torch.Tensor], direct: bool) -> None:
    shard = ShardFile(path, direct=direct)
    for i, t in enumerate(data):
        shard.append(f"t{i}", t)
    shard.close({"format": "pt"})


def write_plain(path: Path, data: list[torch.Tensor]) -> None:
    with open(path, "wb") as f:
        for t in data:
            f.write(memoryview(t.view(-1).view(torch.uint8).numpy()))


WAYS = {
    "direct": lambda p, d: write_shard(p, d, direct=True),
    "cached + fsync": lambda p, d: write_shard(p, d, direct=False),
    "cached, no fsync": write_plain,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gb", type=float, default=1.0, help="bytes written per run, in GB")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path("runs"),
                    help="folder on the disk to measure (not tmpfs)")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    data = tensors(int(args.gb * 1e9))
    nbytes = sum(t.numel() * 4 for t in data)
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    work = Path(tempfile.mkdtemp(dir=args.dir, prefix="durable-write-"))
    try:
        for _ in range(args.rounds):
            for way, write in WAYS.items():
                path = work / "shard.safetensors"
                path.unlink(missing_ok=True)
                os.sync()  # no run pays for the previous run's writeback
                start = time.perf_counter()
                write(path, data)
                times[way].append(time.perf_counter() - start)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reference = statistics.median(times["cached + fsync"])
    print(f"{nbytes / 1e9:.2f} GB in {len(data)} tensors, median of {args.rounds} runs, "
          f"in {args.dir}\n")
    print("| way | s | GB/s | vs cached + fsync |\n|---|---|---|---|")
    for way, ts in times.items():
        s = statistics.median(ts)
        print(f"| {way} | {s:.2f} | {nbytes / s / 1e9:.2f} | {reference / s:.2f}x |")


if __name__ == "__main__":
    main()
