"""Random sparsifiers: DARE (drop uniformly) and DELLA's MagPrune (drop by rank).

Every draw comes from the generator passed in, never from torch's global state, so the
same generator seed rebuilds the same mask. Rescaling the survivors has two forms:
``"l1"`` matches the task vector's L1 norm (mergekit's ``rescale``, the default of the
operators) and ``"probability"`` divides each survivor by its keep probability (the DARE
and DELLA papers: the sparsified vector is then unbiased, ``E[kept] = tau``).

>>> g = torch.Generator().manual_seed(0)
>>> tau = torch.ones(10_000)
>>> kept = drop_random(tau, density=0.3, generator=g, rescale="probability")
>>> x = kept.materialize()
>>> round(float((x != 0).float().mean()), 2), round(float(x.sum()) / 10_000, 1)
(0.3, 1.0)
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from evomerge.merge.operators.reductions import RunningL1, step_size, steps
from evomerge.merge.operators.sparse import SparseDelta, dense, kept_times, rescaled, zero_like
from evomerge.merge.operators.side_by_side import each
from evomerge.merge.operators.spec import in_compute_dtype

Rescale = Literal["none", "l1", "probability"]

#: DARE's keep probability is quantised to multiples of 2**-16, and the realised
#: probability ``level / 65536`` is the one used to rescale. An entry's 16-bit uniform is
#: drawn a byte at a time: the first byte decides unless it equals the level's high byte
#: (one entry in 256), and only those entries draw a second byte. About 8 random bits per
#: entry, eight entries per 64-bit draw.
KEEP_LEVELS = 1 << 16


def keep_level(density: float) -> int:
    """DARE's keep probability in units of 2**-16, never 0 or 1 inside (0, 1).

    >>> keep_level(0.5), keep_level(1e-9), keep_level(0.9999999)
    (32768, 1, 65535)
    """
    return min(KEEP_LEVELS - 1, max(1, round(density * KEEP_LEVELS)))


#: CPU draws at least this many 64-bit words long are split into ``CPU_STREAMS`` parts,
#: each drawn on its own thread by its own generator
PARALLEL_WORDS = 1 << 16
CPU_STREAMS = 2

#: 64-bit words a CPU stream draws per call: small enough that each draw lands in cache
#: before it is copied into place, large enough that the calls cost nothing
DRAW_WORDS = 1 << 16


def lane_words(numel: int) -> int:
    """How many 64-bit words hold ``numel`` byte lanes."""
    return (numel + 7) // 8


def uniform_lanes(numel: int, generator: torch.Generator,
                  device: torch.device | str = "cpu",
                  words: torch.Tensor | None = None) -> torch.Tensor:
    """``numel`` independent uniform bytes (uint8) from ``generator``.

    Drawing is a large share of DARE's cost. On CPU the bits come from numpy's SFC64,
    seeded by ``generator``: it draws a 64-bit word in about a third of the time
    torch's Mersenne Twister takes. A long draw is split into equal parts, each from its
    own stream seeded by ``generator``, drawn on parallel threads. The split depends on
    ``numel`` only, never on the machine, so a seed gives the same lanes everywhere.
    Other devices draw with ``generator`` itself. The lanes are drawn into ``words``
    when given (``lane_words(numel)`` int64 entries).
    """
    if words is None:
        words = torch.empty(lane_words(numel), dtype=torch.int64, device=device)
    if words.device.type != "cpu":
        words.random_(-(1 << 63), None, generator=generator)  # all 64 bits uniform
        return words.view(torch.uint8)[:numel]
    if words.numel() < PARALLEL_WORDS:
        _fill_from_stream(words, _stream_seeds(1, generator)[0])
    else:
        each(_fill_from_stream, words.tensor_split(CPU_STREAMS),
             _stream_seeds(CPU_STREAMS, generator))
    return words.view(torch.uint8)[:numel]


def _stream_seeds(count: int, generator: torch.Generator) -> list[int]:
    return torch.randint(0, 1 << 62, (count,), generator=generator).tolist()


def _fill_from_stream(words: torch.Tensor, seed: int) -> None:
    """Fill ``words`` (CPU int64) with uniform bits from an SFC64 stream seeded ``seed``."""
    bits = np.random.SFC64(seed)
    out = words.numpy().view(np.uint64)
    for start in range(0, out.size, DRAW_WORDS):
        stop = min(out.size, start + DRAW_WORDS)
        out[start:stop] = bits.random_raw(stop - start)


def _all_or_nothing(tau: torch.Tensor, density: float) -> SparseDelta | None:
    """Density 1 keeps the task vector untouched, density 0 keeps nothing; else None."""
    if density >= 1:
        return dense(tau)
    if density <= 0:
        return zero_like(tau)
    return None


def drop_random(tau: torch.Tensor, density: float, generator: torch.Generator | None,
                rescale: Rescale, mask: torch.Tensor | None = None,
                words: torch.Tensor | None = None) -> SparseDelta:
    """DARE (mergekit ``random``): keep each entry with probability ``density``.

    density >= 1 returns the task vector untouched, density <= 0 keeps nothing. The kept
    entries are written into ``mask`` when given (flat, ``tau``'s numel, compute dtype),
    else into a new tensor; the random lanes are drawn into ``words`` when given (see
    :func:`uniform_lanes`).
    """
    _require(generator, "DARE")
    if (edge := _all_or_nothing(tau, density)) is not None:
        return edge
    tau = in_compute_dtype(tau)
    n, level = tau.numel(), keep_level(density)
    lanes = uniform_lanes(n, generator, tau.device, words)
    high, low = divmod(level, 256)
    flat = tau.reshape(-1)
    ties = _tied_keeps(lanes, high, low, generator, step_size(flat))
    if mask is None:
        mask = torch.empty(n, dtype=tau.dtype, device=tau.device)
    # A step at a time, so that the mask, the kept entries and their L1 norm are made
    # while the step is in cache: one pass over memory per input instead of one per op.
    kept_l1 = RunningL1(flat) if rescale == "l1" else None
    for start, stop in steps(flat):
        kept = mask[start:stop]
        # keep where the 16-bit uniform (first byte, second byte) lies below (high, low).
        # Widening the bytes first and comparing in place beats one mixed-dtype
        # comparison (uint8 in, float out) by a third on CPU.
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


def _tied_keeps(lanes: torch.Tensor, high: int, low: int, generator: torch.Generator,
                step: int) -> _TiedKeeps | None:
    """The tied entries' second draw, or None when the level has no low byte (a first
    byte equal to ``high`` then simply drops)."""
    if not low:
        return None
    tied = torch.nonzero(lanes == high).view(-1)
    if not tied.numel():
        return None
    second = uniform_lanes(tied.numel(), generator, lanes.device)
    return _TiedKeeps(tied, second < low, step, lanes.numel())


def drop_by_rank(tau: torch.Tensor, density: float, epsilon: float,
                 generator: torch.Generator | None, rescale: Rescale) -> SparseDelta:
    """DELLA's MagPrune (mergekit ``della_magprune``): rank-based keep probabilities.

    Within each row (dim 1; a 1-D tensor is one row) the entries are ranked by
    magnitude, smallest first (ties: lower index first), and kept with probability
    ``p_i = density - epsilon + 2 * epsilon * rank_i / (cols - 1)``, so larger entries
    survive more often and the mean stays ``density``. A row of one entry uses
    ``p = density`` (mergekit divides by zero there). density >= 1 returns the task
    vector untouched, density <= 0 keeps nothing.

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
    uniform = torch.rand(rows.shape, generator=generator, dtype=rows.dtype,
                         device=rows.device)
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
        # the stable order (torch's stable argsort is several times slower on CPU)
        keys = mags.contiguous().numpy().view(np.int32).astype(np.int64)
        keys <<= 32
        keys |= np.arange(cols, dtype=np.int64)
        keys.sort(axis=1)
        order = torch.from_numpy(keys & 0xFFFFFFFF)
    else:
        order = torch.argsort(mags, dim=1, stable=True)
    positions = torch.arange(cols, dtype=mags.dtype, device=mags.device).expand(rows, cols)
    return torch.empty_like(mags).scatter_(1, order, positions)


def _require(generator: torch.Generator | None, method: str) -> None:
    if generator is None:
        raise ValueError(f"{method} draws random masks: pass a torch.Generator "
                         "(see tensor_generator); the global RNG is never used")
