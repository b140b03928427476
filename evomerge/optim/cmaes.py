"""CMA-ES through pycma, with IPOP and BIPOP restarts.

Sources: Hansen & Ostermeier 2001, "Completely derandomized self-adaptation in evolution
strategies" (the algorithm); pycma, https://github.com/CMA-ES/pycma (the implementation
wrapped here, bounds by its ``BoundTransform``); Auger & Hansen 2005, "A restart CMA
evolution strategy with increasing population size" (IPOP); Hansen 2009, "Benchmarking a
BI-population CMA-ES on the BBOB-2009 function testbed" (BIPOP, as pycma's ``fmin`` runs it).
The defaults are those of Akiba et al. 2024's parameter-space merge search: x0 = 0.5,
sigma0 = 1/6 of the box, popsize 4 + floor(3 ln n).

How the ask/tell protocol maps onto pycma's generations:

- pycma samples a full population at a time; ``ask(n)`` hands out its members and samples
  the next population when it runs out, so generations may overlap.
- A generation is told to pycma once every member has a result. A failed or pruned
  member is given ``failure_loss`` of the generation's ok losses: worse than each of them,
  so the ranking CMA-ES learns from only says "the failures were the worst". A generation
  where every member failed is dropped (nothing to rank). pycma takes one tell per sample
  call, so a generation that completes early waits for the next sample.
- A result for a candidate this optimizer never asked for (enqueued, replayed) is injected
  into the next population (``es.inject(..., force=True)``) with its known loss, so pycma
  learns from it like from a member it sampled itself; failed ones teach nothing.
- With restarts on, a run whose pycma stop conditions fire is replaced by a new one from a
  uniform random x0; results still pending from the old run are recorded but not learnt.

Only one objective: CMA-ES ranks by a single value.

>>> from evomerge.records import Fitness
>>> opt = CMAES(dim=4, seed=0)
>>> batch = opt.ask(opt.popsize)
>>> opt.tell([(c, Fitness.ok({"fitness": -sum(v * v for v in c.x)})) for c in batch])
>>> len(opt.ask(2)), opt.best() is not None
(2, True)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from evomerge.errors import ConfigError
from evomerge.optim.base import ObjectiveSpec, register_optimizer
from evomerge.optim.options import choice, flag, number, option_error, whole_number
from evomerge.optim.replayed import ReplayedOptimizer, failure_loss, ok_losses
from evomerge.records import Candidate, Fitness

RestartStrategy = Literal["none", "ipop", "bipop"]
RESTART_STRATEGIES: tuple[str, ...] = ("none", "ipop", "bipop")


def default_popsize(dim: int) -> int:
    """CMA-ES's default population, 4 + floor(3 ln n).

    >>> default_popsize(5), default_popsize(100)
    (8, 17)
    """
    return 4 + int(math.floor(3 * math.log(dim)))


def default_maxiter(dim: int, popsize: int) -> float:
    """pycma's default iteration limit of one run, ``100 + 150 (n+3)^2 // sqrt(popsize)``.

    >>> default_maxiter(5, 8)
    3494.0
    """
    return float(100 + 150 * (dim + 3) ** 2 // popsize ** 0.5)


@dataclass(frozen=True)
class RunPlan:
    """Settings of one pycma run: the first one or a restart."""

    popsize: int
    sigma0: float
    regime: Literal["first", "large", "small"]
    maxiter: float


def plan_restart(
    strategy: RestartStrategy,
    finished: Sequence[tuple[RunPlan, int]],
    popsize0: int,
    sigma0: float,
    maxiter0: float,
    u_sigma: float,
    u_popsize: float,
) -> RunPlan:
    """The run after the ``finished`` runs (each with the evaluations it used).

    IPOP doubles the population at each restart and keeps sigma0. BIPOP, as in pycma's
    ``fmin``: the first run counts as small; the next run is small while the small runs
    have used fewer evaluations than the large ones. A large run doubles the last large
    population; a small one draws ``popsize0 * m ** (u_popsize ** 2)`` (m the current
    large multiplier), ``sigma0 * 0.01 ** u_sigma``, and stops after at most half the
    large runs' evaluations. ``u_sigma`` and ``u_popsize`` are uniform draws in [0, 1).

    >>> first = RunPlan(popsize=8, sigma0=0.2, regime="first", maxiter=1000.0)
    >>> plan_restart("ipop", [(first, 800)], 8, 0.2, 1000.0, 0.5, 0.5).popsize
    16
    >>> large = plan_restart("bipop", [(first, 800)], 8, 0.2, 1000.0, 0.5, 0.5)
    >>> large.regime, large.popsize
    ('large', 16)
    >>> small = plan_restart("bipop", [(first, 800), (large, 1600)], 8, 0.2, 1000.0, 0.5, 0.5)
    >>> small.regime, small.popsize, round(small.sigma0, 4), small.maxiter
    ('small', 9, 0.02, 88.88888888888889)
    """
    n_runs = len(finished)
    if strategy == "ipop":
        return RunPlan(popsize0 * 2 ** n_runs, sigma0, "large", maxiter0)
    if strategy != "bipop":
        raise ValueError(f"no restart plan for strategy {strategy!r}")
    n_small = sum(1 for plan, _ in finished if plan.regime == "small")
    small_evals = sum(e for plan, e in finished if plan.regime in ("first", "small"))
    large_evals = sum(e for plan, e in finished if plan.regime == "large")
    if small_evals < max(1, large_evals):
        multiplier = 2 ** (n_runs - (n_small + 1))
        popsize = int(popsize0 * multiplier ** (u_popsize ** 2))
        maxiter = min(maxiter0, 0.5 * large_evals / popsize)
        return RunPlan(popsize, float(sigma0 * 0.01 ** u_sigma), "small", maxiter)
    return RunPlan(popsize0 * 2 ** (n_runs - n_small), sigma0, "large", maxiter0)


class _StandardNormal:
    """pycma's ``randn(lam, n)`` drawn from a seeded generator, not numpy's global one."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape)


