"""Quasi-random search with a scrambled Sobol' sequence (Sobol' 1967; Owen 1998 scrambling),
through ``scipy.stats.qmc.Sobol``.

Covers the box more evenly than independent uniform points; a baseline like
:mod:`evomerge.optim.random_search`, whose bookkeeping it shares: the state is the number
of points asked, and the k-th point depends only on ``(seed, k)``.

>>> opt = SobolSearch(dim=2, seed=1)
>>> first = opt.ask(3)
>>> again = SobolSearch(dim=2, seed=1)
>>> [c.x for c in again.ask(1) + again.ask(2)] == [c.x for c in first]
True
"""

from __future__ import annotations

import numpy as np

from evomerge.optim.random_search import RandomSearch


class SobolSearch(RandomSearch):
    """Points of one scrambled Sobol' sequence seeded by ``seed``."""

    name = "sobol"

    def _points(self, start: int, n: int) -> np.ndarray:
        from scipy.stats import qmc  # scipy.stats takes a while to import; only on use

        engine = qmc.Sobol(d=self.dim, scramble=True, rng=self.seed)
        if start > 0:  # scipy's fast_forward(0) overflows
            engine.fast_forward(start)
        elif n > 1:
            # scipy warns when the first draw is not a power of two (balance of the
            # sequence); drawing the first point alone gives the same points, silently.
            return np.concatenate([engine.random(1), engine.random(n - 1)])
        return engine.random(n)
