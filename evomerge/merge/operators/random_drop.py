"""Random sparsifiers: DARE (drop uniformly) and DELLA's MagPrune (drop by rank).

Every draw comes from the source passed in (a ``torch.Generator`` or a
:class:`~evomerge.merge.operators.seeding.TensorSeed`), never from torch's global state,
and is counter-based: each call takes one key from the source and computes every random
number from the key and the entry's position (:mod:`~evomerge.merge.operators.seeding`).
The same seed therefore rebuilds the same mask on CPU and on CUDA, whatever the chunking
or the threads. Rescaling the survivors has two forms: ``"l1"`` matches the task
vector's L1 norm (mergekit's ``rescale``, the default of the operators) and
``"probability"`` divides each survivor by its keep probability (the DARE and DELLA
papers: the sparsified vector is then unbiased, ``E[kept] = tau``).

>>> g = torch.Generator().manual_seed(0)
>>> tau = torch.ones(10_000)
>>> kept = drop_random(tau, density=0.3, generator=g, rescale="probability")
>>> x = kept.materialize()
>>> round(float((x != 0).float().mean()), 2), round(float(x.sum()) / 10_000, 1)
(0.3, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

from evomerge.merge.operators import side_by_side
from evomerge.merge.operators.reductions import RunningL1, step_size, steps
from evomerge.merge.operators.seeding import (
    DrawKey, Source, counter_hash, hash_numpy, hash_range_numpy, hash_torch, next_key)
from evomerge.merge.operators.sparse import SparseDelta, dense, kept_times, rescaled, zero_like
from evomerge.merge.operators.spec import in_compute_dtype

Rescale = Literal["none", "l1", "probability"]
#: a map ``each(fn, *iterables) -> list``: :func:`side_by_side.each` (one call after
#: another) by default; a builder passes its context's pool (``MergeContext.each``)
Each = Callable[..., list]

#: DARE's keep probability is quantised to multiples of 2**-16, and the realised
#: probability ``level / 65536`` is the one used to rescale. Entry i keeps when its
#: 16-bit uniform ``(first byte << 8) | second byte`` lies below the level. First bytes
#: come four to a 32-bit hash of stream 0 (entry i: byte ``i % 4`` of word ``i // 4``);
#: the second byte (the low byte of stream 1's hash of i) only matters when the first
#: equals the level's high byte (one entry in 256), so only those entries compute it.
#: See :func:`dare_keeps_reference`.
KEEP_LEVELS = 1 << 16


def keep_level(density: float) -> int:
    """DARE's keep probability in units of 2**-16, never 0 or 1 inside (0, 1).

    >>> keep_level(0.5), keep_level(1e-9), keep_level(0.9999999)
    (32768, 1, 65535)
    """
    return min(KEEP_LEVELS - 1, max(1, round(density * KEEP_LEVELS)))


#: CPU draws of at least this many 32-bit hashes (512K entries of DARE) are split into
#: ``CPU_PARTS`` parts, run by the ``each`` map given (side by side on a pool); the
#: numbers do not depend on the split
PARALLEL_WORDS = 1 << 17
CPU_PARTS = 2
#: counters hashed per chunk by the torch path (bounds its temporaries on a device)
TORCH_CHUNK = 1 << 22


def lane_words(numel: int) -> int:
    """How many 64-bit words hold ``numel`` byte lanes."""
    return (numel + 7) // 8


def numpy_draws(device: torch.device | str) -> bool:
    """Whether draws on ``device`` are computed in numpy (CPU) rather than in torch ops
    (any other device). Both give the same bits."""
    return torch.device(device).type == "cpu"


def uniform_lanes(numel: int, generator: Source, device: torch.device | str = "cpu",
                  words: torch.Tensor | None = None, *,
                  each: Each = side_by_side.each) -> torch.Tensor:
    """``numel`` independent uniform bytes (uint8) from the next key of ``generator``:
    the first bytes of DARE's 16-bit uniforms (:func:`first_bytes`)."""
    return first_bytes(next_key(generator), numel, device, words, each=each)


