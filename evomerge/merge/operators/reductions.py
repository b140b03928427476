"""Whole-tensor sums that stay accurate on large tensors: L1 norms and Gram matrices.

torch's CPU ``linalg.vector_norm`` accumulates float32 serially within each thread. On
50M Gaussian entries its L1 norm comes out 5% low (15% on one thread) and its L2 norm
0.4% low: enough to move a DARE rescale factor away from mergekit's, or to push a SLERP
cosine past its threshold. These walk the tensor a step at a time, sum each step with
torch's pairwise sums or BLAS dots, and add the steps in float64, so the error stays
near float32 rounding at any size. On CPU a step's temporaries also stay in the core's
cache, which makes the L1 norm faster than ``vector_norm`` (benchmarks/RESULTS.md).

>>> x = torch.full((3_000_000,), 0.1)
>>> round(l1_norm(x) / 300_000, 6)
1.0
>>> gram([torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0])]).tolist()
[[5.0, 1.0], [1.0, 10.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: entries per step on CPU: a step's |x| (1 MB in float32) stays in the core's L2 cache
CPU_STEP = 1 << 18
#: entries per step elsewhere: few enough kernel launches that they cost nothing
DEVICE_STEP = 1 << 24


def step_size(x: torch.Tensor) -> int:
    """Entries per step of a walk over ``x``: cache-sized on CPU, large elsewhere."""
    return CPU_STEP if x.device.type == "cpu" else DEVICE_STEP


def steps(x: torch.Tensor):
    """``(start, stop)`` of each step over ``x``'s flat entries, in order."""
    n, step = x.numel(), step_size(x)
    for start in range(0, n, step):
        yield start, min(n, start + step)


class RunningL1:
    """``sum |x|`` of the steps of a walk over ``x`` (see :func:`steps`), handed in order.

    For a caller that makes each step itself and measures it while it is still in cache;
    the total is the one :func:`l1_norm` gives for the same entries.

    >>> x = torch.tensor([1.0, -2.0, 3.0])
    >>> total = RunningL1(x)
    >>> for start, stop in steps(x):
    ...     total.add(x[start:stop])
    >>> total.value()
    6.0
    """

    def __init__(self, like: torch.Tensor):
        self._scratch = torch.empty(min(like.numel(), step_size(like)), dtype=like.dtype,
                                    device=like.device)
        self._total = torch.zeros((), dtype=torch.float64, device=like.device)

    def add(self, step: torch.Tensor) -> None:
        self._total += torch.abs(step, out=self._scratch[:step.numel()]).sum()

    def value(self) -> float:
        return float(self._total)  # the only device sync


def l1_norm(x: torch.Tensor) -> float:
    """``sum |x|`` in one pass over ``x``, accurate at any size."""
    flat = x.reshape(-1)
    if not flat.numel():
        return 0.0
    total = RunningL1(flat)
    for start, stop in steps(flat):
        total.add(flat[start:stop])
    return total.value()


def gram(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The float64 matrix of every pairwise dot product ``<t_i, t_j>`` (so the squared
    L2 norms on the diagonal), in one pass over same-sized tensors; a CPU tensor."""
    flats = [t.reshape(-1) for t in tensors]
    k = len(flats)
    out = torch.zeros(k, k, dtype=torch.float64, device=flats[0].device)
    for start, stop in steps(flats[0]):
        parts = [f[start:stop] for f in flats]
        for i in range(k):
            for j in range(i, k):
                out[i, j] += torch.dot(parts[i], parts[j])
    out = out.cpu()
    return out.triu() + out.triu(1).T
