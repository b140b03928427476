"""Atomic, sharded writing of a Hugging Face model folder.

Tensors go to disk as they are added, into shards inside a hidden sibling folder
(``.OUT_DIR.tmp-<random>``); no shard is ever held in memory (see ``shard_file``). When the
``with`` block ends normally the shards get their final names (``model.safetensors``, or
``model-0000k-of-0000n.safetensors`` plus ``model.safetensors.index.json``), the config and
tokenizer files are copied in, and the folder is renamed to ``OUT_DIR`` in one step. When
the block raises, the hidden folder is deleted and ``OUT_DIR`` is left as it was.

>>> import tempfile, pathlib, torch
>>> out = pathlib.Path(tempfile.mkdtemp()) / "merged"
>>> with CheckpointWriter(out, max_shard_bytes=64) as w:
...     w.add("a", torch.zeros(4, 4))      # 64 bytes: fills the first shard
...     w.add("b", torch.ones(2))          # would overflow it: starts a second shard
...     w.write_config({"model_type": "llama"})
>>> sorted(p.name for p in out.iterdir())
['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from evomerge.checkpoint.shard_file import ShardFile
from evomerge.errors import CheckpointError, ConfigError

# Files that travel with the weights: what AutoConfig, GenerationConfig and AutoTokenizer read.
COPIED_FILES = (
    "config.json", "generation_config.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt", "merges.txt",
    "chat_template.jinja", "chat_template.json",
)
SAFE_SINGLE = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"


def _holds_model(folder: Path) -> bool:
    return (folder / "config.json").exists() or any(folder.glob("*.safetensors"))


def check_target(out_dir: Path, overwrite: bool) -> None:
    """Refuse a target that is a file, a model (unless ``overwrite``) or any other full folder."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise CheckpointError(f"output folder '{out_dir}' is an existing file")
    if _holds_model(out_dir):
        if not overwrite:
            raise CheckpointError(
                f"output folder '{out_dir}' already holds a model; pass overwrite=True "
                f"(command line: --overwrite) to replace it"
            )
    elif any(out_dir.iterdir()):
        # Replacing a folder of unrelated files would delete them: never do it.
        raise CheckpointError(
            f"output folder '{out_dir}' is not empty and holds no model; choose an empty "
            f"or new folder"
        )


