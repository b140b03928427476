"""One random generator per (recipe seed, tensor name), so a recipe rebuilds bit-identically.

The seed is derived with SHA-256, not Python's ``hash()`` (salted per process), so it is
the same in every process and on every machine. Streams are per device type: the same
seed gives different draws on CPU and CUDA.

>>> a = torch.rand(3, generator=tensor_generator(7, "model.layers.0.mlp.up_proj.weight"))
>>> b = torch.rand(3, generator=tensor_generator(7, "model.layers.0.mlp.up_proj.weight"))
>>> bool(torch.equal(a, b))
True
>>> c = torch.rand(3, generator=tensor_generator(7, "model.layers.1.mlp.up_proj.weight"))
>>> bool(torch.equal(a, c))
False
"""

from __future__ import annotations

import hashlib

import torch


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
    """A fresh generator on ``device`` seeded from (seed, tensor name)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derived_seed(seed, tensor_name))
    return generator
