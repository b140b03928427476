"""Objectives measured on the weights themselves rather than on model outputs.

``l1_from_base``: the L1 distance of the candidate's weights from the base model's,
sum over tensors of sum |theta - theta_base|, minimised. Multi-objective merging
(MM-MO) pairs it with task scores to prefer merges that stay close to the base. The base
weights come from the caller as a mapping of tensor names to tensors, or a callable
returning one (so a worker can hand over the weights it already holds); only tensors
named there are compared, and a name the candidate lacks fails the evaluation.

>>> import torch
>>> base = torch.nn.Linear(2, 2)
>>> model = torch.nn.Linear(2, 2)
>>> model.load_state_dict(base.state_dict())
<All keys matched successfully>
>>> ev = L1FromBase(lambda: base.state_dict())
>>> ev.evaluate(model, None).objectives
{'l1_from_base': 0.0}
>>> with torch.no_grad():
...     _ = model.bias.add_(torch.tensor([0.5, -0.25]))
>>> round(ev.evaluate(model, None).objectives["l1_from_base"], 6)
0.75
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from evomerge.evaluate.base import Evaluator, Scores
from evomerge.records import Direction

ReferenceState = Mapping[str, Any] | Callable[[], Mapping[str, Any]]


def l1_distance(state: Mapping[str, Any], reference: Mapping[str, Any]) -> float:
    """Sum of |a - b| over the tensors named in ``reference`` (accumulated in float64).

    >>> import torch
    >>> l1_distance({"w": torch.ones(3)}, {"w": torch.zeros(3)})
    3.0
    """
    total = 0.0
    for name, ref in reference.items():
        if name not in state:
            raise KeyError(f"the model has no tensor {name!r} that the base model has")
        mine = state[name]
        if tuple(mine.shape) != tuple(ref.shape):
            raise ValueError(f"tensor {name!r} has shape {tuple(mine.shape)} in the model "
                             f"but {tuple(ref.shape)} in the base model")
        diff = mine.detach().double() - ref.detach().to(mine.device).double()
        total += float(diff.abs().sum())
    return total


class L1FromBase(Evaluator):
    """The ``l1_from_base`` objective; see the module docstring."""

    kind = "l1_from_base"

    def __init__(self, reference_state: ReferenceState):
        self._reference = reference_state

    def objectives(self) -> dict[str, Direction]:
        return {"l1_from_base": "minimize"}

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def score(self, model: Any, tokenizer: Any) -> Scores:
        reference = self._reference() if callable(self._reference) else self._reference
        return Scores({"l1_from_base": l1_distance(model.state_dict(), reference)})
