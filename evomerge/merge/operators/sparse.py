"""Sparsified task vectors, read chunk by chunk.

A merge reads each sparsified task vector once, chunk by chunk, so the trimmed or dropped
copy of a large tensor never has to exist in full: the combination stays in cache and the
merged delta is the only new full-size tensor. A :class:`SparseDelta` yields
``values(start, stop)`` (the kept entries of a flat slice, zeros elsewhere) and a
``scale`` (the rescale factor); the sparsified task vector is ``values * scale``.
:mod:`~evomerge.merge.operators.reference` writes the same sparsifiers on whole tensors.

Deterministic sparsifiers live here (TIES magnitude trim, Breadcrumbs outlier trim);
random ones (DARE, DELLA) in :mod:`evomerge.merge.operators.random_drop`.

>>> tau = torch.tensor([0.5, -3.0, 2.0, -2.0, 0.1])
>>> trim_magnitude(tau, density=0.4, rescale=False).materialize().tolist()
[0.0, -3.0, 2.0, 0.0, 0.0]
>>> trim_outliers(tau.abs(), density=0.4, gamma=0.2, rescale=False).materialize().tolist()
[0.0, 0.0, 2.0, 2.0, 0.0]
"""

from __future__ import annotations

import numpy as np
import torch

from evomerge.merge.operators.reductions import RunningL1, l1_norm, step_size, steps
from evomerge.merge.operators.spec import in_compute_dtype
from evomerge.merge.operators.topk import (MagnitudeCut, Memo, cut_chunk, magnitude_cut,
                                           top_count)

#: mergekit skips the L1 rescale when either norm is below this
L1_RESCALE_EPS = 1e-7
#: what a merge context remembers of a resident task vector for the L1 rescale
TASK_VECTOR_L1 = "L1 norm"


class SparseDelta:
    """A task vector (flattened, compute dtype), possibly sparsified and rescaled.

    The base class keeps every entry; subclasses override :meth:`values`.
    """

    def __init__(self, flat: torch.Tensor, shape: torch.Size, scale: float = 1.0):
        self.flat = flat
        self.shape = shape
        self._scale = scale
        #: (task vector, L1 norm of the kept entries) while an L1 match waits for the
        #: task vector's own norm (see :meth:`match_l1`)
        self._l1_match: tuple[torch.Tensor, float] | None = None
        #: the task vector's L1 norm, when the caller knows it before the scale is read
        self.task_l1: float | None = None

    @property
    def scale(self) -> float:
        """The rescale factor of the kept entries."""
        if self._l1_match is not None:
            task_l1 = self.measure_task_l1() if self.task_l1 is None else self.task_l1
            self._scale = l1_match(task_l1, self._l1_match[1])
            self._l1_match = None
        return self._scale

    @property
    def needs_task_l1(self) -> bool:
        """Whether the scale still waits for the task vector's L1 norm."""
        return self._l1_match is not None and self.task_l1 is None

    def measure_task_l1(self) -> float:
        """The L1 norm of the task vector an L1 match refers to."""
        if self._l1_match is None:
            raise ValueError("this task vector is not rescaled to an L1 norm")
        return l1_norm(self._l1_match[0])

    @property
    def numel(self) -> int:
        return self.flat.numel()

    def values(self, start: int, stop: int, scratch: torch.Tensor) -> torch.Tensor:
        """Kept entries of ``flat[start:stop]``; may return a view of the input, or fill
        and return ``scratch`` (``stop - start`` entries). Read-only."""
        return self.flat[start:stop]

    def materialize(self) -> torch.Tensor:
        """The sparsified, rescaled task vector as a new tensor (tests, small tensors)."""
        out = self.values(0, self.numel, torch.empty_like(self.flat)).clone()
        return out.mul_(self.scale).view(self.shape)

    def kept_l1(self) -> float:
        """L1 norm of the kept entries, made and measured a step at a time, never held
        in full."""
        total = RunningL1(self.flat)
        scratch = torch.empty(min(step_size(self.flat), self.numel), dtype=self.flat.dtype,
                              device=self.flat.device)
        for start, stop in steps(self.flat):
            total.add(self.values(start, stop, scratch[:stop - start]))
        return total.value()

    def match_l1(self, tau: torch.Tensor, kept_l1: float | None = None) -> SparseDelta:
        """mergekit's ``rescale``: scale the kept entries so that their L1 norm is that
        of ``tau`` (the task vector, compute dtype). ``kept_l1`` is the kept entries' norm
        when the caller has measured it. ``tau``'s norm is measured when the scale is
        first read, unless :attr:`task_l1` was set by then (a builder remembers it for
        task vectors it keeps resident)."""
        self._l1_match = (tau, self.kept_l1() if kept_l1 is None else kept_l1)
        return self


class MagnitudeBandDelta(SparseDelta):
    """The entries ranked (by magnitude, largest first) inside the ``outer`` cut but not
    inside the ``inner`` one; without ``inner``, simply the top k."""

    def __init__(self, flat: torch.Tensor, shape: torch.Size, outer: MagnitudeCut,
                 inner: MagnitudeCut | None = None):
        super().__init__(flat, shape)
        self.outer, self.inner = outer, inner
        self.outer_above = outer.keep_above(flat.dtype)
        self.inner_above = inner.keep_above(flat.dtype) if inner is not None else None
        self._inner_scratch = torch.empty(0, dtype=flat.dtype, device=flat.device)

    def values(self, start: int, stop: int, scratch: torch.Tensor) -> torch.Tensor:
        out = cut_chunk(self.flat, self.outer, start, stop, scratch, self.outer_above)
        if self.inner is None:
            return out
        if self._inner_scratch.numel() < stop - start:
            self._inner_scratch = torch.empty_like(scratch)
        # inner entries appear identically in both cuts, so they subtract to exact zeros
        inner = cut_chunk(self.flat, self.inner, start, stop,
                          self._inner_scratch[:stop - start], self.inner_above)
        return out.sub_(inner)


