"""Disk-to-disk merging: stream tensor by tensor from source folders to a new checkpoint.

Peak memory stays near (number of sources + 2) x the largest tensor: each output tensor's
inputs are read (memory-mapped), merged, cast, handed to the writer, and dropped.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from evomerge.checkpoint import CheckpointReader, CheckpointWriter, check_compatible
from evomerge.checkpoint.architecture import (
    LAYER_COUNT_KEYS,
    is_output_head,
    tensor_info,
    with_layer_count,
    with_vocab_size,
)
from evomerge.checkpoint.modules import MODULAR_ARCHITECTURES, architecture_of, module_facts
from evomerge.checkpoint.writer import check_target
from evomerge.errors import CheckpointError, ConfigError
from evomerge.merge.apply import merged_tensor
from evomerge.merge.dtypes import COMPUTE_MODES, torch_dtype
from evomerge.merge.engine import MergeContext
from evomerge.merge.in_dtype import is_16_bit, merged_in_dtype
from evomerge.merge.plan import TensorTask, plan_merge
from evomerge.merge.recipe import Recipe
from evomerge.merge.vocabulary import (
    Vocabulary,
    build_vocabulary,
    is_vocabulary_tensor,
    tokenizer_folder,
    tokenizer_settings,
)

#: the recipe as it ran, in every merged folder
RECIPE_FILE = "evomerge_recipe.yaml"


class BackgroundWrites:
    """Hands finished tensors to the checkpoint writer on a second thread, or writes
    them at once (``inline``).

    Writing a tensor to its shard (a copy into the page cache) and merging the next one
    both release the GIL, so they overlap. At most ``SLOTS`` tensors are in flight; a slot
    is reused only after its write has finished, so the buffer behind it is free again.
    A failed write is raised in the merging thread at its next call.

    Overlap pays when the merge runs on a GPU. On CPU the merge's ops already use every
    core, and a writer thread competing for one stalls each op's parallel region, so
    CPU merges write inline (timed in ``benchmarks/RESULTS.md``).
    """

    SLOTS = 2

    def __init__(self, writer: CheckpointWriter, inline: bool = False):
        self.writer = writer
        self._pool = None if inline else ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="evomerge-write")
        self._pending: dict[int, Future] = {}
        self._next = 0

    def free_slot(self) -> int:
        slot, self._next = self._next, (self._next + 1) % self.SLOTS
        pending = self._pending.pop(slot, None)
        if pending is not None:
            pending.result()
        return slot

    def add(self, slot: int, name: str, tensor: torch.Tensor) -> None:
        if self._pool is None:
            self.writer.add(name, tensor)
        else:
            self._pending[slot] = self._pool.submit(self.writer.add, name, tensor)

    def wait(self) -> None:
        for slot in list(self._pending):
            self._pending.pop(slot).result()

    def __enter__(self) -> BackgroundWrites:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


@dataclass
class MergeReport:
    out_dir: Path
    tensors: int
    bytes_written: int
    seconds: float


def open_sources(recipe: Recipe, allow_pickle: bool = False) -> dict[str, CheckpointReader]:
    """Open every model the recipe reads; missing or unsafe folders fail here."""
    readers = {m: CheckpointReader(m, allow_pickle=allow_pickle) for m in recipe.source_models()}
    for model, reader in readers.items():
        # without module names for its encoder and decoder, a merge's gradients, slices
        # and modules would not be mergekit's, so such models are refused
        architecture = architecture_of(reader.config)
        if reader.config.get("is_encoder_decoder") and architecture not in MODULAR_ARCHITECTURES:
            known = ", ".join(a for a, m in MODULAR_ARCHITECTURES.items() if "encoder" in m)
            raise CheckpointError(f"model '{model}' is an encoder-decoder model "
                                  f"({architecture}): of those, evomerge merges {known} only")
    if not recipe.has_slices():  # slices may combine differently shaped models on purpose
        check_compatible(list(readers.values()), ignore=is_vocabulary_tensor)
    if not tokenizer_settings(recipe):  # else vocabulary matrices are aligned first
        _check_same_vocabulary(readers)
    return readers


def _check_same_vocabulary(readers: Mapping[str, CheckpointReader]) -> None:
    sizes = {}
    for model, reader in readers.items():
        names = [n for n in reader.tensor_names() if is_vocabulary_tensor(n)]
        sizes[model] = {reader.shape(n)[0] for n in names}
    if len({frozenset(s) for s in sizes.values()}) > 1:
        rows = ", ".join(f"{Path(m).name}: {sorted(s)}" for m, s in sizes.items())
        raise CheckpointError(f"the models' vocabularies differ (vocabulary rows {rows}): "
                              "set 'tokenizer_source' (base, union or a model folder) so "
                              "their embedding rows are aligned before merging")


def output_dtype(recipe: Recipe, override: str | None,
                 readers: Mapping[str, CheckpointReader], task: TensorTask) -> torch.dtype:
    """The dtype one tensor is written in: the override, ``out_dtype`` or ``dtype``, else
    the one it was computed in (of checkpoints that mix dtypes, the promotion of its
    inputs', as mergekit writes it)."""
    chosen = override or recipe.out_dtype or recipe.dtype
    return torch_dtype(chosen) if chosen else task_dtype(recipe, readers, task)


def task_dtype(recipe: Recipe, readers: Mapping[str, CheckpointReader],
               task: TensorTask) -> torch.dtype:
    """The dtype mergekit computes one tensor in: the recipe's ``dtype``, else the
    promotion of its inputs' stored dtypes."""
    if recipe.dtype:
        return torch_dtype(recipe.dtype)
    inputs = [*task.inputs, *([task.base] if task.base else [])]
    stored = {readers[m].dtype(n) for m, n in inputs}
    return functools.reduce(torch.promote_types, stored)


def merge_to_disk(recipe: Recipe, out_dir: Path | str, *, device: str = "cpu",
                  dtype: str | None = None, max_shard_bytes: int = 5 * 2**30,
                  overwrite: bool = False, allow_pickle: bool = False,
                  progress: Callable[[int, int], None] | None = None,
                  recipe_file: Path | str | None = None,
                  records: Mapping[str, str] | None = None,
                  compute: str = "dtype") -> MergeReport:
    """Build the recipe's merged model as a Hugging Face folder at ``out_dir``.

    ``compute="dtype"`` computes each tensor as mergekit does: in the recipe's ``dtype``
    (else the sources' stored one), so a 16-bit recipe rounds where mergekit rounds
    (:mod:`~evomerge.merge.in_dtype`). ``compute="float32"`` reads and merges in float32
    (float64 with ``dtype="float64"``) and casts only the result.

    The folder always holds the recipe as it ran (``evomerge_recipe.yaml``); ``records``
    adds more text files (file name -> contents), such as a model card, written with the
    weights and appearing with them.

    >>> # see tests/merge/test_merge_cli.py for end-to-end use
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    check_target(out_dir, overwrite)  # before loading anything
    readers = open_sources(recipe, allow_pickle)
    tasks = plan_merge(recipe, lambda m: readers[m].tensor_names(), recipe_file,
                       lambda m: architecture_of(readers[m].config))
    template = recipe.base_model or recipe.source_models()[0]
    config_source = readers[template]
    vocabulary = build_vocabulary(recipe, {m: r.config for m, r in readers.items()},
                                  recipe_file)
    if compute not in COMPUTE_MODES:
        raise ConfigError(None, "compute", compute,
                          f"must be one of {', '.join(COMPUTE_MODES)}")
    in_float64 = dtype == "float64" or (compute == "dtype" and recipe.dtype == "float64")
    wide = torch.float64 if in_float64 else torch.float32

    def fetch(model: str, name: str) -> torch.Tensor:
        # read-only views on the memory maps: operators never write to their inputs
        return readers[model].get(name, device=device, dtype=wide, copy=False)

    if vocabulary is not None:
        fetch = _realigned(fetch, vocabulary, readers)

    ctx = MergeContext(device)  # the operators' buffers and thread pool, for this merge
    written = 0
    with ctx, contextlib.ExitStack() as stack:
        tokenizer_from = tokenizer_folder(recipe, vocabulary, config_source.path, stack)
        writer = stack.enter_context(CheckpointWriter(
            out_dir, max_shard_bytes=max_shard_bytes, overwrite=overwrite,
            copy_from=tokenizer_from))
        # exits before the writer does: pending writes finish (or fail) before the
        # output folder is committed or removed
        background = stack.enter_context(
            BackgroundWrites(writer, inline=torch.device(device).type == "cpu"))
        for i, task in enumerate(tasks):
            first_model, first_name = task.inputs[0] if task.inputs else task.base
            reader = readers[first_model]
            target_dtype = output_dtype(recipe, dtype, readers, task)
            slot = background.free_slot()
            narrow = task_dtype(recipe, readers, task)
            if compute == "dtype" and is_16_bit(narrow):
                narrow_fetch = _reading(readers, device, narrow) if vocabulary is None \
                    else (lambda m, n, t=narrow: fetch(m, n).to(t))
                value = merged_in_dtype(recipe, task, narrow_fetch, narrow, ctx=ctx)
            else:
                shape = reader.shape(first_name)
                if vocabulary is not None and is_vocabulary_tensor(first_name):
                    shape = (vocabulary.size, *shape[1:])
                out = ctx.buffers.get(("out", slot), shape, wide)
                value = merged_tensor(recipe, task, fetch, out=out, ctx=ctx)
            value = value.to(target_dtype).cpu()
            background.add(slot, task.out_name, value)
            written += value.numel() * value.element_size()
            if progress:
                progress(i + 1, len(tasks))
        background.wait()
        config = _output_config(recipe, config_source, tasks, dtype)
        if vocabulary is not None:
            config = with_vocab_size(config, vocabulary.size)
        writer.write_config(config)
        writer.write_text(RECIPE_FILE, recipe.to_yaml())
        for name, text in (records or {}).items():
            writer.write_text(name, text)
    for r in readers.values():
        r.close()
    return MergeReport(out_dir, len(tasks), written, time.perf_counter() - start)


def _realigned(fetch: Callable[[str, str], torch.Tensor], vocabulary: Vocabulary,
               readers: Mapping[str, CheckpointReader]) -> Callable[[str, str], torch.Tensor]:
    """``fetch`` with vocabulary matrices re-indexed to the output vocabulary (every
    model's at once, kept until the next vocabulary matrix is asked for)."""
    aligned: dict[str, dict[str, torch.Tensor]] = {}

    def realigned(model: str, name: str) -> torch.Tensor:
        if not is_vocabulary_tensor(name):
            return fetch(model, name)
        if name not in aligned:
            aligned.clear()
            holders = [m for m, r in readers.items() if name in r.tensor_names()
                       or (is_output_head(name) and r.tied_embeddings)]
            aligned[name] = vocabulary.aligned(fetch, holders, name)
        return aligned[name][model]
    return realigned


def _reading(readers: Mapping[str, CheckpointReader], device: str,
             dtype: torch.dtype) -> Callable[[str, str], torch.Tensor]:
    """A fetch that reads tensors cast to ``dtype``."""
    return lambda model, name: readers[model].get(name, device=device, dtype=dtype,
                                                  copy=False)


def _output_config(recipe: Recipe, source: CheckpointReader, tasks, dtype) -> dict:
    config = dict(source.config)
    if not config:
        raise CheckpointError(f"model folder '{source.path}' has no config.json")
    architecture = architecture_of(config)
    for module, _, part in recipe.input_parts():
        if not part.slices:  # only slices change the depth
            continue
        # each output block names the source block it copies (its first input's), for
        # the layer count under whatever key and per-block lists
        sources = {t.layer: tensor_info((t.inputs or [t.base])[0][1]).layer
                   for t in tasks if t.layer is not None and t.module == module}
        if not sources:
            continue
        blocks = [sources[i] for i in sorted(sources)]
        facts = module_facts(architecture, module)
        if facts is not None and facts.layer_count_key is None:
            continue  # no key holds its depth (Qwen3-VL's projector)
        section, _, key = facts.layer_count_key.rpartition(".") if facts else ("", "", "")
        if not section:  # at the top, where transformers 5 reads ``text_config``'s too
            # a module's own key only: an encoder-decoder has one per stack at the top
            keys = (key,) if key else LAYER_COUNT_KEYS
            config = with_layer_count(config, blocks, keys=keys)
        elif isinstance(config.get(section), dict):
            config[section] = with_layer_count(config[section], blocks, keys=(key,))
    chosen = dtype or recipe.out_dtype or recipe.dtype
    if chosen:  # transformers 5 names it ``dtype`` (``torch_dtype`` is its old alias)
        config["dtype"] = chosen
        config.pop("torch_dtype", None)
    head_written = any(t.out_name == "lm_head.weight" for t in tasks)
    if config.get("tie_word_embeddings") and head_written:
        config["tie_word_embeddings"] = False
    return config
