"""Linear merge: a weighted average of the raw tensors (Wortsman et al. 2022, "model soups").

``sum_m w_m theta_m``, divided by ``sum_m w_m`` when ``normalize`` is on (mergekit's
default). Weights that sum to zero with ``normalize`` are refused up front; mergekit would
divide by zero.

>>> op = LINEAR
>>> params = op.resolve_params({"weight": [1.0, 3.0]}, n_models=2)
>>> op([torch.tensor([0.0, 4.0]), torch.tensor([4.0, 0.0])], params).tolist()
[3.0, 1.0]
"""

from __future__ import annotations

import torch

from evomerge.errors import ConfigError
from evomerge.merge.engine import MergeContext
from evomerge.merge.operators.combine import weighted_sum
from evomerge.merge.operators.sparse import dense
from evomerge.merge.operators.spec import MergeOperator, ParamSpec, ParamValue

#: a normalized weight sum closer to zero than this would blow the result up
MIN_WEIGHT_SUM = 1e-8


def linear(tensors: list[torch.Tensor], params: dict[str, ParamValue], *,
           base: torch.Tensor | None, generator: torch.Generator | None,
           ctx: MergeContext, out: torch.Tensor | None) -> torch.Tensor:
    merged = weighted_sum([dense(t) for t in tensors], linear_coefficients(tensors, params),
                          out=None if out is None else out.view(-1), buffers=ctx.buffers)
    return merged.view(tensors[0].shape)


def linear_coefficients(tensors: list[torch.Tensor],
                        params: dict[str, ParamValue]) -> list[float]:
    """Each tensor's factor in the result: its weight, over the weight sum if normalized."""
    weights = [float(w) for w in params["weight"]]
    total = sum(weights) if params["normalize"] else 1.0
    return [w / total for w in weights]


def _check(params: dict[str, ParamValue]) -> None:
    total = float(sum(params["weight"]))
    if params["normalize"] and abs(total) < MIN_WEIGHT_SUM:
        raise ConfigError(None, "weight", params["weight"],
                          f"with normalize the weights must not sum to zero (sum = {total})")


LINEAR = MergeOperator(
    name="linear", kind="weight", needs_base=False, random=False, fn=linear, check=_check,
    coefficients=linear_coefficients,
    params=(ParamSpec("weight", per_model=True, default=None,
                      doc="this model's share of the average"),
            ParamSpec("normalize", per_model=False, default=True,
                      doc="divide by the sum of weights")),
    doc="weighted average of the models' tensors")
