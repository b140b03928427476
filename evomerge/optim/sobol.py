"""Quasi-random search with a scrambled Sobol' sequence (Sobol' 1967; Owen 1998 scrambling),
through ``scipy.stats.qmc.Sobol``; and :func:`sobol_points`, the one way evomerge draws
Sobol' points (MAP's sampling plan uses it too).

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

from evomerge.optim.base import register_optimizer
from evomerge.optim.random_search import RandomSearch


def sobol_points(dim: int, count: int, seed: int, skip: int = 0) -> np.ndarray:
    """Points ``skip .. skip+count-1`` of the scrambled Sobol' sequence of ``(dim, seed)``,
    shape ``(count, dim)`` in ``[0, 1]^dim``.

    The same ``(dim, seed)`` always gives the same sequence, so it can be continued
    (``skip``) after a restart, in batches of any size.

    >>> a = sobol_points(3, 6, seed=1)
    >>> np.allclose(a[4:], sobol_points(3, 2, seed=1, skip=4))
    True
    """
    from scipy.stats import qmc  # scipy.stats takes a while to import; only on use

    if count <= 0:
        return np.zeros((0, dim))
    engine = qmc.Sobol(d=dim, scramble=True, rng=np.random.default_rng(seed))
    if skip > 0:  # scipy's fast_forward(0) overflows
        engine.fast_forward(skip)
    elif count > 1:
        # scipy warns when the first draw is not a power of two (balance of the
        # sequence); drawing the first point alone gives the same points, silently.
        return np.concatenate([engine.random(1), engine.random(count - 1)])
    return engine.random(count)


@register_optimizer
class SobolSearch(RandomSearch):
    """Points of one scrambled Sobol' sequence seeded by ``seed``."""

    name = "sobol"

    def _points(self, start: int, n: int) -> np.ndarray:
        return sobol_points(self.dim, n, self.seed, skip=start)
