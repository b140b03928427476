"""What each registered optimizer supports, so the shared suite runs the checks that apply.

Test metadata only: the library never reads it. Every name in the optimizer registry
must have an entry here (the suite checks it), so a new optimizer cannot join the
registry without the suite running on it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    """``box``: candidates carry ``x`` in ``[0, 1]^dim``, and never-asked results are given
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

CAPABILITIES: dict[str, Capabilities] = {
    "cma": Capabilities(),
    "nevergrad": Capabilities(multi_objective=True),
    "optuna": Capabilities(multi_objective=True),
    "random": BASELINE,
    "sobol": BASELINE,
    # M2N2 carries whole parameter vectors (or coefficient matrices) in params; its digits
    # experiment is its benchmark
    "m2n2": Capabilities(box=False, beats_random_single=False),
    # MAP's budget is its sampling plan and its own tests measure its fronts
    "map": Capabilities(multi_objective=True, beats_random_single=False),
    "nested_map": Capabilities(single_objective=False, multi_objective=True,
                               one_objective_per_dimension=True),
    # a suite variant (VARIANTS below), not a registered name
    "nevergrad-NGOpt": Capabilities(multi_objective=True),
}

#: configurations the suite runs besides each registered name's defaults: a suite name ->
#: (registered name, options). NGOpt is the method nevergrad's users reach for first; it
#: picks its inner method from budget, workers and dimension.
VARIANTS: dict[str, tuple[str, dict]] = {
    "nevergrad-NGOpt": ("nevergrad", {"optimizer": "NGOpt", "budget": 200, "num_workers": 4}),
}
