"""Checkpoint I/O: lazy reading, architecture facts, compatibility checks, atomic writing.

The architecture facts are regular expressions over tensor names and import nothing
heavy; reading, writing and the compatibility check (which need torch) are imported on
first use, so a config check that only asks which layer a tensor belongs to stays light.

>>> from evomerge.checkpoint import CheckpointReader, CheckpointWriter, tensor_info
>>> tensor_info("model.layers.0.mlp.up_proj.weight").group
'mlp'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evomerge.checkpoint.architecture import (
    TensorGroup,
    TensorInfo,
    filter_matches,
    is_output_head,
    is_token_embedding,
    layer_prefix,
    layer_stack,
    num_layers,
    rename_layer,
    tensor_info,
)

if TYPE_CHECKING:
    from evomerge.checkpoint.compat import check_compatible
    from evomerge.checkpoint.reader import CheckpointReader
    from evomerge.checkpoint.writer import CheckpointWriter

#: names that need torch, and the module each lives in
_TORCH_BACKED = {"CheckpointReader": "reader", "CheckpointWriter": "writer",
                 "check_compatible": "compat"}


def __getattr__(name: str) -> Any:
    module = _TORCH_BACKED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "CheckpointReader",
    "CheckpointWriter",
    "TensorGroup",
    "TensorInfo",
    "check_compatible",
    "filter_matches",
    "is_output_head",
    "is_token_embedding",
    "layer_prefix",
    "layer_stack",
    "num_layers",
    "rename_layer",
    "tensor_info",
]
