"""The dtypes a recipe or command may name, in one place.

>>> torch_dtype("bfloat16")
torch.bfloat16
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: names a recipe's ``dtype`` / ``out_dtype`` and ``evomerge merge --dtype`` accept
DTYPE_NAMES = ("float32", "float16", "bfloat16", "float64")
#: how a disk merge computes: in the recipe's dtype as mergekit does (16-bit recipes
#: round where mergekit rounds), or in float32 with only the result cast
COMPUTE_MODES = ("dtype", "float32")


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of one of :data:`DTYPE_NAMES`."""
    import torch

    if name not in DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_NAMES)}, got {name!r}")
    return getattr(torch, name)
