"""One weight file, opened once and read one tensor at a time.

A :class:`SafetensorsFile` memory-maps the file; shape and dtype come from its header, so
asking about a tensor never loads it. A :class:`PickleFile` reads a PyTorch ``.bin`` with
``torch.load(weights_only=True)`` (memory-mapped when the file is in the zip format); it is
only ever opened after the user has allowed pickle checkpoints.

>>> import tempfile, pathlib, torch
>>> from safetensors.torch import save_file
>>> p = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
>>> save_file({"a": torch.ones(2, 3, dtype=torch.bfloat16)}, p)
>>> f = open_weight_file(p)
>>> f.names(), f.shape("a"), f.dtype("a")
(['a'], (2, 3), torch.bfloat16)
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from safetensors import SafetensorError, safe_open

from evomerge.errors import CheckpointError

# safetensors header dtype codes -> torch dtypes (only those this torch build has).
_SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    code: getattr(torch, attr)
    for code, attr in {
        "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
        "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
        "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
        "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
    }.items()
    if hasattr(torch, attr)
}


class WeightFile(Protocol):
    """What the reader needs from one weight file, whatever its format."""

    path: Path

    def names(self) -> list[str]: ...
    def __contains__(self, name: str) -> bool: ...
    def shape(self, name: str) -> tuple[int, ...]: ...
    def dtype(self, name: str) -> torch.dtype: ...
    def get(self, name: str) -> torch.Tensor:
        """The stored tensor; may be a view on the file's memory map (callers copy)."""


class SafetensorsFile:
    """A memory-mapped ``.safetensors`` file."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._handle = safe_open(str(path), framework="pt", device="cpu")
        except SafetensorError as e:
            raise CheckpointError(
                f"weight file '{path}' is not a valid safetensors file ({e})"
            ) from None
        self._names = set(self._handle.keys())

    def names(self) -> list[str]:
        return sorted(self._names)

    def __contains__(self, name: str) -> bool:
        return name in self._names

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._handle.get_slice(name).get_shape())

    def dtype(self, name: str) -> torch.dtype:
        code = self._handle.get_slice(name).get_dtype()
        try:
            return _SAFETENSORS_DTYPES[code]
        except KeyError:
            raise CheckpointError(
                f"weight file '{self.path}': tensor {name!r} has dtype {code}, which this "
                f"torch build cannot represent"
            ) from None

    def get(self, name: str) -> torch.Tensor:
        return self._handle.get_tensor(name)


class PickleFile:
    """A PyTorch pickle state dict (``pytorch_model*.bin``), loaded with ``weights_only=True``."""

    def __init__(self, path: Path):
        self.path = path
        try:
            state = self._load(path)
        except Exception as e:  # torch raises many types for corrupt or unsafe files
            raise CheckpointError(
                f"weight file '{path}' could not be read as a PyTorch state dict "
                f"with weights_only=True ({type(e).__name__}: {e})"
            ) from None
        if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
        ):
            raise CheckpointError(
                f"weight file '{path}' does not hold a flat name -> tensor state dict"
            )
        self._state: dict[str, torch.Tensor] = state

    @staticmethod
    def _load(path: Path) -> object:
        try:  # zip-format files can be memory-mapped: tensors stay on disk until used
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)

    def names(self) -> list[str]:
        return sorted(self._state)

    def __contains__(self, name: str) -> bool:
        return name in self._state

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._state[name].shape)

    def dtype(self, name: str) -> torch.dtype:
        return self._state[name].dtype

    def get(self, name: str) -> torch.Tensor:
        return self._state[name]


def open_weight_file(path: Path) -> WeightFile:
    """Open ``path`` by its suffix: ``.safetensors`` or a pickle ``.bin``/``.pt``/``.pth``."""
    if path.suffix == ".safetensors":
        return SafetensorsFile(path)
    return PickleFile(path)
