"""RAM and RAM+ (tensor-local): Reinforced Agent Merging over task vectors.

An entry of a task vector contributes when ``|tau| > epsilon``. Where exactly one model
contributes, its value is kept whole; where several do, they are averaged (each divided
by the number contributing), so that a model's unique updates are not diluted by models
that left the entry alone. RAM+ also scales each model's unique entries by
``1 + r * clamp(shared / unique, 0, alpha)``, with ``shared`` and ``unique`` the counts
of its contributing entries that other models share or not (``unique`` at least
``epsilon``). As mergekit 0.1.5 defines them (``ramplus_tl``: the ratio per tensor).

>>> taus = [torch.tensor([1.0, 2.0, 0.0]), torch.tensor([3.0, 0.0, 0.0])]
>>> RAM(taus, RAM.resolve_params({}, n_models=2)).tolist()
[2.0, 2.0, 0.0]
"""

from __future__ import annotations

import torch

from evomerge.merge.operators.spec import (
    MergeOperator,
    ParamSpec,
    ParamValue,
    whole_tensor,
)


def ram(taus: list[torch.Tensor], epsilon: float, r: float = 0.0,
        alpha: float = 0.0) -> torch.Tensor:
    """The merged task vector; ``r = 0`` is RAM, ``r > 0`` RAM+ (tensor-local)."""
    flat = torch.stack([t.reshape(-1) for t in taus])
    contributes = flat.abs() > epsilon
    count = contributes.sum(dim=0, keepdim=True)
    unique, shared = count == 1, count > 1
    kept = flat * contributes
    if r:
        ratio = (contributes & shared).sum(dim=1) / (contributes & unique).sum(dim=1).clamp(
            min=epsilon)
        boost = (1 + r * ratio.clamp(min=0, max=alpha)).unsqueeze(-1)
    else:
        boost = 1
    merged = (kept * unique * boost + kept * shared / count.clamp(min=1)).sum(dim=0)
    return merged.view(taus[0].shape)


def _ram(tensors: list[torch.Tensor], params: dict[str, ParamValue]) -> torch.Tensor:
    return ram(tensors, params["epsilon"])


def _ramplus(tensors: list[torch.Tensor], params: dict[str, ParamValue]) -> torch.Tensor:
    return ram(tensors, params["epsilon"], params["r"], params["alpha"])


EPSILON = ParamSpec("epsilon", per_model=False, default=1e-5, low=0.0,
                    doc="a task-vector entry contributes when its magnitude exceeds this")

RAM = MergeOperator(
    name="ram", kind="delta", needs_base=True, random=False, fn=whole_tensor(_ram), formula=_ram,
    params=(EPSILON,),
    doc="keep unique updates whole, average shared ones (Reinforced Agent Merging)")
RAMPLUS_TL = MergeOperator(
    name="ramplus_tl", kind="delta", needs_base=True, random=False, fn=whole_tensor(_ramplus), formula=_ramplus,
    params=(ParamSpec("r", per_model=False, default=0.1, low=0.0,
                      doc="how much the shared-to-unique ratio boosts unique updates"),
            ParamSpec("alpha", per_model=False, default=0.2, low=0.0,
                      doc="the ratio is clamped to at most this"),
            EPSILON),
    doc="RAM with unique updates boosted by the shared-to-unique ratio, per tensor (RAM+)")
