"""Combining sparsified task vectors: a weighted sum, or TIES sign consensus.

Both walk the tensor in chunks that stay in cache, reading every sparse task vector's
chunk once (see :mod:`~evomerge.merge.operators.sparse`), and write the merged delta once.

>>> from evomerge.merge.operators.sparse import dense
>>> a, b = dense(torch.tensor([1.0, -2.0, 3.0])), dense(torch.tensor([-1.0, -1.0, 1.0]))
>>> weighted_sum([a, b], [1.0, 0.5]).tolist()
[0.5, -2.5, 3.5]
>>> sign_consensus([a, b], [1.0, 1.0], normalize=False).tolist()
[1.0, -3.0, 4.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from evomerge.merge.buffers import Buffers
from evomerge.merge.operators.reductions import CPU_STEP
from evomerge.merge.operators.sparse import SparseDelta

#: entries per chunk on a GPU: bounds the scratch memory of a huge tensor
COMBINE_CHUNK = 1 << 22


def combine_chunk(device: torch.device) -> int:
    """Entries per chunk: on CPU a cache-sized step, so that a chunk's working tensors
    stay in the core's cache from one op to the next. Far smaller chunks cost more in
    parallel regions than they save: every chunk is one region per op, and on a busy
    machine each region waits for a descheduled thread (benchmarks/RESULTS.md has both
    measurements)."""
    return CPU_STEP if device.type == "cpu" else COMBINE_CHUNK


def _flat_result(first: SparseDelta, out: torch.Tensor | None) -> torch.Tensor:
    """Where a combination is written: ``out`` (flat, same size) or a new tensor."""
    if out is None:
        return torch.empty(first.numel, dtype=first.flat.dtype, device=first.flat.device)
    if out.numel() != first.numel or out.dtype != first.flat.dtype:
        raise ValueError(f"out has {out.numel()} {out.dtype} entries, the combination "
                         f"{first.numel} {first.flat.dtype}")
    return out.view(-1)


def _chunk_buffers(count: int, first: SparseDelta,
                   buffers: Buffers | None) -> list[torch.Tensor]:
    """``count`` working tensors of one chunk each, from ``buffers`` when given."""
    size, dtype = min(first.numel, combine_chunk(first.flat.device)), first.flat.dtype
    if buffers is not None:
        return [buffers.get(("chunk", i), (size,), dtype) for i in range(count)]
    return [torch.empty(size, dtype=dtype, device=first.flat.device) for _ in range(count)]


def weighted_sum(deltas: Sequence[SparseDelta], weights: Sequence[float],
                 out: torch.Tensor | None = None,
                 buffers: Buffers | None = None) -> torch.Tensor:
    """``sum_m weights[m] * deltas[m]`` (each delta's own scale included), flat; written
    into ``out`` when given (a buffer the caller reuses: no fresh pages to fault in);
    its working chunk comes from ``buffers`` when given."""
    first = deltas[0]
    n = first.numel
    out = _flat_result(first, out)
    terms = [(d, w * d.scale) for d, w in zip(deltas, weights) if w * d.scale != 0]
    if not terms:
        return out.zero_()
    [scratch] = _chunk_buffers(1, first, buffers)
    chunk = combine_chunk(first.flat.device)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        acc, buf = out[start:stop], scratch[:stop - start]
        for i, (delta, coefficient) in enumerate(terms):
            values = delta.values(start, stop, buf)
            if i == 0:
                torch.mul(values, coefficient, out=acc)
            else:
                acc.add_(values, alpha=coefficient)
    return out


def sign_consensus(deltas: Sequence[SparseDelta], weights: Sequence[float],
                   normalize: bool, out: torch.Tensor | None = None,
                   buffers: Buffers | None = None) -> torch.Tensor:
    """TIES sign election and disjoint merge, flat (mergekit's ``sum`` consensus).

    With ``d_m = weights[m] * deltas[m]`` (scale included): per entry the majority sign is
    that of ``sum_m d_m`` (+1 where the sum is >= 0), and the result sums the ``d_m`` that
    carry that sign. Zero entries agree with nothing. With ``normalize`` the sum is divided
    by the total weight of the agreeing models (rescale factors excluded), or by 1 where
    that total is 0. Written into ``out`` when given, working chunks borrowed from
    ``buffers`` when given, as in :func:`weighted_sum`.

    >>> from evomerge.merge.operators.sparse import dense
    >>> a, b = dense(torch.tensor([2.0, 0.0])), dense(torch.tensor([-1.0, 3.0]))
    >>> sign_consensus([a, b], [1.0, 0.5], normalize=True).tolist()
    [2.0, 3.0]
    """
    first = deltas[0]
    n = first.numel
    # a model with weight 0 contributes d_m = 0, which never agrees: leave it out
    out = _flat_result(first, out)
    terms = [(d, w * d.scale, w) for d, w in zip(deltas, weights) if w * d.scale != 0]
    if not terms:
        return out.zero_()
    elect = _elect_normalized if normalize else _elect
    chunks = _chunk_buffers(len(terms) + 4, first, buffers)
    values_buf, work = chunks[:len(terms)], chunks[len(terms):]
    chunk = combine_chunk(first.flat.device)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        size = stop - start
        values = [d.values(start, stop, buf[:size]) for (d, _, _), buf in zip(terms, values_buf)]
        elect(values, terms, out[start:stop], [w[:size] for w in work])
    return out


def _elect(values: list[torch.Tensor], terms: list, acc: torch.Tensor,
           work: list[torch.Tensor]) -> None:
    """One chunk of the election without normalize, from two sums.

    With ``S = sum_m d_m`` and ``A = sum_m |d_m|``, the agreeing terms add up to
    ``(S + copysign(A, S)) / 2``: where ``S >= +0`` that is the sum of the positive
    ``d_m``, where ``S < 0`` the sum of the negative ones, and zero entries count in
    neither. Four passes over memory per two models fewer than testing each term's sign.
    """
    magnitudes, scratch = work[0], work[1]
    halves = [coefficient / 2 for _, coefficient, _ in terms]  # exact in binary
    for i, (v, h) in enumerate(zip(values, halves)):
        if i == 0:  # |h v| from the product just written: no pass to scale |v|
            torch.abs(torch.mul(v, h, out=acc), out=magnitudes)
        else:
            acc.add_(v, alpha=h)
            magnitudes.add_(torch.abs(v, out=scratch), alpha=abs(h))
    acc.add_(torch.copysign(magnitudes, acc, out=magnitudes))


def _elect_normalized(values: list[torch.Tensor], terms: list, acc: torch.Tensor,
                      work: list[torch.Tensor]) -> None:
    """One chunk of the election with normalize: each term's sign is tested, since the
    divisor counts the weights of the agreeing models."""
    majority, sign, agree, divisor = work
    torch.mul(values[0], terms[0][1], out=majority)
    for v, (_, coefficient, _) in zip(values[1:], terms[1:]):
        majority.add_(v, alpha=coefficient)
    # copysign maps sums >= +0 to +1 and < 0 to -1. A sum of -0.0 arises only when
    # every term is a zero, and then no entry agrees with either sign anyway.
    one = torch.ones(1, dtype=acc.dtype, device=acc.device)  # broadcast, never a chunk
    torch.copysign(one.expand(acc.numel()), majority, out=majority)
    acc.zero_()
    divisor.zero_()
    for v, (_, coefficient, weight) in zip(values, terms):
        torch.sign(v, out=sign)
        if coefficient < 0:  # sign(d_m) = sign(weight) * sign(value)
            sign.neg_()
        torch.eq(sign, majority, out=agree)
        acc.addcmul_(v, agree, value=coefficient)
        divisor.add_(agree, alpha=weight)
    # where no model agrees (or agreeing weights cancel), divide by 1 as mergekit does
    torch.eq(divisor, 0, out=agree)
    acc.div_(divisor.add_(agree))


def linear_combination(terms: Sequence[tuple[torch.Tensor, float]],
                       out: torch.Tensor) -> torch.Tensor:
    """``out = sum_m c_m * t_m`` for ``(t_m, c_m)`` in ``terms``, written in place.

    Memory traffic is what this costs, so it takes the fewest passes torch offers: two
    terms whose coefficients sum to 1 are one ``lerp``, a leading coefficient of 1 folds
    the first two terms into one ``add``, and every further term is one ``add_``. ``out``
    must not alias an input. Terms with coefficient 0 are skipped.

    >>> a, b, c = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 6.0]), torch.tensor([1.0, 1.0])
    >>> linear_combination([(a, 0.25), (b, 0.75)], torch.empty(2)).tolist()
    [2.5, 5.0]
    >>> linear_combination([(a, 1.0), (b, 0.5), (c, -1.0)], torch.empty(2)).tolist()
    [1.5, 4.0]
    >>> linear_combination([(a, 0.0)], torch.empty(2)).tolist()
    [0.0, 0.0]
    """
    live = [(t, float(c)) for t, c in terms if c != 0]
    if not live:
        return out.zero_()
    (first, c0), rest = live[0], live[1:]
    if len(rest) == 1 and c0 + rest[0][1] == 1.0:
        return torch.lerp(first, rest[0][0], rest[0][1], out=out)
    if rest and c0 == 1.0:
        torch.add(first, rest[0][0], alpha=rest[0][1], out=out)
        rest = rest[1:]
    else:
        torch.mul(first, c0, out=out)
    for tensor, coefficient in rest:
        out.add_(tensor, alpha=coefficient)
    return out
