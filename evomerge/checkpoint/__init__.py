"""Checkpoint I/O: lazy reading, architecture facts, compatibility checks, atomic writing.

>>> from evomerge.checkpoint import CheckpointReader, CheckpointWriter, tensor_info
>>> tensor_info("model.layers.0.mlp.up_proj.weight").group
'mlp'
"""

from evomerge.checkpoint.architecture import (
    TensorGroup,
    TensorInfo,
    filter_matches,
    is_output_head,
    is_token_embedding,
    layer_prefix,
    num_layers,
    rename_layer,
    tensor_info,
)
from evomerge.checkpoint.compat import check_compatible
from evomerge.checkpoint.reader import CheckpointReader
from evomerge.checkpoint.writer import CheckpointWriter

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
    "num_layers",
    "rename_layer",
    "tensor_info",
]