@dataclass
class _Run:
    plan: RunPlan
    es: Any  # cma.CMAEvolutionStrategy
    evaluations: int = 0


@dataclass
class _Generation:
    run: int
    points: list[np.ndarray]
    losses: dict[int, float | None] = field(default_factory=dict)  # None: failed

    @property
    def complete(self) -> bool:
        return len(self.losses) == len(self.points)

    def values(self) -> list[float] | None:
        """pycma's f-values, failures ranked last; None when every member failed."""
        ok = [v for v in self.losses.values() if v is not None]
        if not ok:
            return None
        penalty = failure_loss(ok)
        return [penalty if self.losses[i] is None else self.losses[i]
                for i in range(len(self.points))]


@register_optimizer
class CMAES(ReplayedOptimizer):
    """CMA-ES on ``[0, 1]^dim`` (see the module docstring for the protocol mapping).

    Options: ``x0`` (a number or one per dimension, in [0, 1]), ``sigma0`` (> 0, in box
    units), ``popsize`` (>= 2; default 4 + floor(3 ln n)), ``diagonal`` (separable
    CMA-ES, pycma's ``CMA_diagonal``), ``restarts`` ("none", "ipop", "bipop") and
    ``max_restarts``.
    """

    name = "cma"

    def __init__(
        self,
        dim: int,
        objectives: ObjectiveSpec | None = None,
        seed: int = 0,
        *,
        x0: float | list[float] = 0.5,
        sigma0: float = 1 / 6,
        popsize: int | None = None,
        diagonal: bool = False,
        restarts: RestartStrategy = "none",
        max_restarts: int = 9,
    ):
        objectives = objectives or ObjectiveSpec()
        if objectives.multi:
            raise ConfigError(
                None, "objectives", list(objectives.names),
                "optimizer 'cma' ranks by one objective; use optuna (NSGA-II, TPE) or "
                "nevergrad for several",
            )
        self._x0 = _check_x0(x0, dim)
        number("sigma0", sigma0, 0, maximum=1, strict=True)
        if popsize is not None:
            whole_number("popsize", popsize, 2)
        flag("diagonal", diagonal)
        choice("restarts", restarts, RESTART_STRATEGIES)
        whole_number("max_restarts", max_restarts, 0)
        super().__init__(dim, objectives, seed, options={
            "x0": x0, "sigma0": sigma0, "popsize": popsize, "diagonal": diagonal,
            "restarts": restarts, "max_restarts": max_restarts,
        })
        self.popsize = popsize if popsize is not None else default_popsize(dim)
        self._sigma0 = float(sigma0)
        self._maxiter0 = default_maxiter(dim, self.popsize)
        self._runs: list[_Run] = []
        self._generations: dict[int, _Generation] = {}
        self._generation_count = 0
        self._unhanded: deque[tuple[int, int]] = deque()  # (generation, member)
        self._slots: dict[str, tuple[int, int]] = {}  # uid -> (generation, member)
        self._complete: deque[int] = deque()
        self._may_tell = False  # pycma takes one tell per sampled population
        self._injections: list[tuple[np.ndarray, float]] = []
        self._start_run(RunPlan(self.popsize, self._sigma0, "first", self._maxiter0),
                        self._x0)

    # -- runs and generations -----------------------------------------------------------

    def _start_run(self, plan: RunPlan, x0: np.ndarray) -> None:
        import cma

        normal = np.random.default_rng([self.seed, len(self._runs)])
        es = cma.CMAEvolutionStrategy(list(x0), plan.sigma0, {
            "bounds": [0.0, 1.0],
            "popsize": plan.popsize,
            "CMA_diagonal": self.options["diagonal"],
            # selective mirroring (pycma's default below popsize 6) injects mirrors into
            # the next population, assuming it is sampled after this one is told, which
            # overlapping generations break
            "CMA_mirrors": 0,
            "maxiter": plan.maxiter,
            "seed": float("nan"),  # never touch numpy's global generator
            "randn": _StandardNormal(normal),
            "verbose": -9,
            "verb_log": 0,  # no output files
            "verb_disp": 0,
        })
        self._runs.append(_Run(plan, es))
        self._may_tell = False
        # members of older runs are no longer handed out; pending ones are ignored
        self._unhanded.clear()
        self._generations.clear()
        self._complete.clear()

    def _sample_generation(self) -> None:
        run = self._runs[-1]
        injected = self._injections[:run.plan.popsize]
        del self._injections[:len(injected)]
        if injected:
            run.es.inject([run.es.gp.geno(x, from_bounds=run.es.boundary_handler.inverse)
                           for x, _ in injected], force=True)
        points = [np.asarray(p, dtype=float) for p in run.es.ask()]
        self._may_tell = True
        gid = self._generation_count
        self._generation_count += 1
        # forced injections come first in pycma's population
        generation = _Generation(len(self._runs) - 1, points,
                                 {i: loss for i, (_, loss) in enumerate(injected)})
        self._generations[gid] = generation
        self._unhanded.extend((gid, i) for i in range(len(injected), len(points)))
        if generation.complete:
            self._complete.append(gid)
        self._tell_complete()

    def _tell_complete(self) -> None:
        while self._complete and self._may_tell:
            generation = self._generations.pop(self._complete.popleft())
            values = generation.values()
            if values is None:
                continue
            run = self._runs[-1]
            run.es.tell(generation.points, values)
            run.evaluations += len(values)
            self._may_tell = False
            self._restart_if_stopped()

    def _restart_if_stopped(self) -> None:
        restarts = self.options["restarts"]
        if restarts == "none" or len(self._runs) > self.options["max_restarts"]:
            return
        if not self._runs[-1].es.stop():
            return
        draws = np.random.default_rng([self.seed, len(self._runs), 1])
        u_sigma, u_popsize = draws.random(2)
        plan = plan_restart(restarts, [(r.plan, r.evaluations) for r in self._runs],
                            self.popsize, self._sigma0, self._maxiter0, u_sigma, u_popsize)
        self._start_run(plan, draws.random(self.dim))

    # -- protocol -----------------------------------------------------------------------

    def _ask(self, n: int) -> list[Candidate]:
        while len(self._unhanded) < n:
            self._sample_generation()
        candidates = []
        for _ in range(n):
            gid, member = self._unhanded.popleft()
            generation = self._generations[gid]
            candidate = self._candidate(generation.points[member], run=generation.run,
                                        generation=gid, member=member)
            self._slots[candidate.uid] = (gid, member)
            candidates.append(candidate)
        return candidates

    def _tell(self, results: list[tuple[Candidate, Fitness]]) -> None:
        for candidate, fitness in results:
            losses = ok_losses(self.objectives, fitness)
            slot = self._slots.pop(candidate.uid, None)
            if slot is None:  # never asked by this optimizer
                x = self._box_point(candidate)
                if x is not None and losses is not None:
                    self._injections.append((x, losses[0]))
                continue
            gid, member = slot
            generation = self._generations.get(gid)
            if generation is None:  # from a run that has since been restarted
                continue
            generation.losses[member] = None if losses is None else losses[0]
            if generation.complete:
                self._complete.append(gid)
        self._tell_complete()

    @property
    def runs(self) -> list[RunPlan]:
        """The plans of the pycma runs so far (more than one after restarts)."""
        return [r.plan for r in self._runs]


def _check_x0(x0: Any, dim: int) -> np.ndarray:
    values = [x0] * dim if isinstance(x0, (int, float)) and not isinstance(x0, bool) else x0
    try:
        point = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        point = None
    if point is None or point.shape != (dim,) or not np.all((point >= 0) & (point <= 1)):
        raise option_error("x0", x0, f"must be a number or {dim} numbers in [0, 1]")
    return point
