"""Optimizers whose JSON state is their seed, their options and the log of asks and tells.

pycma, optuna and nevergrad keep their state in objects that are not JSON (numpy arrays,
samplers, background threads). Rather than pickle them, :class:`ReplayedOptimizer` records
every ``ask`` (the uids and points handed out) and every ``tell`` (how many history
entries it added). ``load_state_dict`` on a fresh instance built with the same seed and
options replays that log call by call; since every random draw of the wrapped library
comes from a generator seeded by ``seed``, the replay rebuilds the library state exactly
and the next asks are the ones the original would have made. A replay that draws other
points than the log says (another library version, say) raises ``CheckpointError``
instead of going on from a different state.

Subclasses implement ``_ask(n)`` (build candidates with :meth:`_candidate`) and
``_tell(results)``; a result told again never reaches them and is not logged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from evomerge.errors import CheckpointError, ConfigError
from evomerge.optim.base import ObjectiveSpec, Optimizer
from evomerge.optim.options import option_error
from evomerge.records import Candidate, Fitness, new_uid


class ReplayedOptimizer(Optimizer):
    """Base for box optimizers backed by a library; state round-trips by replay.

    ``options`` are the (JSON) options the instance was built with; a state dict only
    loads into an instance built with the same name, dim, seed, objectives and options.
    """

    def __init__(
        self,
        dim: int,
        objectives: ObjectiveSpec | None,
        seed: int,
        options: dict[str, Any],
    ):
        super().__init__(dim, objectives, seed)
        try:
            json.dumps(options, allow_nan=False)
        except (TypeError, ValueError):
            raise option_error(None, options,
                               "options must be plain JSON values: they are saved with the "
                               "optimizer's state") from None
        self.options = dict(options)
        self._log: list[dict[str, Any]] = []
        self._replay_uids: list[str] = []

    # -- the protocol -------------------------------------------------------------------

    def ask(self, n: int = 1) -> list[Candidate]:
        candidates = super().ask(n)
        if candidates:
            self._log.append({"ask": [c.uid for c in candidates],
                              "x": [c.x for c in candidates]})
        return candidates

    def tell(self, results: Sequence[tuple[Candidate, Fitness]]) -> None:
        before = len(self.history)
        super().tell(results)
        if len(self.history) > before:
            self._log.append({"tell": len(self.history) - before})

    # -- for subclasses -------------------------------------------------------------------

    def _candidate(self, x: Sequence[float], **meta: Any) -> Candidate:
        """A candidate at ``x`` (clipped into the box) with a fresh uid, or the logged
        uid while replaying."""
        uid = self._replay_uids.pop(0) if self._replay_uids else new_uid()
        point = [float(v) for v in np.clip(np.asarray(x, dtype=float), 0.0, 1.0)]
        return Candidate(uid=uid, x=point, meta=dict(meta))

    def _box_point(self, candidate: Candidate) -> np.ndarray | None:
        """``candidate.x`` as an array, or None when the candidate carries no point.

        A point of the wrong length or outside ``[0, 1]`` is a user error (an enqueued
        recipe encoded for another space), reported instead of silently clipped.
        """
        if candidate.x is None:
            return None
        x = np.asarray(candidate.x, dtype=float)
        if x.shape != (self.dim,) or not np.all((x >= 0.0) & (x <= 1.0)):
            raise ConfigError(
                None, f"candidate {candidate.uid}.x", candidate.x,
                f"a point told to optimizer {self.name!r} must hold {self.dim} numbers "
                "in [0, 1]",
            )
        return x

    # -- state --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["options"] = dict(self.options)
        state["log"] = list(self._log)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rebuild the state of a fresh instance by replaying the logged asks and tells.

        >>> from evomerge.optim.cmaes import CMAES
        >>> opt = CMAES(dim=2, seed=0)
        >>> pending = opt.ask(3)
        >>> again = CMAES(dim=2, seed=0)
        >>> again.load_state_dict(opt.state_dict())
        >>> [c.x for c in again.ask(2)] == [c.x for c in opt.ask(2)]
        True
        """
        if self.history or self._log:
            raise CheckpointError(
                f"load_state_dict needs a fresh {self.name!r} optimizer, but this one "
                f"has already made {len(self._log)} calls"
            )
        super().load_state_dict(state)  # checks the name and parses the history
        self._check_same_setup(state)
        told = self.history
        self.history = []
        position = 0
        for step, event in enumerate(state.get("log", [])):
            if "ask" in event:
                self._replay_uids = list(event["ask"])
                candidates = self.ask(len(event["ask"]))
                if [c.x for c in candidates] != event["x"]:
                    raise CheckpointError(
                        f"replaying optimizer {self.name!r} diverged at call {step}: it "
                        "drew other points than the saved state (was it saved by another "
                        "version of the optimizer library?)"
                    )
            else:
                batch = told[position:position + event["tell"]]
                position += event["tell"]
                self.tell([(t.candidate, t.fitness) for t in batch])
        if position != len(told):
            raise CheckpointError(
                f"state of optimizer {self.name!r}: the log tells {position} results but "
                f"the history holds {len(told)}"
            )

    def _check_same_setup(self, state: dict[str, Any]) -> None:
        mine = self.state_dict()
        for key in ("dim", "seed", "objectives", "options"):
            if state.get(key) != mine[key]:
                raise CheckpointError(
                    f"state of optimizer {self.name!r} was saved with {key}="
                    f"{state.get(key)!r}, but this instance has {key}={mine[key]!r}; "
                    "build the optimizer with the same settings before loading"
                )


def failure_loss(ok_losses: Sequence[float]) -> float:
    """A loss worse than every given ok loss: ``worst + 1 + |worst|``.

    Used where a library needs a number for a failed evaluation; the margin grows with
    the scale of the losses so the penalty never rounds into a tie with the worst.

    >>> failure_loss([0.5, 2.0])
    5.0
    >>> failure_loss([-3.0])
    1.0
    """
    worst = max(ok_losses)
    if not math.isfinite(worst):
        raise ValueError(f"losses must be finite, got {worst}")
    return worst + 1.0 + abs(worst)


def ok_losses(objectives: ObjectiveSpec, fitness: Fitness) -> list[float] | None:
    """The objectives as losses (in ``objectives`` order), or None for anything a library
    must not learn a number from: a failed or pruned evaluation, or a non-finite value.

    >>> spec = ObjectiveSpec(("acc",), ("maximize",))
    >>> ok_losses(spec, Fitness.ok({"acc": 0.75})), ok_losses(spec, Fitness.failed("oom"))
    ([-0.75], None)
    """
    if not fitness.is_ok:
        return None
    losses = objectives.losses(fitness)
    return losses if all(math.isfinite(v) for v in losses) else None