def fsync_path(path: Path) -> None:
    """fsync one file or folder by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointWriter:
    """Write a model folder atomically, shard by shard; use it as a context manager.

    A new shard starts when adding a tensor would take the current one past
    ``max_shard_bytes``; a tensor larger than the limit gets a shard of its own.
    ``copy_from`` names a model folder whose config, generation config and tokenizer files
    are copied; :meth:`write_config` replaces the config with a new one.
    """

    def __init__(self, out_dir: Path | str, max_shard_bytes: int = 5 * 2**30,
                 overwrite: bool = False, copy_from: Path | str | None = None):
        if not isinstance(max_shard_bytes, int) or max_shard_bytes <= 0:
            raise ConfigError(None, "max_shard_bytes", max_shard_bytes,
                              "must be a positive whole number of bytes")
        self.out_dir = Path(os.path.abspath(out_dir))
        self.max_shard_bytes = max_shard_bytes
        self.overwrite = overwrite
        self.copy_from = Path(copy_from) if copy_from is not None else None
        if self.copy_from is not None and not self.copy_from.is_dir():
            raise CheckpointError(f"model folder '{self.copy_from}' (copy_from) does not exist")
        check_target(self.out_dir, overwrite)
        self._tmp: Path | None = None
        self._shard: ShardFile | None = None
        self._shard_files: list[tuple[Path, list[str]]] = []  # (temp file, names in it)
        self._names: set[str] = set()
        self._total_bytes = 0
        self._config: dict | None = None
        self._texts: dict[str, str] = {}

    # -- the with block --------------------------------------------------------------

    def __enter__(self) -> CheckpointWriter:
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.tmp-",
                                          dir=self.out_dir.parent))
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            self._commit()
        except BaseException:
            self._abort()
            raise

    def add(self, name: str, tensor: torch.Tensor) -> None:
        """Write ``tensor`` under ``name`` into the current shard, starting a new one when
        it would take the current one past ``max_shard_bytes``."""
        folder = self._folder()  # fail fast outside the with block
        if name in self._names:
            raise ValueError(f"tensor {name!r} was already added to '{self.out_dir}'")
        nbytes = tensor.numel() * tensor.element_size()
        if self._shard and self._shard.nbytes + nbytes > self.max_shard_bytes:
            self._flush()
        if self._shard is None:
            self._shard = ShardFile(folder / f"shard-{len(self._shard_files) + 1:05d}.safetensors")
        self._shard.append(name, tensor)
        self._total_bytes += nbytes
        self._names.add(name)

    def write_config(self, config: dict) -> None:
        """Use ``config`` as the output ``config.json`` instead of the copied one."""
        try:
            json.dumps(config)
        except (TypeError, ValueError) as e:
            raise ValueError(f"config for '{self.out_dir}' is not JSON-serialisable: {e}") from None
        self._config = dict(config)

    def write_text(self, name: str, text: str) -> None:
        """Add a text file ``name`` (a plain file name) to the folder, committed with it."""
        if not name or Path(name).name != name or name.startswith("."):
            raise ValueError(f"{name!r} is not a plain file name")
        self._texts[name] = text

    # -- internals -------------------------------------------------------------------

    def _folder(self) -> Path:
        """The hidden folder being written; it exists only inside the ``with`` block."""
        if self._tmp is None:
            raise RuntimeError("CheckpointWriter.add must be called inside a `with` block")
        return self._tmp

    def _flush(self) -> None:
        shard, self._shard = self._shard, None
        shard.close(metadata={"format": "pt"})
        self._shard_files.append((shard.path, sorted(shard.entries)))

    def _commit(self) -> None:
        tmp = self._folder()
        if self._shard:
            self._flush()
        if not self._shard_files:
            raise CheckpointError(f"no tensors were added; '{self.out_dir}' was not written")
        written = self._name_shards()
        self._copy_side_files()
        if self._config is not None:
            written.append(tmp / "config.json")
            written[-1].write_text(json.dumps(self._config, indent=2) + "\n")
        for name, text in self._texts.items():
            written.append(tmp / name)
            written[-1].write_text(text)
        for file in written:
            if not file.name.endswith(".safetensors"):  # shards were fsynced when closed
                fsync_path(file)
        self._move_into_place()

    def _name_shards(self) -> list[Path]:
        """Give the temp shards their final names; write the index when there are several."""
        tmp = self._folder()
        count = len(self._shard_files)
        if count == 1:
            final = tmp / SAFE_SINGLE
            os.rename(self._shard_files[0][0], final)
            return [final]
        weight_map: dict[str, str] = {}
        finals = []
        for k, (file, names) in enumerate(self._shard_files, start=1):
            final = tmp / f"model-{k:05d}-of-{count:05d}.safetensors"
            os.rename(file, final)
            finals.append(final)
            weight_map.update((n, final.name) for n in names)
        index = {"metadata": {"total_size": self._total_bytes},
                 "weight_map": dict(sorted(weight_map.items()))}
        (tmp / SAFE_INDEX).write_text(json.dumps(index, indent=2) + "\n")
        return finals + [tmp / SAFE_INDEX]

    def _copy_side_files(self) -> None:
        if self.copy_from is None:
            return
        for name in COPIED_FILES:
            source = self.copy_from / name
            if source.is_file() and not (name == "config.json" and self._config is not None):
                shutil.copyfile(source, self._folder() / name)

    def _move_into_place(self) -> None:
        """Rename the temp folder to ``out_dir``; an old model is deleted only afterwards."""
        tmp = self._folder()
        check_target(self.out_dir, self.overwrite)  # it may have changed while we wrote
        old: Path | None = None
        if self.out_dir.exists():
            if _holds_model(self.out_dir):
                old = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.old-",
                                            dir=self.out_dir.parent))
                os.rename(self.out_dir, old / "model")
            else:
                self.out_dir.rmdir()  # empty: rename cannot replace a folder portably
        try:
            os.rename(tmp, self.out_dir)
        except BaseException:
            if old is not None:
                os.rename(old / "model", self.out_dir)
                old.rmdir()
            raise
        self._tmp = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def _abort(self) -> None:
        if self._shard is not None:
            self._shard.abort()
            self._shard = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
