"""Model Stock (Jang et al. 2024): how far to move from the base toward the models' mean.

With task vectors ``tau_1..tau_k`` and ``cos`` the mean of their pairwise cosines, the
merged delta is ``t * mean(tau)`` with ``t = k cos / (1 + (k - 1) cos)``, i.e. mergekit's
``t * average + (1 - t) * base`` written as a delta. As mergekit: norm products are clamped
at 1e-6, cosines to [-1, 1], and where ``|1 + (k - 1) cos| < 1e-6`` (no finite estimate)
``t = 0`` keeps the base. ``filter_wise`` takes one cosine per row (over the last dim)
instead of one per tensor.

>>> a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
>>> MODEL_STOCK([a, b], MODEL_STOCK.resolve_params({}, n_models=2)).tolist()
[0.0, 0.0]
>>> MODEL_STOCK([a, a], MODEL_STOCK.resolve_params({}, n_models=2)).tolist()
[1.0, 0.0]
"""

from __future__ import annotations

import torch

from evomerge.merge.engine import MergeContext
from evomerge.merge.operators.combine import weighted_sum
from evomerge.merge.operators.reductions import gram
from evomerge.merge.operators.sparse import dense
from evomerge.merge.operators.spec import MergeOperator, ParamSpec, ParamValue, in_compute_dtype

#: norm products are clamped to at least this (mergekit)
NORM_PRODUCT_EPS = 1e-6
#: below this |1 + (k - 1) cos| the ratio has no finite estimate: keep the base
SINGULAR_EPS = 1e-6


def interpolation_ratio(taus: list[torch.Tensor], filter_wise: bool) -> torch.Tensor:
    """``t`` per tensor (0-d) or per row (``filter_wise``, shape ``[..., 1]``)."""
    k = len(taus)
    if filter_wise and taus[0].dim() >= 2:  # rows are short: torch's own sums are exact enough
        norms = [torch.linalg.vector_norm(t, dim=-1) for t in taus]

        def dot(i: int, j: int) -> torch.Tensor:
            return torch.linalg.vecdot(taus[i], taus[j], dim=-1)
    else:  # one cosine for the whole tensor, from sums that stay accurate at any size
        products = gram(taus).to(taus[0].dtype)
        norms = list(products.diagonal().sqrt())

        def dot(i: int, j: int) -> torch.Tensor:
            return products[i, j]
    cos_sum = torch.zeros_like(norms[0])
    for i in range(k):
        for j in range(i + 1, k):
            cos = dot(i, j) / (norms[i] * norms[j]).clamp(min=NORM_PRODUCT_EPS)
            cos_sum += cos.clamp(-1, 1)
    cos = cos_sum / (k * (k - 1) // 2)
    denominator = 1 + (k - 1) * cos
    singular = denominator.abs() < SINGULAR_EPS
    ratio = k * cos / torch.where(singular, torch.ones_like(denominator), denominator)
    ratio = torch.where(singular, torch.zeros_like(ratio), ratio)
    return ratio.unsqueeze(-1) if filter_wise and taus[0].dim() >= 2 else ratio


def model_stock(tensors: list[torch.Tensor], params: dict[str, ParamValue], *,
                base: torch.Tensor | None, generator: torch.Generator | None,
                ctx: MergeContext, out: torch.Tensor | None) -> torch.Tensor:
    taus = [in_compute_dtype(t) for t in tensors]
    ratio = interpolation_ratio(taus, params["filter_wise"])
    mean = weighted_sum([dense(t) for t in taus], [1.0] * len(taus),
                        out=None if out is None else out.view(-1), buffers=ctx.buffers)
    return mean.div_(len(taus)).view(taus[0].shape).mul_(ratio)


MODEL_STOCK = MergeOperator(
    name="model_stock", kind="delta", needs_base=True, random=False, min_models=2,
    fn=model_stock,
    params=(ParamSpec("filter_wise", per_model=False, default=False,
                      doc="one ratio per row (output filter) instead of per tensor"),),
    doc="move from the base toward the mean by a ratio set by the models' agreement")
