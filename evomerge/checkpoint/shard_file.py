"""One safetensors shard written tensor by tensor, never held in memory as a whole.

The safetensors format is ``<8-byte header length><JSON header><data>``, and the header
may be padded with spaces. So the shard reserves header room up front, appends each
tensor's bytes as it arrives, and writes the header last; only when the header outgrows
the reserved room (or the shard is small) is the data copied once into a new file.
Where the file system allows, the data skips the page cache (see ``direct_io``).

>>> import tempfile, pathlib, torch
>>> from safetensors.torch import load_file
>>> path = pathlib.Path(tempfile.mkdtemp()) / "s.safetensors"
>>> shard = ShardFile(path)
>>> shard.append("w", torch.arange(6, dtype=torch.float32).reshape(2, 3))
>>> shard.close({"format": "pt"})
>>> load_file(path)["w"].tolist()
[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import torch

from evomerge.checkpoint.direct_io import BLOCK, DirectAppender

SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
    torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32", torch.int16: "I16",
    torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
    torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
}
#: header room reserved per shard: ~500 tensor entries (a 5 GB shard of a 7B model has ~100);
#: with the 8-byte length in front, the data starts at 64 KiB, on a block boundary, so it
#: can be written directly
RESERVED_HEADER = (64 << 10) - 8
#: below this much data a shard is rewritten with an exact header: the copy costs nothing
#: and small checkpoints carry no padding
COMPACT_BELOW = 16 << 20


#: Linux's SYNC_FILE_RANGE_WRITE: start writing the range to disk, do not wait
_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Callable[..., int] | None:
    """libc's ``sync_file_range`` where there is one (Linux), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return call


def start_writeback(file, offset: int, size: int) -> None:
    """Have the kernel start writing ``size`` bytes at ``offset`` to disk, not waiting.

    The shard is fsynced when it is closed; written back as it grows, the disk works
    while the merge goes on, and that fsync finds almost nothing left to do. A no-op
    where the system has no ``sync_file_range``, or when it fails (the fsync still runs).
    """
    call = _sync_file_range()
    if call is None or size <= 0:
        return
    file.flush()  # small writes may still sit in Python's buffer
    call(file.fileno(), offset, size, _SYNC_FILE_RANGE_WRITE)


class ShardFile:
    """A shard being written; :meth:`close` makes it durable (fsync).

    ``direct`` writes the data past the page cache where the file system allows it (see
    ``direct_io``); otherwise through the cache, with writeback started as it grows.
    """

    def __init__(self, path: Path, reserved: int = RESERVED_HEADER, direct: bool = True):
        self.path = Path(path)
        self.reserved = reserved
        self.entries: dict[str, dict] = {}
        self.nbytes = 0
        self._file = open(self.path, "wb")
        data_start = 8 + reserved
        aligned = data_start % BLOCK == 0
        self._direct = DirectAppender(self.path, data_start) if direct and aligned else None
        if self._direct is None:
            self._file.seek(data_start)

    def append(self, name: str, tensor: torch.Tensor) -> None:
        tensor = tensor.detach().to("cpu").contiguous()
        if tensor.dtype not in SAFETENSORS_DTYPES:
            raise TypeError(f"tensor {name!r} has dtype {tensor.dtype}, which safetensors "
                            "cannot store")
        raw = tensor.reshape(-1).view(torch.uint8).numpy() if tensor.numel() else b""
        size = tensor.numel() * tensor.element_size()
        if self._direct is not None:
            self._direct.write(memoryview(raw))
        else:
            self._file.write(memoryview(raw))
            start_writeback(self._file, 8 + self.reserved + self.nbytes, size)
        self.entries[name] = {"dtype": SAFETENSORS_DTYPES[tensor.dtype],
                              "shape": list(tensor.shape),
                              "data_offsets": [self.nbytes, self.nbytes + size]}
        self.nbytes += size

    def close(self, metadata: dict[str, str] | None = None) -> None:
        if self._direct is not None:
            end = self._direct.finish()
            self._direct = None
            self._file.truncate(end)  # drop the block padding
        header = dict(sorted(self.entries.items()))
        if metadata:
            header = {"__metadata__": metadata, **header}
        blob = json.dumps(header, separators=(",", ":")).encode()
        if len(blob) <= self.reserved and self.nbytes >= COMPACT_BELOW:
            self._file.seek(0)
            self._file.write(struct.pack("<Q", self.reserved))
            self._file.write(blob + b" " * (self.reserved - len(blob)))
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            return
        self._file.close()
        self._rewrite_with_header(blob)

    def _rewrite_with_header(self, blob: bytes) -> None:
        """Copy the data once behind a header of exactly the right size."""
        padded = blob + b" " * (-(8 + len(blob)) % 8)  # keep the data 8-byte aligned
        tmp = self.path.with_suffix(".rewrite")
        with open(self.path, "rb") as src, open(tmp, "wb") as dst:
            dst.write(struct.pack("<Q", len(padded)))
            dst.write(padded)
            src.seek(8 + self.reserved)
            shutil.copyfileobj(src, dst, length=64 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, self.path)

    def abort(self) -> None:
        if self._direct is not None:
            self._direct.close()
            self._direct = None
        if not self._file.closed:
            self._file.close()
