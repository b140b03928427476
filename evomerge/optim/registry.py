"""Every optimizer, registered by name from one explicit list, and how to build one.

``BACKENDS`` lists each optimizer class with its :class:`Capabilities`: what the shared
test suite (``tests/optim/test_optimizer_suite.py``) may ask of it. The library modules
(pycma, nevergrad, optuna) are imported only when an optimizer is built.

>>> opt = build_optimizer("random", 2, None, 3)
>>> len(opt.ask(4))
4
>>> build_optimizer("cma", 2, popsize=1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
evomerge.errors.ConfigError: field 'options.popsize' = 1: the population size must be ...
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Any

from evomerge.errors import ConfigError
from evomerge.optim.base import OPTIMIZERS, ObjectiveSpec, Optimizer
from evomerge.optim.cmaes import CMAES
from evomerge.optim.m2n2 import M2N2
from evomerge.optim.map_nested import NestedMapOptimizer
from evomerge.optim.map_opt import MapOptimizer
from evomerge.optim.nevergrad_opt import NevergradOptimizer
from evomerge.optim.optuna_opt import OptunaOptimizer
from evomerge.optim.random_search import RandomSearch
from evomerge.optim.sobol import SobolSearch


@dataclass(frozen=True)
class Capabilities:
    """What an optimizer supports, so the shared suite runs the checks that apply.

    ``box``: candidates carry ``x`` in ``[0, 1]^dim``, and never-asked results are given
    as box points (False: candidates carry structured ``params``; never-asked results
    are copies of asked ones). ``single_objective`` / ``multi_objective``: which
    ``ObjectiveSpec`` it accepts; ``one_objective_per_dimension``: it needs exactly
    ``dim`` objectives (one per task vector). ``beats_random_single`` /
    ``beats_random_multi``: with its default options it must beat random search at
    equal budget on the suite's sphere and Rastrigin (2 to 10 dims) / give a better
    Pareto front on its two-objective toy; False for baselines and for methods whose
    budget or fitness the toys do not fit (each tests its own benchmark instead).
    """

    box: bool = True
    single_objective: bool = True
    multi_objective: bool = False
    one_objective_per_dimension: bool = False
    beats_random_single: bool = True
    beats_random_multi: bool = True


#: samplers that ignore results: nothing to compare with random search
BASELINE = Capabilities(multi_objective=True, beats_random_single=False,
                        beats_random_multi=False)

#: the optimizers, in the order they are registered
BACKENDS: tuple[tuple[type[Optimizer], Capabilities], ...] = (
    (CMAES, Capabilities()),
    (NevergradOptimizer, Capabilities(multi_objective=True)),
    (OptunaOptimizer, Capabilities(multi_objective=True)),
    (RandomSearch, BASELINE),
    (SobolSearch, BASELINE),
    # M2N2 carries whole parameter vectors (or coefficient matrices) in params; its digits
    # experiment is its benchmark
    (M2N2, Capabilities(box=False, beats_random_single=False)),
    # MAP's budget is its sampling plan and its own tests measure its fronts
    (MapOptimizer, Capabilities(multi_objective=True, beats_random_single=False)),
    (NestedMapOptimizer, Capabilities(single_objective=False, multi_objective=True,
                                      one_objective_per_dimension=True)),
)

CAPABILITIES: dict[str, Capabilities] = {}


def _register(backends: tuple[tuple[type[Optimizer], Capabilities], ...]) -> None:
    for cls, capabilities in backends:
        OPTIMIZERS.register(cls.name, cls)
        CAPABILITIES[cls.name] = capabilities


_register(BACKENDS)


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
    evomerge.errors.ConfigError: field 'options.sigma' = 0.2: ... did you mean 'sigma0'? ...
    """
    cls = OPTIMIZERS.get(name)
    for key in ("dim", "objectives", "seed"):
        if key in options:
            raise ConfigError(None, f"options.{key}", options[key],
                              f"{key} is set by the campaign, not as an optimizer option")
    parameters = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    known = [p.name for p in parameters.values() if p.kind is p.KEYWORD_ONLY]
    if not takes_any:
        for key, value in options.items():
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConfigError(
                    None, f"options.{key}", value,
                    f"optimizer {name!r} has no such option; {hint}"
                    f"Its options: {', '.join(known) if known else '(none)'}",
                )
    return cls(dim, objectives, seed, **options)
