"""Which finished trials a campaign stands behind: ranked on the search split only.

The ranking reads objective values recorded on the search tasks and nothing else; the
report (test) tasks are scored afterwards for the trials chosen here, never used to
choose. With one objective: the best ``k`` by it; with several: the members of the
Pareto front, ordered by the first objective, at most ``k``.

>>> # chosen = best_trials(record.trials(), campaign.objectives, k=3)
"""

from __future__ import annotations

import numpy as np

from evomerge.campaign.study import TrialRecord
from evomerge.optim.base import ObjectiveSpec
from evomerge.pareto import non_dominated_mask


def evaluated_ok(trials: list[TrialRecord]) -> list[TrialRecord]:
    """Trials evaluated here (not reused results) that finished with a score."""
    return [t for t in trials if t.state == "COMPLETE" and not t.reused_from
            and t.fitness is not None and t.fitness.is_ok]


def best_trials(trials: list[TrialRecord], objectives: ObjectiveSpec,
                k: int | None = None) -> list[TrialRecord]:
    """The best ``k`` trials (all when ``k`` is None), best first (see the module)."""
    ok = evaluated_ok(trials)
    if not ok:
        return []
    losses = np.array([objectives.losses(t.fitness) for t in ok])
    if len(objectives.names) > 1:
        keep = non_dominated_mask(losses)
        ok, losses = [t for t, m in zip(ok, keep) if m], losses[keep]
    order = sorted(range(len(ok)), key=lambda i: (losses[i][0], ok[i].number))
    return [ok[i] for i in order][:k]
