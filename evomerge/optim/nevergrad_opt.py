"""Any optimizer of nevergrad's registry behind the ask/tell protocol.

Source: Rapin & Teytaud 2018, "Nevergrad - A gradient-free optimization platform",
https://github.com/facebookresearch/nevergrad. The box is ``ng.p.Array(shape=(dim,),
lower=0, upper=1)`` whose random state is seeded by ``seed``, so a replay of the same
asks and tells rebuilds the same optimizer.

How the protocol maps onto nevergrad:

- A failed or pruned asked candidate is told a penalty loss, because population-based
  methods (DE, PSO) wait for a tell of every candidate they asked: per objective,
  ``failure_loss`` of the worst ok loss told so far, or ``FAILURE_LOSS_WITHOUT_OK``
  while no ok loss is known yet.
- A never-asked result goes through nevergrad's ``tell`` of a spawned child
  (``tell_not_asked``); methods that cannot take one (the sequential ones wrapping scipy)
  ignore it. Failed never-asked results teach nothing and are ignored.
- Several objectives are told as a list: nevergrad's multi-objective mode (hypervolume
  of the Pareto front) works with every optimizer.
- Sequential methods (``no_parallelization``, e.g. Cobyla, or what NGOpt picks for
  ``num_workers=1`` in high dimension) run in a background thread that waits for each
  tell; asking a second candidate before telling the first would hang, so it raises a
  ``ConfigError`` instead.

Default: ``TwoPointsDE``, nevergrad's recommendation for parallel evaluations, which
needs no budget. ``NGOpt`` needs ``budget`` and chooses its method from budget,
num_workers and dim. Under numpy >= 2.4 the methods built on nevergrad's ``MetaModel``
(often NGOpt's choice, e.g. 4 genes, budget 200, 2 workers) would fail once their
surrogate starts: nevergrad 1.0.12 calls ``float`` on the surrogate's one-element
prediction, which numpy 2.4 refuses (facebookresearch/nevergrad#1612);
``_tolerate_one_element_predictions`` makes that one call work. MetaModel fits its
surrogate with scikit-learn, hence that dependency.

>>> from evomerge.records import Fitness
>>> opt = NevergradOptimizer(dim=2, seed=0, optimizer="OnePlusOne")
>>> [c] = opt.ask(1)
>>> opt.tell([(c, Fitness.ok({"fitness": 1.0}))])
>>> len(opt.ask(3))
3
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np

from evomerge.optim.base import ObjectiveSpec, register_optimizer
from evomerge.optim.options import option_error, whole_number
from evomerge.optim.replayed import ReplayedOptimizer, failure_loss, ok_losses
from evomerge.records import Candidate, Fitness

#: the loss told for a failure before any ok loss is known: far above real losses,
#: under the 5e20 at which nevergrad clips nonsense losses (inf, nan) with a warning
FAILURE_LOSS_WITHOUT_OK = 1.0e20


@register_optimizer
class NevergradOptimizer(ReplayedOptimizer):
    """A nevergrad optimizer by registry name (``optimizer``), with its ``budget``
    (None: unknown) and ``num_workers`` (candidates evaluated at once)."""

    name = "nevergrad"

    def __init__(
        self,
        dim: int,
        objectives: ObjectiveSpec | None = None,
        seed: int = 0,
        *,
        optimizer: str = "TwoPointsDE",
        budget: int | None = None,
        num_workers: int = 1,
    ):
        import nevergrad as ng

        _tolerate_one_element_predictions()
        registry = ng.optimizers.registry
        if not isinstance(optimizer, str) or optimizer not in registry:
            nearest = difflib.get_close_matches(str(optimizer), list(registry), n=5,
                                                cutoff=0.4)
            raise option_error(
                "optimizer", optimizer,
                "not in nevergrad.optimizers.registry; nearest names: "
                f"{', '.join(nearest) if nearest else '(none)'}",
            )
        if budget is not None:
            whole_number("budget", budget, 1)
        whole_number("num_workers", num_workers, 1)
        if num_workers > 1 and getattr(registry[optimizer], "no_parallelization", False):
            # checked here: nevergrad's own refusal leaves a half-built optimizer whose
            # destructor fails noisily
            raise option_error("optimizer", optimizer,
                               "this nevergrad method evaluates one candidate at a time; "
                               "set num_workers to 1 or pick a parallel method")
        super().__init__(dim, objectives, seed, options={
            "optimizer": optimizer, "budget": budget, "num_workers": num_workers})
        box = ng.p.Array(shape=(dim,), lower=0.0, upper=1.0)
        box.random_state = np.random.RandomState(seed)
        try:
            self.ng_optimizer = registry[optimizer](parametrization=box, budget=budget,
                                                    num_workers=num_workers)
            self.sequential = _is_sequential(self.ng_optimizer)
        except AssertionError:  # NGOpt and its kin choose a method from the budget
            raise option_error("budget", budget,
                               f"nevergrad optimizer {optimizer!r} needs a budget") from None
        except ValueError as error:  # e.g. a sequential method with num_workers > 1
            raise option_error("optimizer", optimizer, str(error)) from None
        self._pending: dict[str, Any] = {}  # uid -> nevergrad candidate asked, not told
        self._worst: list[float] | None = None  # per objective, over ok losses told

    def _ask(self, n: int) -> list[Candidate]:
        if self.sequential and len(self._pending) + n > 1:
            raise option_error(
                "optimizer", self.options["optimizer"],
                f"this nevergrad method evaluates one candidate at a time, but "
                f"{len(self._pending) + n} would be pending; ask one at a time, or pick a "
                "parallel method (NGOpt with num_workers set to the number evaluated at "
                "once chooses one)",
            )
        candidates = []
        for _ in range(n):
            asked = self.ng_optimizer.ask()
            candidate = self._candidate(asked.value)
            self._pending[candidate.uid] = asked
            candidates.append(candidate)
        return candidates

    def _tell(self, results: list[tuple[Candidate, Fitness]]) -> None:
        from nevergrad.common.errors import TellNotAskedNotSupportedError

        for candidate, fitness in results:
            losses = ok_losses(self.objectives, fitness)
            if losses is not None:
                self._worst = losses if self._worst is None else [
                    max(a, b) for a, b in zip(self._worst, losses)]
            asked = self._pending.pop(candidate.uid, None)
            if asked is not None:
                told = losses if losses is not None else self._failure_losses()
                self.ng_optimizer.tell(asked, self._as_loss(told))
                continue
            x = self._box_point(candidate)
            if x is None or losses is None:
                continue
            outsider = self.ng_optimizer.parametrization.spawn_child(new_value=x)
            try:
                self.ng_optimizer.tell(outsider, self._as_loss(losses))
            except TellNotAskedNotSupportedError:
                pass  # sequential scipy-backed methods learn only from their own asks

    def _failure_losses(self) -> list[float]:
        if self._worst is None:
            return [FAILURE_LOSS_WITHOUT_OK] * len(self.objectives.names)
        return [failure_loss([w]) for w in self._worst]

    def _as_loss(self, losses: list[float]) -> float | list[float]:
        return losses if self.objectives.multi else losses[0]


def _one_element_float(value: Any) -> float:
    """``float`` as numpy < 2.4 did it: a one-element array of any shape is its element."""
    if isinstance(value, np.ndarray) and value.size == 1:
        return float(value.item())
    return float(value)


def _tolerate_one_element_predictions() -> None:
    """Give nevergrad's metamodel module the ``float`` it was written for.

    Its surrogate loss is ``float(model.predict(...))`` on a ``(1,)`` array, an error
    since numpy 2.4. A module-level ``float`` shadows the builtin inside that module
    only; the patch changes nothing where the builtin already accepts the value.
    """
    from nevergrad.optimization import metamodel

    metamodel.float = _one_element_float


def _is_sequential(opt: Any) -> bool:
    """Whether a nevergrad optimizer (or the method a meta-optimizer such as NGOpt
    delegates to) can only have one candidate out at a time."""
    if getattr(opt, "no_parallelization", False):
        return True
    inner = getattr(opt, "optim", None)
    return inner is not None and inner is not opt and _is_sequential(inner)