def first_bytes(key: DrawKey, numel: int, device: torch.device | str = "cpu",
                words: torch.Tensor | None = None, *,
                each: Each = side_by_side.each) -> torch.Tensor:
    """Byte ``i % 4`` of ``counter_hash(key.stream(0), i // 4)`` for i < ``numel``, as uint8.

    Drawn into ``words`` when given (at least ``lane_words(numel)`` int64 entries), on its
    device. On CPU the hashes are computed in numpy (which releases the GIL), a long draw
    in two parts run by ``each``; elsewhere in torch ops.
    """
    if words is None:
        words = torch.empty(lane_words(numel), dtype=torch.int64, device=device)
    if words.numel() < lane_words(numel):
        raise ValueError(f"{words.numel()} words hold fewer than {numel} byte lanes")
    if numpy_draws(words.device):
        _first_bytes_numpy(key, numel, words, each)
    else:
        _first_bytes_torch(key, numel, words)
    return words.view(torch.uint8)[:numel]


def _hash_words(numel: int) -> int:
    return (numel + 3) // 4


def _first_bytes_numpy(key: DrawKey, numel: int, words: torch.Tensor, each: Each) -> None:
    # little-endian words: byte b of a word is its bits 8b..8b+7 on every machine
    out = words.numpy().view(np.dtype("<u4"))[:_hash_words(numel)]
    _hash_range_parts(key.stream(0), out, each)


