"""Every optimizer by name, and how to build one.

Each optimizer module registers its class where it defines it
(:func:`~evomerge.optim.base.register_optimizer`); this module imports them all, so
:data:`OPTIMIZERS` is complete once it is imported. The libraries behind them (pycma,
nevergrad, optuna) are imported only when an optimizer is built.

>>> opt = build_optimizer("random", 2, None, 3)
>>> len(opt.ask(4))
4
>>> build_optimizer("cma", 2, popsize=1)
Traceback (most recent call last):
...
evomerge.errors.ConfigError: field 'optimizer.options.popsize' = 1: must be an integer >= 2
"""

from __future__ import annotations

import inspect
from typing import Any

# each optimizer module registers its optimizer when it is imported
from evomerge.optim import (  # noqa: F401
    cmaes,
    m2n2,
    map_nested,
    map_opt,
    nevergrad_opt,
    optuna_opt,
    random_search,
    sobol,
)
from evomerge.optim.base import OPTIMIZERS, ObjectiveSpec, Optimizer
from evomerge.optim.options import check_known, option_error

__all__ = ["OPTIMIZERS", "build_optimizer"]


def build_optimizer(
    name: str,
    dim: int,
    objectives: ObjectiveSpec | None = None,
    seed: int = 0,
    /,
    **options: Any,
) -> Optimizer:
    """The optimizer registered as ``name``, built with validated ``options``.

    ``name``, ``dim``, ``objectives`` and ``seed`` are positional, so that an options
    mapping read from a config can hold any key: ``seed`` there is refused by name.

    An unknown name raises ``UnknownNameError`` with the known ones; an option the
    optimizer does not take, or a value it rejects, raises ``ConfigError`` naming the
    option, the value and the rule.

    >>> build_optimizer("cma", 3, sigma=0.2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    evomerge.errors.ConfigError: field 'optimizer.options.sigma' = 0.2: ... 'sigma0'? ...
    """
    cls = OPTIMIZERS.get(name)
    for key in ("dim", "objectives", "seed"):
        if key in options:
            raise option_error(key, options[key],
                               f"{key} is set by the campaign, not as an optimizer option")
    parameters = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        known = [p.name for p in parameters.values() if p.kind is p.KEYWORD_ONLY]
        check_known(options, known, f"optimizer {name!r}")
    return cls(dim, objectives, seed, **options)
