"""Ask/tell optimizers: one algorithm per module, each citing its paper.

:mod:`~evomerge.optim.base` holds the protocol (:class:`Optimizer`: ``ask(n)``,
``tell(results)``, ``state_dict()``, ``best()``) and the registry; each optimizer module
registers its class where it defines it, and :mod:`~evomerge.optim.registry` imports
them all, so importing this package gives the complete registry.

This package works on boxes, objectives and fitness records only: it imports nothing
from the merge, evaluation, search-space, execution, campaign, report, export or
command-line layers.

>>> from evomerge.optim import build_optimizer
>>> [c.meta["index"] for c in build_optimizer("random", 2).ask(2)]
[0, 1]
"""

from evomerge.optim.base import (
    OPTIMIZERS,
    ConflictingResultError,
    ObjectiveSpec,
    Optimizer,
    Told,
    register_optimizer,
)
from evomerge.optim.registry import build_optimizer

__all__ = [
    "OPTIMIZERS",
    "ConflictingResultError",
    "ObjectiveSpec",
    "Optimizer",
    "Told",
    "build_optimizer",
    "register_optimizer",
]