def dense(tau: torch.Tensor) -> SparseDelta:
    """The whole task vector (no sparsification); reads the input without copying it."""
    tau = in_compute_dtype(tau)
    return SparseDelta(tau.reshape(-1), tau.shape)


def zero_like(tau: torch.Tensor) -> SparseDelta:
    """A task vector with nothing kept."""
    tau = in_compute_dtype(tau)
    return SparseDelta(torch.zeros(tau.numel(), dtype=tau.dtype, device=tau.device),
                       tau.shape)


def kept_times(tau: torch.Tensor, multiplier: torch.Tensor, rescale: str,
               probability_scale: float = 1.0) -> SparseDelta:
    """The task vector times a per-entry multiplier >= 0 (0 drops an entry, 1 or 1/p
    keeps it), for the random sparsifiers.

    The product is written into ``multiplier`` (flat, compute dtype), which is consumed.
    Held in full, it is read by the L1 rescale and then by the combination: cheaper than
    recomputing the mask there, since a multiply by a 0/1 float tensor is the fastest
    masking torch has. ``rescale``: ``"l1"`` matches the task vector's L1 norm,
    ``"probability"`` scales by ``probability_scale`` (DARE's 1/p; 1 when the multiplier
    already holds it), ``"none"`` leaves the kept entries as they are.

    >>> tau = torch.tensor([1.0, -2.0, 3.0, -4.0])
    >>> d = kept_times(tau, torch.tensor([1.0, 0.0, 1.0, 0.0]), "l1")
    >>> d.materialize().tolist()
    [2.5, -0.0, 7.5, -0.0]
    """
    return rescaled(multiplier.mul_(tau.reshape(-1)), tau, rescale, probability_scale)


def rescaled(kept: torch.Tensor, tau: torch.Tensor, rescale: str,
             probability_scale: float = 1.0, kept_l1: float | None = None) -> SparseDelta:
    """The kept entries ``kept`` (flat) of task vector ``tau`` as a :class:`SparseDelta`
    with the scale ``rescale`` asks for (see :func:`kept_times`); ``kept_l1`` is the L1
    norm of ``kept`` when the caller has measured it already."""
    if rescale == "l1":
        return SparseDelta(kept, tau.shape).match_l1(
            tau, l1_norm(kept) if kept_l1 is None else kept_l1)
    return SparseDelta(kept, tau.shape, probability_scale if rescale == "probability" else 1.0)


def trim_magnitude(tau: torch.Tensor, density: float, rescale: bool,
                   order: np.ndarray | None = None, memo: Memo | None = None) -> SparseDelta:
    """TIES trim (mergekit ``magnitude``): keep the top ``density`` share by magnitude.

    Keeps ``max(1, int(density * n))`` entries for ``0 < density < 1``; density >= 1
    returns the task vector untouched (no rescale), density <= 0 keeps nothing. ``order``
    (``topk.sorted_magnitudes(tau)``, when the caller keeps it) and ``memo`` are as for
    :func:`~evomerge.merge.operators.topk.magnitude_cut`.
    """
    k = top_count(density, tau.numel())
    if density >= 1:
        return dense(tau)
    if k == 0:
        return zero_like(tau)
    tau = in_compute_dtype(tau)
    trimmed = MagnitudeBandDelta(tau.reshape(-1), tau.shape,
                                 magnitude_cut(tau, k, order, memo))
    return trimmed.match_l1(tau) if rescale else trimmed


def trim_outliers(tau: torch.Tensor, density: float, gamma: float,
                  rescale: bool, order: np.ndarray | None = None,
                  memo: Memo | None = None) -> SparseDelta:
    """Breadcrumbs (mergekit ``magnitude_outliers``): drop the largest and smallest.

    Of n entries, ``int(gamma * n)`` of largest magnitude go first, then the smallest,
    leaving ``int(density * n)``; when the two shares overlap the outlier cut shrinks so
    the density still holds. density >= 1 keeps everything (gamma ignored), as mergekit.
    ``order`` and ``memo`` are as for :func:`trim_magnitude`.

    >>> trim_outliers(torch.arange(1.0, 11.0), 0.5, 0.2, False).materialize().tolist()
    [0.0, 0.0, 0.0, 4.0, 5.0, 6.0, 7.0, 8.0, 0.0, 0.0]
    """
    if density >= 1:
        return dense(tau)
    tau = in_compute_dtype(tau)
    n = tau.numel()
    keep = int(density * n) if density > 0 else 0
    n_top = int(gamma * n)
    n_bottom = max(0, n - keep - n_top)
    # descending ranks [n - n_bottom - keep, n - n_bottom) are kept
    outer, drop_top = n - n_bottom, n - n_bottom - keep
    if outer == 0:
        return zero_like(tau)
    kept = MagnitudeBandDelta(tau.reshape(-1), tau.shape,
                              magnitude_cut(tau, outer, order, memo),
                              magnitude_cut(tau, drop_top, order, memo) if drop_top else None)
    return kept.match_l1(tau) if rescale else kept


def l1_match(before: float, after: float) -> float:
    """mergekit's rescale factor ``before / after`` of two L1 norms; 1 when either is
    below 1e-7 (nothing meaningful to match).

    >>> l1_match(3.0, 1.5), l1_match(3.0, 0.0)
    (2.0, 1.0)
    """
    if before < L1_RESCALE_EPS or after < L1_RESCALE_EPS:
        return 1.0
    return before / after
