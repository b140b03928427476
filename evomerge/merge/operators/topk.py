"""Exact top-k by magnitude without a full sort.

TIES and Breadcrumbs keep the k entries of largest magnitude of each task vector. A sort
(or ``torch.kthvalue``, which is slow on CPU) per tensor dominates a whole-model merge, so
the k-th largest magnitude is found by selection instead:

1. sort a fixed random sample of the magnitudes and take a bracket ``[lo, hi]`` around
   the sample quantile that holds the k-th largest with overwhelming probability
   (4 standard deviations of the sample rank either side);
2. count the entries above ``hi`` and gather the few inside the bracket;
3. select the answer among those with numpy's SIMD introselect (``np.partition``).

When the bracket misses (rare), the same selection runs on every magnitude, so the answer
is always exact. Selecting over everything directly is as fast for random float data, but
degrades badly on the heavily repeated values of task vectors taken between bf16 models.
Non-CPU tensors use ``torch.kthvalue``.

Tie rule: entries are ordered by magnitude, larger first, then by lower flat index (a
stable descending sort). The top k are the first k in that order, so exactly k entries
are kept even when magnitudes repeat. Ties at the cut are common between bf16
checkpoints (their task vectors take few distinct values); mergekit's unstable argsort
then keeps an arbitrary subset of the tied entries, this rule a reproducible one. Inputs
must not contain NaN.

>>> x = torch.tensor([0.5, -3.0, 2.0, -2.0, 0.1])
>>> top_magnitude_mask(x, 2).tolist()
[False, True, True, False, False]
>>> keep_top_magnitudes(x, 3).tolist()
[0.0, -3.0, 2.0, -2.0, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from evomerge.merge.operators.spec import compute_dtype

if TYPE_CHECKING:
    from evomerge.merge.engine import MergeContext

#: below this many entries, select directly among all magnitudes
DIRECT_MAX_NUMEL = 1 << 16
#: half-width of the bracket, in standard deviations of the sample rank
BRACKET_SIGMAS = 4.0

#: ``memo(key, compute)``: ``compute()``, or the value it gave before for ``key``
#: (``MergeContext.memo``)
Memo = Callable[[Hashable, Callable[[], torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class MagnitudeCut:
    """Where the top k of a tensor's magnitudes end.

    ``threshold`` is the k-th largest magnitude; every entry above it is in the top k.
    ``dropped_ties`` are the flat indices of entries whose magnitude equals the threshold
    but that fall outside the top k under the tie rule (usually empty).
    """

    threshold: float
    dropped_ties: torch.Tensor

    def keep_above(self, dtype: torch.dtype) -> float:
        """The largest ``dtype`` value below the threshold: ``|x| > keep_above`` is exactly
        ``|x| >= threshold`` (lets a strict comparison such as hardshrink do the cut)."""
        return torch.nextafter(torch.tensor(self.threshold, dtype=dtype),
                               torch.tensor(-math.inf, dtype=dtype)).item()


def top_count(density: float, numel: int) -> int:
    """How many entries a magnitude trim keeps: mergekit's ``max(1, int(density * n))``.

    >>> top_count(0.5, 5), top_count(0.01, 5), top_count(0.0, 5), top_count(1.0, 5)
    (2, 1, 0, 5)
    """
    if density >= 1:
        return numel
    if density <= 0 or numel == 0:
        return 0
    return max(1, int(density * numel))


def magnitudes(x: torch.Tensor) -> torch.Tensor:
    """``|x|`` flattened, as a new tensor in the compute dtype."""
    flat = x.reshape(-1)
    dtype = compute_dtype(x)
    return flat.abs() if flat.dtype == dtype else flat.to(dtype).abs_()


#: what :func:`remember_order` keeps in a context, per input
SORTED_MAGNITUDES = "sorted magnitudes"


def sorted_magnitudes(x: torch.Tensor) -> np.ndarray:
    """``|x|`` flattened and sorted ascending (compute dtype), for :func:`magnitude_cut`.

    >>> sorted_magnitudes(torch.tensor([0.5, -3.0, 2.0])).tolist()
    [0.5, 2.0, 3.0]
    """
    return np.sort(magnitudes(x).numpy())


def remember_order(ctx: MergeContext, model: str, name: str, x: torch.Tensor) -> None:
    """Sort the magnitudes of input (model, tensor name), ``x``, once, into ``ctx``: every
    later magnitude trim of that input with ``ctx`` reads its cut off them instead of
    scanning for it, for any k.

    For a search that trims the same resident task vectors at a new density for every
    candidate. It costs a copy of ``x`` in memory for as long as ``ctx`` lives. CPU only:
    on a GPU the scan is fast already, and this does nothing.

    >>> from evomerge.merge.engine import MergeContext
    >>> ctx = MergeContext(input_key=lambda model, name: (model, name))
    >>> x = torch.tensor([0.5, -3.0, 2.0, -2.0, 0.1])
    >>> remember_order(ctx, "a", "w", x)
    >>> order = ctx.for_inputs([("a", "w")]).recall(0, SORTED_MAGNITUDES)
    >>> cut = magnitude_cut(x, 2, order)  # 2.0 and -2.0 tie: the later one drops out
    >>> cut.threshold, cut.dropped_ties.tolist()
    (2.0, [3])
    """
    if x.device.type == "cpu":
        ctx.remember(model, name, SORTED_MAGNITUDES, sorted_magnitudes(x))


def magnitude_cut(x: torch.Tensor, k: int, order: np.ndarray | None = None,
                  memo: Memo | None = None) -> MagnitudeCut:
    """The k-th largest magnitude of ``x`` and the tied entries beyond the top k.

    ``order`` is ``sorted_magnitudes(x)`` when the caller has it: the cut is then read
    off it instead of selected (CPU). ``memo`` keeps the sample positions of each tensor
    size for later cuts (a merge cuts many tensors of few sizes).

    >>> cut = magnitude_cut(torch.tensor([1.0, -1.0, 1.0, 0.5]), 2)
    >>> cut.threshold, cut.dropped_ties.tolist()
    (1.0, [2])
    """
    flat = x.reshape(-1)
    n = flat.numel()
    if not 1 <= k <= n:
        raise ValueError(f"k must lie in [1, {n}], got {k}")
    if flat.device.type != "cpu":
        mags = magnitudes(flat)
        threshold = torch.kthvalue(mags, n - k + 1).values
        n_greater = int(torch.count_nonzero(mags > threshold))
        ties = torch.nonzero(mags == threshold).reshape(-1)
        dropped = ties[k - n_greater:] if n_greater + ties.numel() > k else ties[:0]
        return MagnitudeCut(threshold.item(), dropped)
    if order is not None:
        threshold, n_greater, n_equal = _select_sorted(order, k)
    else:
        threshold, n_greater, n_equal = _kth_largest(flat, k, memo)
    if n_greater + n_equal > k:
        dropped = torch.from_numpy(_equal_positions(flat, threshold)[k - n_greater:])
    else:
        dropped = torch.empty(0, dtype=torch.int64)
    return MagnitudeCut(threshold, dropped)


def cut_chunk(flat: torch.Tensor, cut: MagnitudeCut, start: int, stop: int,
              out: torch.Tensor | None = None, keep_above: float | None = None
              ) -> torch.Tensor:
    """``flat[start:stop]`` (compute dtype) with every entry outside the top k zeroed.

    Writes into ``out`` when given. Lets a merge consume a trimmed task vector chunk by
    chunk without materialising it. ``keep_above`` is ``cut.keep_above(flat.dtype)``,
    passed in by callers that cut many chunks.

    >>> x = torch.tensor([0.5, -3.0, 2.0, -2.0, 0.1])
    >>> cut_chunk(x, magnitude_cut(x, 2), 1, 4).tolist()
    [-3.0, 2.0, 0.0]
    """
    part = flat[start:stop]
    if keep_above is None:
        keep_above = cut.keep_above(part.dtype)
    if keep_above >= 0:
        # hardshrink zeroes |x| <= lambd in one fused pass
        out = torch.hardshrink(part, keep_above, out=out) if out is not None \
            else torch.hardshrink(part, keep_above)
    elif out is not None:  # threshold 0: everything outside the top k is zero already
        out = out.copy_(part)
    else:
        out = part.clone()
    dropped = cut.dropped_ties
    if dropped.numel():
        lo, hi = np.searchsorted(dropped.cpu().numpy(), [start, stop])
        out[dropped[lo:hi] - start] = 0
    return out


def top_magnitude_mask(x: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask (shape of ``x``) of the k entries of largest magnitude."""
    n = x.numel()
    if k <= 0 or n == 0:
        return torch.zeros(x.shape, dtype=torch.bool, device=x.device)
    if k >= n:
        return torch.ones(x.shape, dtype=torch.bool, device=x.device)
    cut = magnitude_cut(x, k)
    mask = magnitudes(x) >= cut.threshold
    mask[cut.dropped_ties] = False
    return mask.view(x.shape)


