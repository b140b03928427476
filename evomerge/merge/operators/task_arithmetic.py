"""Task-vector methods: task arithmetic, TIES, DARE, Breadcrumbs and DELLA.

They are one family (mergekit's "generalized task arithmetic"): sparsify each task vector
``tau_m``, weight it, then either sum (``*_linear``, task arithmetic, breadcrumbs) or
elect signs and sum the agreeing entries (TIES-style consensus); optionally divide by the
weights (``normalize``), then multiply by ``lambda``. Defaults follow mergekit 0.1.5
method by method, so a mergekit config means the same thing here.

=================  ===============  =========  =========  =======
method             sparsification   consensus  normalize  rescale
=================  ===============  =========  =========  =======
task_arithmetic    none             no         false      -
ties               magnitude        sum        true       false
dare_linear        random           no         false      true
dare_ties          random           sum        false      true
breadcrumbs        outliers         no         false      false
breadcrumbs_ties   outliers         sum        false      false
della_linear       rank (MagPrune)  no         false      true
della              rank (MagPrune)  sum        true       true
=================  ===============  =========  =========  =======

``rescale`` matches each sparsified task vector's L1 norm to the original (mergekit);
for DARE and DELLA, ``rescale_by_probability`` instead divides survivors by their keep
probability, as the papers do. Random methods draw each model's mask from the one
generator, in model order. :mod:`~evomerge.merge.operators.reference` writes each method
on whole tensors, as the papers do; the tests hold these to it.

>>> tau_a, tau_b = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 2.0])
>>> op = TASK_ARITHMETIC
>>> op([tau_a, tau_b], op.resolve_params({"weight": [1.0, 0.5]}, 2)).tolist()
[2.5, -1.0]
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from evomerge.errors import ConfigError
from evomerge.merge.engine import MergeContext
from evomerge.merge.operators.combine import sign_consensus, weighted_sum
from evomerge.merge.operators.random_drop import Rescale, drop_by_rank, drop_random, lane_words
from evomerge.merge.operators.sparse import (TASK_VECTOR_L1, SparseDelta, dense,
                                             trim_magnitude, trim_outliers)
from evomerge.merge.operators.spec import MergeOperator, ParamSpec, ParamValue, compute_dtype
from evomerge.merge.operators.topk import SORTED_MAGNITUDES

#: tensors at least this large have their task vectors sparsified side by side; below
#: it, one selection after another with multi-threaded ops is as fast (measured in
#: benchmarks/RESULTS.md)
SIDE_BY_SIDE_NUMEL = 1 << 21
#: mergekit leaves the weight sum as the divisor unless it is this close to zero
WEIGHT_SUM_EPS = 1e-8

WEIGHT = ParamSpec("weight", per_model=True, default=None,
                   doc="multiplies this model's (sparsified) task vector")
DENSITY = ParamSpec("density", per_model=True, default=1.0, low=0.0, high=1.0,
                    doc="share of each task vector's entries kept")
GAMMA = ParamSpec("gamma", per_model=True, default=0.01, low=0.0, high=1.0,
                  doc="share of largest-magnitude entries dropped as outliers")
EPSILON = ParamSpec("epsilon", per_model=True, default=0.15, low=0.0, high=1.0,
                    doc="keep probabilities span density +/- epsilon by magnitude rank; "
                        "both ends must lie strictly inside (0, 1)")
LAMBDA = ParamSpec("lambda", per_model=False, default=1.0,
                   doc="multiplies the merged task vector")
INT8_MASK = ParamSpec("int8_mask", per_model=False, default=False,
                      doc="accepted for mergekit configs; only changes mergekit's memory "
                          "use, never the result")
BY_PROBABILITY = ParamSpec("rescale_by_probability", per_model=False, default=False,
                           doc="with rescale: divide survivors by their keep probability "
                               "(the papers) instead of matching the L1 norm (mergekit)",
                           mergekit=False)

#: (task vector, parameters, model index, generator, context) -> sparsified task vector
Sparsify = Callable[[torch.Tensor, dict[str, ParamValue], int, torch.Generator | None,
                     MergeContext], SparseDelta]


def _rescale_mode(params: dict[str, ParamValue]) -> Rescale:
    if not params.get("rescale", False):
        return "none"
    return "probability" if params.get("rescale_by_probability", False) else "l1"


def _by_magnitude(tau, params, i, generator, ctx):
    return trim_magnitude(tau, params["density"][i], rescale=params["rescale"],
                          order=ctx.recall(i, SORTED_MAGNITUDES), memo=ctx.memo)


def _by_outliers(tau, params, i, generator, ctx):
    return trim_outliers(tau, params["density"][i], params["gamma"][i],
                         rescale=params["rescale"], order=ctx.recall(i, SORTED_MAGNITUDES),
                         memo=ctx.memo)


def _at_random(tau, params, i, generator, ctx):
    # each model's kept entries live until the combination: one buffer per model
    mask = ctx.buffers.get(("kept", i), (tau.numel(),), compute_dtype(tau))
    words = ctx.buffers.get("lanes", (lane_words(tau.numel()),), torch.int64)
    return drop_random(tau, params["density"][i], generator, _rescale_mode(params),
                       mask=mask, words=words, each=ctx.each)


def _by_rank(tau, params, i, generator, ctx):
    return drop_by_rank(tau, params["density"][i], params["epsilon"][i], generator,
                        _rescale_mode(params), each=ctx.each)


def _keep_all(tau, params, i, generator, ctx):
    return dense(tau)


def _check_della(params: dict[str, ParamValue]) -> None:
    for i, (density, epsilon) in enumerate(zip(params["density"], params["epsilon"])):
        if 0 < density < 1 and not (0 < density - epsilon and density + epsilon < 1):
            raise ConfigError(None, f"epsilon[{i}]", epsilon,
                              f"density - epsilon and density + epsilon must lie strictly "
                              f"inside (0, 1), with density[{i}] = {density}")


def sum_factors(tensors: list[torch.Tensor], params: dict[str, ParamValue]) -> list[float]:
    """Each (sparsified) task vector's factor when the family simply sums them: its
    weight, over the weight sum with ``normalize`` (1 when that sum is ~0), times lambda."""
    weights = [float(w) for w in params["weight"]]
    total = sum(weights)
    divisor = total if params["normalize"] and abs(total) >= WEIGHT_SUM_EPS else 1.0
    return [w / divisor * params["lambda"] for w in weights]


def sparsify_in_parallel(tensors: list[torch.Tensor], random: bool) -> bool:
    """Whether to sparsify the task vectors on parallel threads: worth it for the
    magnitude selections, which run on one core each, on large CPU tensors. Random
    sparsifiers draw from one generator in model order, so they stay sequential."""
    return (not random and len(tensors) > 1 and tensors[0].device.type == "cpu"
            and tensors[0].numel() >= SIDE_BY_SIDE_NUMEL)


def _method(name: str, sparsify: Sparsify, *, extra: tuple[ParamSpec, ...] = (),
            consensus: bool, normalize: bool, rescale: bool | None, random: bool = False,
            check=None, doc: str) -> MergeOperator:
    """One member of the family; ``rescale`` None: the method has nothing to rescale."""
    specs = [WEIGHT]
    if sparsify is not _keep_all:
        specs.append(DENSITY)
    specs += extra
    specs.append(ParamSpec("normalize", per_model=False, default=normalize,
                           doc="divide by the sum of weights (TIES: of agreeing models)"))
    if rescale is not None:
        specs.append(ParamSpec("rescale", per_model=False, default=rescale,
                               doc="rescale survivors to keep each task vector's L1 norm"))
    if random:
        specs.append(BY_PROBABILITY)
    specs += [LAMBDA, INT8_MASK]

    def merge(tensors: list[torch.Tensor], params: dict[str, ParamValue], *,
              base: torch.Tensor | None, generator: torch.Generator | None,
              ctx: MergeContext, out: torch.Tensor | None) -> torch.Tensor:
        def sparsified(i: int, tau: torch.Tensor) -> SparseDelta:
            delta = sparsify(tau, params, i, generator, ctx)
            if delta.needs_task_l1:  # a resident task vector's norm is measured once
                delta.task_l1 = ctx.remembered(i, TASK_VECTOR_L1, delta.measure_task_l1)
            return delta

        if sparsify_in_parallel(tensors, random):
            deltas = ctx.each(sparsified, range(len(tensors)), tensors)
        else:
            deltas = [sparsified(i, tau) for i, tau in enumerate(tensors)]
        flat_out = None if out is None else out.view(-1)
        if not consensus:
            merged = weighted_sum(deltas, sum_factors(tensors, params), out=flat_out,
                                  buffers=ctx.buffers)
            return merged.view(deltas[0].shape)
        merged = sign_consensus(deltas, params["weight"], params["normalize"], out=flat_out,
                                buffers=ctx.buffers)
        if params["lambda"] != 1:
            merged.mul_(params["lambda"])
        return merged.view(deltas[0].shape)

    # without sparsification or sign election the merged task vector is a plain
    # weighted sum of the inputs
    linear = sparsify is _keep_all and not consensus
    return MergeOperator(name=name, params=tuple(specs), kind="delta", needs_base=True,
                         random=random, fn=merge, check=check, doc=doc,
                         coefficients=sum_factors if linear else None)


TASK_ARITHMETIC = _method(
    "task_arithmetic", _keep_all, consensus=False, normalize=False, rescale=None,
    doc="sum of weighted task vectors (Ilharco et al. 2023)")
TIES = _method(
    "ties", _by_magnitude, consensus=True, normalize=True, rescale=False,
    doc="trim to the top density by magnitude, elect signs, merge agreeing entries "
        "(Yadav et al. 2023)")
DARE_LINEAR = _method(
    "dare_linear", _at_random, consensus=False, normalize=False, rescale=True,
    random=True, doc="drop entries at random, rescale, sum (Yu et al. 2023)")
DARE_TIES = _method(
    "dare_ties", _at_random, consensus=True, normalize=False, rescale=True, random=True,
    doc="drop entries at random, rescale, TIES sign consensus (Yu et al. 2023)")
BREADCRUMBS = _method(
    "breadcrumbs", _by_outliers, extra=(GAMMA,), consensus=False, normalize=False,
    rescale=False, doc="drop outliers and small entries, sum (Davari & Belilovsky 2023)")
BREADCRUMBS_TIES = _method(
    "breadcrumbs_ties", _by_outliers, extra=(GAMMA,), consensus=True, normalize=False,
    rescale=False, doc="drop outliers and small entries, TIES sign consensus")
DELLA_LINEAR = _method(
    "della_linear", _by_rank, extra=(EPSILON,), consensus=False, normalize=False,
    rescale=True, random=True, check=_check_della,
    doc="magnitude-ranked random drop (MagPrune), rescale, sum (Deep et al. 2024)")
DELLA = _method(
    "della", _by_rank, extra=(EPSILON,), consensus=True, normalize=True, rescale=True,
    random=True, check=_check_della,
    doc="MagPrune, rescale, TIES sign consensus (Deep et al. 2024)")

TASK_VECTOR_METHODS = (TASK_ARITHMETIC, TIES, DARE_LINEAR, DARE_TIES, BREADCRUMBS,
                       BREADCRUMBS_TIES, DELLA_LINEAR, DELLA)
