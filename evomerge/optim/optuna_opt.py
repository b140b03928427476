"""optuna's samplers behind the ask/tell protocol.

Source: Akiba et al. 2019, "Optuna: A next-generation hyperparameter optimization
framework", https://github.com/optuna/optuna; samplers: TPE (Bergstra et al. 2011),
CMA-ES (Hansen 2016, through ``cmaes``), GP (Gaussian-process Bayesian optimisation),
NSGA-II (Deb et al. 2002), NSGA-III (Deb & Jain 2014), QMC (scrambled Sobol'), Random.
Akiba et al. 2024 ran their parameter-space merge search with optuna's CMA-ES sampler.

The study lives in memory and is driven by optuna's own ask/tell: ``study.ask`` with one
``FloatDistribution(0, 1)`` per dimension (parameters ``x0``, ``x1``, ...), ``study.tell``
with the objective values in ``ObjectiveSpec`` order and directions. A failed candidate is
told as state FAIL (the samplers skip it) and a pruned one as PRUNED (TPE ranks it below
every finished trial, CMA-ES skips it); a non-finite value
counts as a failure. A never-asked ok result is added as a finished trial
(``study.add_trial``), so the sampler learns from it like from its own; never-asked
failures teach nothing and are not added. The sampler is seeded with ``seed``; its other
options are checked against its constructor's signature.

>>> from evomerge.records import Fitness
>>> opt = OptunaOptimizer(dim=2, seed=0, sampler="Random")
>>> [c] = opt.ask(1)
>>> opt.tell([(c, Fitness.ok({"fitness": 0.5}))])
>>> opt.study.best_value
0.5
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from evomerge.optim.base import ObjectiveSpec, register_optimizer
from evomerge.optim.options import check_known, option_error
from evomerge.optim.replayed import ReplayedOptimizer, ok_losses
from evomerge.records import Candidate, Fitness

#: sampler name -> (class in ``optuna.samplers``, whether it handles several objectives)
SAMPLERS: dict[str, tuple[str, bool]] = {
    "TPE": ("TPESampler", True),
    "CMA-ES": ("CmaEsSampler", False),
    "GP": ("GPSampler", True),
    "NSGA-II": ("NSGAIISampler", True),
    "NSGA-III": ("NSGAIIISampler", True),
    "QMC": ("QMCSampler", True),
    "Random": ("RandomSampler", True),
}


def sampler_name(name: str) -> str:
    """The canonical sampler name for a spelling such as ``"cmaes"`` or ``"NSGAIISampler"``.

    >>> sampler_name("cmaes"), sampler_name("NSGAIISampler"), sampler_name("tpe")
    ('CMA-ES', 'NSGA-II', 'TPE')
    """
    def key(text: str) -> str:
        text = "".join(ch for ch in str(text).lower() if ch.isalnum())
        return text.removesuffix("sampler")

    by_key = {key(canonical): canonical for canonical in SAMPLERS}
    canonical = by_key.get(key(name))
    if canonical is None:
        close = difflib.get_close_matches(str(name), list(SAMPLERS), n=1, cutoff=0.3)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise option_error("sampler", name,
                           f"not an optuna sampler; {hint}known: {', '.join(SAMPLERS)}")
    return canonical


@register_optimizer
class OptunaOptimizer(ReplayedOptimizer):
    """An in-memory optuna study with the sampler named by ``sampler``; every other option
    goes to the sampler's constructor."""

    name = "optuna"

    def __init__(
        self,
        dim: int,
        objectives: ObjectiveSpec | None = None,
        seed: int = 0,
        *,
        sampler: str = "TPE",
        **sampler_options: Any,
    ):
        import optuna

        objectives = objectives or ObjectiveSpec()
        canonical = sampler_name(sampler)
        class_name, handles_multi = SAMPLERS[canonical]
        if objectives.multi and not handles_multi:
            raise option_error(
                "sampler", sampler,
                f"optuna's {class_name} optimises one objective, but "
                f"{len(objectives.names)} are given; use TPE, NSGA-II or NSGA-III",
            )
        sampler_class = getattr(optuna.samplers, class_name)
        accepted = [p for p in inspect.signature(sampler_class.__init__).parameters
                    if p not in ("self", "seed")]
        check_known(sampler_options, accepted, f"optuna's {class_name}")
        super().__init__(dim, objectives, seed,
                         options={"sampler": canonical, **sampler_options})
        try:
            built = sampler_class(seed=seed, **sampler_options)
        except (TypeError, ValueError) as error:
            raise option_error(None, sampler_options,
                               f"optuna's {class_name} rejects them: {error}") from None
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created" each time
        try:
            self.study = optuna.create_study(sampler=built,
                                             directions=list(self.objectives.directions))
        finally:
            optuna.logging.set_verbosity(verbosity)
        self._distributions = {
            f"x{i}": optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(dim)
        }
        self._trials: dict[str, int] = {}  # uid -> trial number, asked and not told

    def _ask(self, n: int) -> list[Candidate]:
        candidates = []
        for _ in range(n):
            trial = self.study.ask(fixed_distributions=self._distributions)
            candidate = self._candidate([trial.params[k] for k in self._distributions],
                                        trial=trial.number)
            self._trials[candidate.uid] = trial.number
            candidates.append(candidate)
        return candidates

    def _tell(self, results: list[tuple[Candidate, Fitness]]) -> None:
        from optuna.trial import TrialState, create_trial

        for candidate, fitness in results:
            usable = ok_losses(self.objectives, fitness) is not None
            values = ([float(fitness.objectives[n]) for n in self.objectives.names]
                      if usable else None)
            number = self._trials.pop(candidate.uid, None)
            if number is not None:
                if usable:
                    self.study.tell(number, values)
                else:
                    pruned = fitness.status == "pruned"
                    self.study.tell(number, state=TrialState.PRUNED if pruned
                                    else TrialState.FAIL)
                continue
            x = self._box_point(candidate)
            if x is None or not usable:
                continue
            self.study.add_trial(create_trial(
                params={k: float(v) for k, v in zip(self._distributions, x)},
                distributions=self._distributions,
                values=values,
            ))