def keep_top_magnitudes(x: torch.Tensor, k: int) -> torch.Tensor:
    """A new tensor (compute dtype) equal to ``x`` on its k largest magnitudes, else 0."""
    flat = x.reshape(-1).to(compute_dtype(x))
    n = flat.numel()
    if k >= n:
        return flat.clone().view(x.shape)
    if k <= 0:
        return torch.zeros_like(flat).view(x.shape)
    return cut_chunk(flat, magnitude_cut(flat, k), 0, n).view(x.shape)


def _kth_largest(flat: torch.Tensor, k: int, memo: Memo | None = None
                 ) -> tuple[float, int, int]:
    """(k-th largest magnitude, how many are greater, how many equal it), on CPU."""
    n = flat.numel()
    if n <= DIRECT_MAX_NUMEL:
        return _select(magnitudes(flat).numpy(), k)
    m = _sample_size(n)
    positions = _sample_positions(n, m) if memo is None else \
        memo(("sample positions", n, m), lambda: _sample_positions(n, m))
    sample = np.sort(magnitudes(flat[positions]).numpy())
    # the answer has ascending rank n - k; its rank in the sample is about m (n - k) / n
    q = (n - k) / n
    centre = q * m
    half = BRACKET_SIGMAS * math.sqrt(m * q * (1 - q)) + 2
    lo_i, hi_i = math.floor(centre - half), math.ceil(centre + half)
    lo = sample[lo_i] if lo_i >= 0 else None
    hi = sample[hi_i] if hi_i < m else None
    if lo is None and hi is None:
        return _select(magnitudes(flat).numpy(), k)
    n_above, n_from_lo = 0, 0
    inside: list[np.ndarray] = []
    above_buf = np.empty(min(n, SCAN_CHUNK), dtype=bool)
    from_lo_buf = np.empty_like(above_buf)
    for _, mags in _magnitude_chunks(flat):
        above = from_lo = None
        if hi is not None:
            above = np.greater(mags, hi, out=above_buf[:mags.size])
            n_above += int(np.count_nonzero(above))
        if lo is not None:
            from_lo = np.greater_equal(mags, lo, out=from_lo_buf[:mags.size])
            n_from_lo += int(np.count_nonzero(from_lo))
        if lo == hi:  # one repeated value fills the bracket: counts alone decide
            continue
        if from_lo is None:  # no lower end: the bracket is everything up to hi
            inside.append(mags[np.logical_not(above, out=above)])
        elif above is None:
            inside.append(mags[from_lo])
        else:  # above is a subset of from_lo
            inside.append(mags[np.logical_xor(from_lo, above, out=from_lo)])
    if lo is None:
        n_from_lo = n
    if not n_above < k <= n_from_lo:  # the bracket missed: select among everything
        return _select(magnitudes(flat).numpy(), k)
    if lo == hi:
        return float(lo), n_above, n_from_lo - n_above
    threshold, n_greater, n_equal = _select(np.concatenate(inside), k - n_above)
    return threshold, n_above + n_greater, n_equal