def _hash_range_parts(stream: tuple[int, int], out: np.ndarray, each: Each) -> None:
    """``hash_range_numpy(stream, 0, out)``, in ``CPU_PARTS`` parts run by ``each`` when
    ``out`` is long."""
    if out.size < PARALLEL_WORDS:
        hash_range_numpy(stream, 0, out)
        return
    bounds = [out.size * p // CPU_PARTS for p in range(CPU_PARTS + 1)]
    each(lambda start, stop: hash_range_numpy(stream, start, out[start:stop]),
         bounds[:-1], bounds[1:])


_BYTE_SHIFTS = (0, 8, 16, 24)


def _first_bytes_torch(key: DrawKey, numel: int, words: torch.Tensor) -> None:
    lanes = words.view(torch.uint8)[:numel]
    shifts = torch.tensor(_BYTE_SHIFTS, dtype=torch.int64, device=words.device)
    stream, count = key.stream(0), _hash_words(numel)
    for start in range(0, count, TORCH_CHUNK):
        stop = min(count, start + TORCH_CHUNK)
        hashes = hash_torch(stream, torch.arange(start, stop, device=words.device))
        chunk = (hashes.unsqueeze(1) >> shifts).bitwise_and_(0xFF).to(torch.uint8)
        first, last = 4 * start, min(numel, 4 * stop)
        lanes[first:last] = chunk.view(-1)[:last - first]


def second_bytes(key: DrawKey, index: torch.Tensor) -> torch.Tensor:
    """The low byte of ``counter_hash(key.stream(1), i)`` for each entry i of ``index``
    (int64), as int64 on ``index``'s device."""
    stream = key.stream(1)
    if numpy_draws(index.device):
        hashes = hash_numpy(stream, index.numpy().astype(np.uint64))
        return torch.from_numpy((hashes & 0xFF).astype(np.int64))
    return hash_torch(stream, index) & 0xFF


def dare_keeps_reference(key: DrawKey, numel: int, density: float) -> list[bool]:
    """Whether DARE keeps entry i, one entry at a time: the rule :func:`drop_random`'s
    mask follows (a draw with ``key``, the next key of its source)."""
    level = keep_level(density)
    first, second = key.stream(0), key.stream(1)
    keeps = []
    for i in range(numel):
        high = (counter_hash(first, i // 4) >> (8 * (i % 4))) & 0xFF
        low = counter_hash(second, i) & 0xFF
        keeps.append((high << 8 | low) < level)
    return keeps


def _all_or_nothing(tau: torch.Tensor, density: float) -> SparseDelta | None:
    """Density 1 keeps the task vector untouched, density 0 keeps nothing; else None."""
    if density >= 1:
        return dense(tau)
    if density <= 0:
        return zero_like(tau)
    return None


def drop_random(tau: torch.Tensor, density: float, generator: Source | None,
                rescale: Rescale, mask: torch.Tensor | None = None,
                words: torch.Tensor | None = None, *,
                each: Each = side_by_side.each) -> SparseDelta:
    """DARE (mergekit ``random``): keep each entry with probability ``density``.

    density >= 1 returns the task vector untouched, density <= 0 keeps nothing; else one
    key is taken from ``generator`` and entry i (of ``tau`` flattened) is kept as
    :func:`dare_keeps_reference` says, on every device. The kept entries are written
    into ``mask`` when given (flat, ``tau``'s numel, compute dtype), else into a new
    tensor; the random lanes are drawn into ``words`` when given (see
    :func:`first_bytes`), with ``each`` as the parallel map.
    """
    _require(generator, "DARE")
    if (edge := _all_or_nothing(tau, density)) is not None:
        return edge
    tau = in_compute_dtype(tau)
    n, level = tau.numel(), keep_level(density)
    key = next_key(generator)
    lanes = first_bytes(key, n, tau.device, words, each=each)
    high, low = divmod(level, 256)
    flat = tau.reshape(-1)
    ties = _tied_keeps(lanes, high, low, key, step_size(flat))
    if mask is None:
        mask = torch.empty(n, dtype=tau.dtype, device=tau.device)
    # A step at a time, so that the mask, the kept entries and their L1 norm are made
    # while the step is in cache: one pass over memory per input instead of one per op.
    kept_l1 = RunningL1(flat) if rescale == "l1" else None
    for start, stop in steps(flat):
        kept = mask[start:stop]
        # keep where the 16-bit uniform (first byte, second byte) lies below (high, low).
        # Widening the bytes first and comparing in place is the fastest of the ways
        # benchmarks/dare_draw.py compares (a mixed-dtype comparison among them).
        torch.lt(kept.copy_(lanes[start:stop]), high, out=kept)
        if ties is not None:
            ties.settle(kept, start, stop)
        kept.mul_(flat[start:stop])
        if kept_l1 is not None:
            kept_l1.add(kept)
    return rescaled(mask, tau, rescale, KEEP_LEVELS / level,
                    kept_l1.value() if kept_l1 is not None else None)


class _TiedKeeps:
    """Entries whose first byte equals the level's high byte, and whether each is kept
    (second byte below the low byte), to settle a step of the mask at a time."""

    def __init__(self, index: torch.Tensor, keep: torch.Tensor, step: int, numel: int):
        self.index, self.keep = index, keep
        edges = torch.arange(0, numel + step, step, device=index.device)
        self._bounds = torch.searchsorted(index, edges).tolist()
        self._step = step

    def settle(self, kept: torch.Tensor, start: int, stop: int) -> None:
        first, last = self._bounds[start // self._step], self._bounds[start // self._step + 1]
        if first < last:
            kept.index_put_((self.index[first:last] - start,),
                            self.keep[first:last].to(kept.dtype))


def _tied_keeps(lanes: torch.Tensor, high: int, low: int, key: DrawKey,
                step: int) -> _TiedKeeps | None:
    """The tied entries' second bytes, or None when the level has no low byte (a first
    byte equal to ``high`` then simply drops)."""
    if not low:
        return None
    tied = torch.nonzero(lanes == high).view(-1)
    if not tied.numel():
        return None
    return _TiedKeeps(tied, second_bytes(key, tied) < low, step, lanes.numel())


def drop_by_rank(tau: torch.Tensor, density: float, epsilon: float,
                 generator: Source | None, rescale: Rescale, *,
                 each: Each = side_by_side.each) -> SparseDelta:
    """DELLA's MagPrune (mergekit ``della_magprune``): rank-based keep probabilities.

    Within each row (dim 1; a 1-D tensor is one row) the entries are ranked by
    magnitude, smallest first (ties: lower index first), and kept with probability
    ``p_i = density - epsilon + 2 * epsilon * rank_i / (cols - 1)``, so larger entries
    survive more often and the mean stays ``density``. A row of one entry uses
    ``p = density`` (mergekit divides by zero there). density >= 1 returns the task
    vector untouched, density <= 0 keeps nothing. Entry i of the rows (dim 1 moved last,
    flattened) is kept when its uniform from :func:`rank_uniforms` (one key taken from
    ``generator``) lies below its ``p_i``, on every device.

    >>> g = torch.Generator().manual_seed(0)
    >>> tau = torch.randn(64, 512, generator=g)
    >>> x = drop_by_rank(tau, 0.5, 0.3, g, rescale="none").materialize()
    >>> big = tau.abs() > tau.abs().median()
    >>> bool((x[big] != 0).float().mean() > (x[~big] != 0).float().mean() + 0.2)
    True
    """
    _require(generator, "DELLA")
    if (edge := _all_or_nothing(tau, density)) is not None:
        return edge
    tau = in_compute_dtype(tau)
    # rank along dim 1 as mergekit does: move it last, rows are everything else
    rows = tau.reshape(1, -1) if tau.dim() < 2 else tau.movedim(1, -1)
    moved_shape = rows.shape
    rows = rows.reshape(-1, moved_shape[-1])
    cols = rows.shape[1]
    if cols > 1:
        rank_share = row_ranks(rows.abs()).div_(cols - 1)
    else:
        rank_share = torch.full_like(rows, 0.5)
    probability = rank_share.mul_(2 * epsilon).add_(density - epsilon)
    uniform = rank_uniforms(next_key(generator), rows.numel(), rows.dtype, rows.device,
                            each=each).view(rows.shape)
    multiplier = (uniform < probability).to(rows.dtype)
    if rescale == "probability":
        # a density so small that p underflows keeps (almost) nothing; the clamp stops
        # 0 / 0 on the dropped entries
        multiplier.div_(probability.clamp_(min=torch.finfo(rows.dtype).tiny))
    if tau.dim() >= 2:  # back to the task vector's own layout
        multiplier = multiplier.reshape(moved_shape).movedim(-1, 1)
    return kept_times(tau, multiplier.reshape(-1).contiguous(), rescale)


def row_ranks(mags: torch.Tensor) -> torch.Tensor:
    """0-based rank of each entry within its row (2-D, >= 0), ascending, ties by index.

    >>> row_ranks(torch.tensor([[0.5, 0.1, 0.5, 0.2]])).tolist()
    [[2.0, 0.0, 3.0, 1.0]]
    """
    rows, cols = mags.shape
    if mags.device.type == "cpu" and mags.dtype == torch.float32:
        # the bit patterns of non-negative floats sort like the floats; with the column
        # in the low 32 bits every key is unique, so numpy's fast unstable sort gives
        # the stable order (faster on CPU than torch's stable argsort)
        keys = mags.contiguous().numpy().view(np.int32).astype(np.int64)
        keys <<= 32
        keys |= np.arange(cols, dtype=np.int64)
        keys.sort(axis=1)
        order = torch.from_numpy(keys & 0xFFFFFFFF)
    else:
        order = torch.argsort(mags, dim=1, stable=True)
    positions = torch.arange(cols, dtype=mags.dtype, device=mags.device).expand(rows, cols)
    return torch.empty_like(mags).scatter_(1, order, positions)


def rank_uniforms(key: DrawKey, numel: int, dtype: torch.dtype = torch.float32,
                  device: torch.device | str = "cpu", *,
                  each: Each = side_by_side.each) -> torch.Tensor:
    """``(counter_hash(key.stream(0), i) >> 8) / 2**24`` for i < ``numel``: uniforms on
    [0, 1) in steps of 2**-24, exact in float32 and float64 (``dtype``), on ``device``."""
    if numpy_draws(device):
        hashes = np.empty(numel, dtype=np.uint32)
        _hash_range_parts(key.stream(0), hashes, each)
        np.right_shift(hashes, 8, out=hashes)
        uniform = torch.from_numpy(hashes.astype(np.float64 if dtype == torch.float64
                                                 else np.float32))
        return uniform.mul_(2.0 ** -24).to(dtype)
    uniform = torch.empty(numel, dtype=dtype, device=device)
    stream = key.stream(0)
    for start in range(0, numel, TORCH_CHUNK):
        stop = min(numel, start + TORCH_CHUNK)
        hashes = hash_torch(stream, torch.arange(start, stop, device=device))
        uniform[start:stop] = (hashes >> 8).to(dtype).mul_(2.0 ** -24)
    return uniform


def rank_uniforms_reference(key: DrawKey, numel: int) -> list[float]:
    """:func:`rank_uniforms`, one entry at a time."""
    stream = key.stream(0)
    return [(counter_hash(stream, i) >> 8) / (1 << 24) for i in range(numel)]


def _require(generator: Source | None, method: str) -> None:
    if generator is None:
        raise ValueError(f"{method} draws random masks: pass a torch.Generator or a "
                         "TensorSeed (see tensor_generator, tensor_seed); the global RNG "
                         "is never used")
