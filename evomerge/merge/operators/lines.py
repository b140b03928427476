"""LiNeS (Wang et al. 2025, "LiNeS: post-training layer scaling prevents forgetting and
enhances model merging"): scale the merged task vector of block l by
``alpha + beta * l / (L - 1)`` (0-based l of L blocks), tensors outside blocks by alpha,
so shallow layers, which hold general features, move less than deep ones.

It is applied to the merged delta of any task-vector (``kind == "delta"``) operator: the
caller computes ``base + lines_scale(...) * merged_delta``. The paper scales the merged
multi-task vector, and for every delta operator here that equals scaling each task vector
before merging, because each operator works on one tensor at a time and is positively
homogeneous in its task vectors (f(s tau) = s f(tau) for s > 0):
task arithmetic and the linear variants are linear; the TIES, Breadcrumbs and DELLA
masks depend only on magnitude ranks, DARE's only on the generator; the L1 rescale factor
is a ratio of norms; the sign election and the agreeing sum scale with s while the
``normalize`` divisor uses weights only; Model Stock's cosines ignore scale.
Where it does not hold exactly: (1) the absolute epsilons -- the L1 rescale is skipped
when a norm falls below 1e-7 and Model Stock clamps norm products at 1e-6, so tiny task
vectors can land on different sides of those guards; (2) a scale <= 0 (alpha <= 0 or
alpha + beta <= 0): zero gives zero either way, but a negative scale flips TIES's tie
rule where the sign sum is exactly 0 (ties go to +); (3) float rounding. Weight
operators (linear, slerp, passthrough) have no task vector to scale.

>>> [lines_scale(layer, 5, alpha=0.2, beta=0.8) for layer in (0, 2, 4)]
[0.2, 0.6000000000000001, 1.0]
>>> lines_scale(None, 5, alpha=0.2, beta=0.8)
0.2
"""

from __future__ import annotations

from evomerge.merge.operators.spec import ParamSpec

#: LiNeS settings (alpha 1, beta 0 scale nothing)
LINES_PARAMS = (
    ParamSpec("alpha", per_model=False, default=1.0,
              doc="scale of the first block's merged task vector, and of non-block tensors"),
    ParamSpec("beta", per_model=False, default=0.0,
              doc="added scale at the last block, linear in depth"),
)


def lines_scale(layer: int | None, num_layers: int, alpha: float, beta: float) -> float:
    """The LiNeS factor of a tensor in block ``layer`` (None: not in a block).

    A model of one block scales it by alpha (it is the first block).
    """
    if layer is None or num_layers <= 1:
        return alpha
    if not 0 <= layer < num_layers:
        raise ValueError(f"layer must lie in [0, {num_layers - 1}], got {layer}")
    return alpha + beta * layer / (num_layers - 1)
