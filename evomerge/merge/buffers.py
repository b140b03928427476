"""Reusable tensors for a merge that runs over many tensors, one after another.

A fresh multi-megabyte tensor costs a page fault per 4 KB page the first time it is
written (the allocator hands large blocks back to the system when they are freed), and
that costs about as much as the merge arithmetic itself. Keeping a few buffers, grown to
the largest tensor seen, pays it once per merge instead of once per tensor.

>>> buffers = Buffers("cpu")
>>> a = buffers.get("out", (2, 3), torch.float32)
>>> b = buffers.get("out", (3,), torch.float32)
>>> a.data_ptr() == b.data_ptr(), b.shape
(True, torch.Size([3]))
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import torch


class Buffers:
    """Named flat buffers on one device; ``get`` views one as the shape asked for.

    A buffer is reused by the next ``get`` of its name, so a caller holds on to a view
    only until then.
    """

    def __init__(self, device: str | torch.device):
        self.device = torch.device(device)
        self._flat: dict[Hashable, torch.Tensor] = {}

    def get(self, name: Hashable, shape: tuple[int, ...] | torch.Size,
            dtype: torch.dtype) -> torch.Tensor:
        numel = math.prod(shape)
        flat = self._flat.get(name)
        if flat is None or flat.dtype != dtype or flat.numel() < numel:
            flat = self._flat[name] = torch.empty(numel, dtype=dtype, device=self.device)
        return flat[:numel].view(shape)
