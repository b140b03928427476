"""Passthrough: one model's tensor, optionally scaled (frankenmerge slices).

Which layers go where is the engine's business; the operator only returns its single
input, times ``scale`` (mergekit's passthrough ``scale``). With scale 1 and no ``out`` the
input itself is returned, not a copy.

>>> x = torch.tensor([1.0, -2.0])
>>> PASSTHROUGH([x], PASSTHROUGH.resolve_params({}, n_models=1)) is x
True
>>> PASSTHROUGH([x], {"scale": [0.5]}).tolist()
[0.5, -1.0]
"""

from __future__ import annotations

import torch

from evomerge.merge.engine import MergeContext
from evomerge.merge.operators.spec import MergeOperator, ParamSpec, ParamValue, in_compute_dtype


def passthrough(tensors: list[torch.Tensor], params: dict[str, ParamValue], *,
                base: torch.Tensor | None, generator: torch.Generator | None,
                ctx: MergeContext, out: torch.Tensor | None) -> torch.Tensor:
    (tensor,) = tensors
    (scale,) = params["scale"]
    tensor = in_compute_dtype(tensor)
    if out is not None:
        return torch.mul(tensor, scale, out=out)
    return tensor if scale == 1 else torch.mul(tensor, scale)


PASSTHROUGH = MergeOperator(
    name="passthrough", kind="weight", needs_base=False, random=False,
    min_models=1, max_models=1, fn=passthrough,
    params=(ParamSpec("scale", per_model=True, default=1.0,
                      doc="multiplies the tensor (e.g. 0 silences a layer's output)"),),
    doc="one model's tensor as is")
