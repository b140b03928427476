"""Lazy reading of a Hugging Face model folder, one tensor at a time.

The folder holds ``model.safetensors`` or a ``model.safetensors.index.json`` whose
``weight_map`` names the shard of every tensor. Shards are memory-mapped when first
needed and kept open, so names, shapes and dtypes are known without loading any tensor,
and :meth:`CheckpointReader.get` reads just the one asked for.

Pickle checkpoints (``pytorch_model.bin``, ``pytorch_model.bin.index.json``) can run code
when loaded with full pickle; they are refused unless ``allow_pickle=True`` (on the command
line ``--allow-pickle``), and even then read with ``torch.load(weights_only=True)``.

>>> import tempfile, pathlib
>>> from evomerge.testing.random_models import save_random_llama
>>> folder = save_random_llama(pathlib.Path(tempfile.mkdtemp()) / "m", num_layers=2)
>>> with CheckpointReader(folder) as r:
...     print(r.shape("model.layers.0.mlp.up_proj.weight"), r.dtype("lm_head.weight"))
(80, 32) torch.float32
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import torch

from evomerge.checkpoint.architecture import is_output_head, is_token_embedding
from evomerge.checkpoint.weight_files import WeightFile, open_weight_file
from evomerge.errors import CheckpointError

SAFE_SINGLE = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
PICKLE_SINGLE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"


class CheckpointReader:
    """A model folder opened lazily: names, shapes and dtypes from headers, tensors on demand.

    ``get`` returns a tensor the caller owns (a copy, never a view on the memory map), so
    editing it in place does not change what later reads return.

    Tied embeddings: when the model ties its output head to the token embedding
    (``tie_word_embeddings`` in ``config.json``, true when absent as in older transformers
    configs) and the folder stores no head, :attr:`tied_embeddings` is true and
    ``get("lm_head.weight")`` (also ``shape``/``dtype``/``nbytes``) answers with the token
    embedding. ``tensor_names()`` lists only the tensors actually stored.
    """

    def __init__(self, path: Path | str, allow_pickle: bool = False):
        self.path = Path(path)
        self.allow_pickle = allow_pickle
        if not self.path.exists():
            raise CheckpointError(f"model folder '{self.path}' does not exist")
        if not self.path.is_dir():
            raise CheckpointError(
                f"model folder '{self.path}' is a file; pass the folder that holds "
                f"config.json and the weights"
            )
        self.config: dict = self._read_config()
        self._files: dict[Path, WeightFile] = {}
        self._where: dict[str, Path] = self._locate_weights()
        self._names = sorted(self._where)
        self._head_alias = self._find_tied_head()

    # -- opening ---------------------------------------------------------------------

    def _read_config(self) -> dict:
        file = self.path / "config.json"
        if not file.is_file():
            return {}
        try:
            config = json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"'{file}' is not valid JSON ({e})") from None
        if not isinstance(config, dict):
            raise CheckpointError(f"'{file}' must hold a JSON object, got {type(config).__name__}")
        return config

    def _locate_weights(self) -> dict[str, Path]:
        """Map every tensor name to the file that stores it (transformers' lookup order)."""
        if (self.path / SAFE_SINGLE).is_file():
            return self._names_in(self.path / SAFE_SINGLE)
        if (self.path / SAFE_INDEX).is_file():
            return self._read_index(self.path / SAFE_INDEX)
        for pickle_name in (PICKLE_SINGLE, PICKLE_INDEX):
            if (self.path / pickle_name).is_file():
                if not self.allow_pickle:
                    raise CheckpointError(
                        f"model folder '{self.path}' stores its weights as a pickle "
                        f"('{pickle_name}'), which can run code when loaded; pass "
                        f"allow_pickle=True (command line: --allow-pickle) to read it with "
                        f"torch.load(weights_only=True), or convert it to safetensors"
                    )
                file = self.path / pickle_name
                return self._read_index(file) if pickle_name == PICKLE_INDEX else self._names_in(file)
        found = sorted(p.name for p in self.path.iterdir())
        raise CheckpointError(
            f"model folder '{self.path}' has no weights: expected '{SAFE_SINGLE}' or "
            f"'{SAFE_INDEX}' (found: {', '.join(found) or 'nothing'})"
        )

    def _names_in(self, file: Path) -> dict[str, Path]:
        return {name: file for name in self._file(file).names()}

    def _read_index(self, index: Path) -> dict[str, Path]:
        try:
            data = json.loads(index.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"index '{index}' is not valid JSON ({e})") from None
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(
                f"index '{index}': field 'weight_map' must be a non-empty object mapping "
                f"tensor names to shard files"
            )
        by_shard: dict[str, list[str]] = {}
        for name, shard in weight_map.items():
            if not isinstance(shard, str):
                raise CheckpointError(
                    f"index '{index}': field 'weight_map.{name}' = {shard!r}: must be a "
                    f"shard file name"
                )
            by_shard.setdefault(shard, []).append(name)
        for shard, names in by_shard.items():
            if not (self.path / shard).is_file():
                raise CheckpointError(
                    f"index '{index}' maps {len(names)} tensor(s) (e.g. {names[0]!r}) to "
                    f"shard {shard!r}, which does not exist in '{self.path}'"
                )
        return {name: self.path / shard for name, shard in weight_map.items()}

    def _file(self, file: Path) -> WeightFile:
        """The open handle of ``file``; opened on first use and kept (reopening is slow)."""
        handle = self._files.get(file)
        if handle is None:
            handle = self._files[file] = open_weight_file(file)
        return handle

    def _find_tied_head(self) -> tuple[str, str] | None:
        """``(head name, token-embedding name)`` when the head is tied and not stored."""
        if not self.config.get("tie_word_embeddings", True):
            return None
        embeddings = [n for n in self._names if is_token_embedding(n)]
        if len(embeddings) != 1 or any(is_output_head(n) for n in self._names):
            return None
        return "lm_head.weight", embeddings[0]

    # -- queries ---------------------------------------------------------------------

    @property
    def tied_embeddings(self) -> bool:
        """Whether ``lm_head.weight`` is absent and served by the token embedding."""
        return self._head_alias is not None

    def tensor_names(self) -> list[str]:
        """Names of the stored tensors, sorted."""
        return list(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._where or (self._head_alias is not None and name == self._head_alias[0])

    def _resolve(self, name: str) -> tuple[WeightFile, str]:
        """The open file holding ``name`` and the stored name to ask it for."""
        if self._head_alias is not None and name == self._head_alias[0]:
            name = self._head_alias[1]
        file = self._where.get(name)
        if file is None:
            nearest = difflib.get_close_matches(name, self._names, n=3, cutoff=0.0)
            raise CheckpointError(
                f"tensor {name!r} is not in model '{self.path}'; nearest names: "
                f"{', '.join(repr(n) for n in nearest)}"
            )
        handle = self._file(file)
        if name not in handle:
            raise CheckpointError(
                f"model '{self.path}': the index places tensor {name!r} in '{file.name}', "
                f"but that file does not contain it"
            )
        return handle, name

    def shape(self, name: str) -> tuple[int, ...]:
        """Shape of ``name``, read from the file header."""
        handle, stored = self._resolve(name)
        return handle.shape(stored)

    def dtype(self, name: str) -> torch.dtype:
        """Stored dtype of ``name``, read from the file header (the tensor is not loaded)."""
        handle, stored = self._resolve(name)
        return handle.dtype(stored)

    def nbytes(self, name: str) -> int:
        """Bytes ``name`` takes in its stored dtype."""
        numel = 1
        for size in self.shape(name):
            numel *= size
        return numel * self.dtype(name).itemsize

    def get(self, name: str, device: torch.device | str = "cpu",
            dtype: torch.dtype | None = None, copy: bool = True) -> torch.Tensor:
        """Load one tensor onto ``device``, cast to ``dtype`` when given.

        The result is a fresh tensor: safetensors hands out views on its memory map, and an
        in-place edit of such a view would show up in the next read. ``copy=False`` hands
        out that view when no cast or move is needed, for a caller that only reads it (a
        disk-to-disk merge, whose operators never write to their inputs) and so saves a
        pass over memory.
        """
        handle, stored = self._resolve(name)
        return handle.get(stored).to(device=device, dtype=dtype, copy=copy)

    # -- lifetime --------------------------------------------------------------------

    def close(self) -> None:
        """Drop the open file handles (the memory maps close with them)."""
        self._files.clear()

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CheckpointReader('{self.path}', {len(self._names)} tensors)"
