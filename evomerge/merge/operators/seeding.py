"""Seeded, device-independent random draws: one source per (recipe seed, tensor name).

The seed is derived with SHA-256, not Python's ``hash()`` (salted per process), so it is
the same in every process and on every machine.

Random operators never draw from a device's generator. Each draw takes a 64-bit
:class:`DrawKey` from its source (:func:`next_key`) and computes its numbers from the
key and each number's position (counter-based, :func:`counter_hash`), so the same seed
gives the same numbers on CPU and on CUDA, for any chunking or thread split. A source is
either a :class:`TensorSeed` or a ``torch.Generator`` (what :func:`tensor_generator`
gives, on any device): both step the same 64-bit state, so they give the same keys.

>>> a = next_key(tensor_generator(7, "model.layers.0.mlp.up_proj.weight"))
>>> b = next_key(tensor_seed(7, "model.layers.0.mlp.up_proj.weight"))
>>> a == b
True
>>> a == next_key(tensor_seed(7, "model.layers.1.mlp.up_proj.weight"))
False

Three implementations of the hash give the same bits: :func:`counter_hash`, the formula
computed one number at a time in Python (the reference); :func:`hash_range_numpy` and
:func:`hash_numpy` in numpy's wrapping uint32 arithmetic (CPU); :func:`hash_torch` in
int64 tensors with every intermediate kept below 2**63 (any device).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
import torch

M32 = (1 << 32) - 1
M64 = (1 << 64) - 1
#: 2**64 / golden ratio: splitmix64's state step
GOLDEN64 = 0x9E3779B97F4A7C15
#: 2**32 / golden ratio: folds a counter's high 32 bits into the key
GOLDEN32 = 0x9E3779B9
#: the multipliers of the "lowbias32" integer hash (C. Wellons, hash-prospector)
MUL_A, MUL_B = 0x7FEB352D, 0x846CA68B

#: counters hashed per numpy call on CPU: large enough that two threads seldom wait for
#: the GIL between numpy's calls, small enough (1 MiB a buffer) to stay in cache
HASH_CHUNK = 1 << 18

#: a 32-bit key pair ``(k0, k1)``: ``k0`` offsets the counter, ``k1`` enters mid-hash
StreamKey = tuple[int, int]


def derived_seed(seed: int, tensor_name: str) -> int:
    """A stable 64-bit seed from (seed, tensor name).

    >>> derived_seed(0, "lm_head.weight") == derived_seed(0, "lm_head.weight")
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    # the NUL separator keeps (1, "2x") and (12, "x") apart
    digest = hashlib.sha256(f"{seed}\x00{tensor_name}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def tensor_generator(seed: int, tensor_name: str,
                     device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh generator on ``device`` seeded from (seed, tensor name).

    As a source for :func:`next_key` it gives the same keys on every device.
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(derived_seed(seed, tensor_name))
    return generator


@dataclass
class TensorSeed:
    """A device-free source of draw keys: a 64-bit state stepped once per draw."""

    state: int

    def __post_init__(self) -> None:
        if not 0 <= self.state <= M64:
            raise ValueError(f"a TensorSeed's state is a 64-bit unsigned int, got {self.state}")


def tensor_seed(seed: int, tensor_name: str) -> TensorSeed:
    """The source of (seed, tensor name): the same keys as its :func:`tensor_generator`."""
    return TensorSeed(derived_seed(seed, tensor_name))


def mix64(z: int) -> int:
    """splitmix64's output function (a bijection of 64-bit ints)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


@dataclass(frozen=True)
class DrawKey:
    """The key of one draw. Its numbered streams are independent sequences of 32-bit
    numbers, :func:`counter_hash` of (``stream(j)``, position)."""

    value: int

    def stream(self, j: int) -> StreamKey:
        z = mix64((self.value + j * GOLDEN64) & M64)
        return z & M32, z >> 32


Source = torch.Generator | TensorSeed


def next_key(source: Source) -> DrawKey:
    """The next draw's key from ``source``, stepping it (splitmix64: ``state += GOLDEN64``,
    key = ``mix64(state)``).

    A generator's state is its seed: the step reseeds it, so whatever else is drawn from
    it, on whatever device, the keys follow from the seed it was given alone.
    """
    if isinstance(source, TensorSeed):
        source.state = (source.state + GOLDEN64) & M64
        return DrawKey(mix64(source.state))
    if isinstance(source, torch.Generator):
        state = (source.initial_seed() + GOLDEN64) & M64
        source.manual_seed(state)
        return DrawKey(mix64(state))
    raise TypeError(f"a draw source is a torch.Generator or a TensorSeed, got {source!r}")


# --- the counter hash, three ways -------------------------------------------------------

def counter_hash(key: StreamKey, n: int) -> int:
    """The 32-bit number at position ``n`` (0 <= n < 2**64) of stream ``key``: the reference.

    "lowbias32" (two multiply-xorshift rounds) of ``n``'s low half offset by ``k0``, with
    ``k1`` (and ``n``'s high half) mixed in between the rounds.
    """
    k0, k1 = key
    x = (k0 + (n & M32)) & M32
    x ^= x >> 16
    x = (x * MUL_A) & M32
    x ^= x >> 15
    x ^= (k1 + (n >> 32) * GOLDEN32) & M32
    x = (x * MUL_B) & M32
    x ^= x >> 16
    return x


def _lowbias_numpy(x: np.ndarray, inject, t: np.ndarray) -> None:
    """:func:`counter_hash` after the offset, in place on uint32 ``x`` (``t``: scratch)."""
    np.right_shift(x, 16, out=t)
    np.bitwise_xor(x, t, out=x)
    np.multiply(x, np.uint32(MUL_A), out=x)
    np.right_shift(x, 15, out=t)
    np.bitwise_xor(x, t, out=x)
    np.bitwise_xor(x, inject, out=x)
    np.multiply(x, np.uint32(MUL_B), out=x)
    np.right_shift(x, 16, out=t)
    np.bitwise_xor(x, t, out=x)


@functools.cache
def _counting(length: int) -> np.ndarray:
    counting = np.arange(length, dtype=np.uint32)
    counting.flags.writeable = False
    return counting


def hash_range_numpy(key: StreamKey, start: int, out: np.ndarray) -> None:
    """``out[j] = counter_hash(key, start + j)`` for a uint32 array ``out``, computed a
    cache-sized chunk at a time (numpy releases the GIL: parts may run on threads)."""
    k0, k1 = key
    counting = _counting(HASH_CHUNK)
    scratch = np.empty(min(HASH_CHUNK, out.size), dtype=np.uint32)
    done = 0
    while done < out.size:
        n = start + done
        # a chunk never spans two values of the counter's high half
        size = min(HASH_CHUNK, out.size - done, (1 << 32) - (n & M32))
        x = out[done:done + size]
        np.add(counting[:size], np.uint32((k0 + n) & M32), out=x)
        _lowbias_numpy(x, np.uint32((k1 + (n >> 32) * GOLDEN32) & M32), scratch[:size])
        done += size


def hash_numpy(key: StreamKey, counters: np.ndarray) -> np.ndarray:
    """``counter_hash(key, n)`` for each n of ``counters`` (uint64), as uint32."""
    k0, k1 = key
    counters = np.asarray(counters, dtype=np.uint64)
    x = (counters & np.uint64(M32)).astype(np.uint32)
    x += np.uint32(k0)
    high = (counters >> np.uint64(32)).astype(np.uint32)
    high *= np.uint32(GOLDEN32)
    high += np.uint32(k1)
    _lowbias_numpy(x, high, np.empty_like(x))
    return x


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``x * c mod 2**32`` for int64 ``x`` in [0, 2**32), never above 2**50 on the way."""
    high, low = divmod(c, 1 << 16)
    return ((x * high).bitwise_and_(0xFFFF).bitwise_left_shift_(16).add_(x * low)
            .bitwise_and_(M32))


def hash_torch(key: StreamKey, counters: torch.Tensor) -> torch.Tensor:
    """``counter_hash(key, n)`` for each n of ``counters`` (int64, >= 0), as int64 in
    [0, 2**32), on ``counters``' device. Integer ops on values kept below 2**63 are exact
    everywhere, so every device gives the reference's bits."""
    k0, k1 = key
    x = (counters & M32).add_(k0).bitwise_and_(M32)
    x ^= x >> 16
    x = _mul32(x, MUL_A)
    x ^= x >> 15
    # (2**31 - 1) * GOLDEN32 + k1 < 2**63
    x ^= (counters >> 32).mul_(GOLDEN32).add_(k1).bitwise_and_(M32)
    x = _mul32(x, MUL_B)
    x ^= x >> 16
    return x