def _select_sorted(order: np.ndarray, k: int) -> tuple[float, int, int]:
    """Like :func:`_kth_largest`, read off magnitudes sorted ascending."""
    threshold = order[order.size - k]
    first, beyond = np.searchsorted(order, threshold, "left"), \
        np.searchsorted(order, threshold, "right")
    return float(threshold), int(order.size - beyond), int(beyond - first)


def _select(values: np.ndarray, k: int) -> tuple[float, int, int]:
    """Like :func:`_kth_largest` by introselect among ``values``, which it reorders."""
    pos = values.size - k
    values.partition(pos)
    threshold = values[pos]
    # after partitioning, everything greater than the threshold lies beyond pos
    n_greater = int(np.count_nonzero(values[pos + 1:] > threshold))
    n_equal = int(np.count_nonzero(values == threshold))
    return float(threshold), n_greater, n_equal


def _equal_positions(flat: torch.Tensor, value: float) -> np.ndarray:
    """Ascending flat indices of the entries whose magnitude equals ``value``."""
    found = [np.flatnonzero(mags == value) + start for start, mags in _magnitude_chunks(flat)]
    return np.concatenate(found)


#: entries per pass of the chunked scans: the working set stays in cache
SCAN_CHUNK = 1 << 22  # large for the reason given at combine.COMBINE_CHUNK


def _magnitude_chunks(flat: torch.Tensor):
    """Yield (start, |flat[start:stop]| as a numpy array in a reused buffer)."""
    n = flat.numel()
    buffer = torch.empty(min(n, SCAN_CHUNK), dtype=compute_dtype(flat))
    for start in range(0, n, SCAN_CHUNK):
        part = flat[start:start + SCAN_CHUNK]
        out = buffer[:part.numel()].numpy()
        if part.dtype == buffer.dtype:
            # numpy, not torch: this scan runs on one core, so that the selections of
            # several task vectors can run side by side (MergeContext.each)
            np.abs(part.numpy(), out=out)
        else:
            buffer[:part.numel()].copy_(part).abs_()
        yield start, out


def _sample_size(n: int) -> int:
    # balances sorting the sample against selecting inside the bracket, whose share of
    # the tensor shrinks as 1 / sqrt(sample size)
    return int(min(1 << 16, max(2048, (n / 2) ** (2 / 3))))


def _sample_positions(n: int, m: int) -> torch.Tensor:
    # fixed per size, so results never depend on any global random state; sorted, so the
    # gather walks memory forward
    return torch.from_numpy(np.sort(np.random.default_rng(n).integers(0, n, m)))
