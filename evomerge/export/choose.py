"""Which candidate of a campaign to take away: the best, the K-th best, or one by uid.

Candidates are ranked by the campaign's first objective (the one ``evomerge status``
calls best), each recipe once: a trial that reused an earlier result is the same recipe
and does not take a rank of its own. For a multi-objective campaign the non-dominated
candidates over all objectives are the Pareto front; any of them (or any finished
candidate) is chosen by its uid.

>>> # trial = choose_trial(open_folder("runs/toy").open_record().trials(), objectives, rank=2)
"""

from __future__ import annotations

from collections.abc import Sequence

from evomerge.campaign.study import TrialRecord
from evomerge.errors import ConfigError
from evomerge.optim.base import ObjectiveSpec
from evomerge.pareto import non_dominated_mask


def scored(trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Trials whose evaluation finished with objective values, each recipe once."""
    return [t for t in trials if t.state == "COMPLETE" and not t.reused_from
            and t.fitness is not None and t.fitness.is_ok]


def ranked(trials: Sequence[TrialRecord], objectives: ObjectiveSpec) -> list[TrialRecord]:
    """Scored trials, best first by the first objective (ties: the earlier trial first)."""
    name, direction = objectives.names[0], objectives.directions[0]
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(scored(trials), key=lambda t: (sign * t.fitness.objectives[name], t.number))


def pareto_front(trials: Sequence[TrialRecord], objectives: ObjectiveSpec) -> list[TrialRecord]:
    """Scored trials that no other scored trial dominates on all the objectives."""
    done = scored(trials)
    if not done:
        return []
    points = [[t.fitness.objectives[n] for n in objectives.names] for t in done]
    mask = non_dominated_mask(points, list(objectives.directions))
    return [t for t, keep in zip(done, mask) if keep]


def choose_trial(trials: Sequence[TrialRecord], objectives: ObjectiveSpec,
                 rank: int = 1, uid: str | None = None) -> TrialRecord:
    """The ``rank``-th best scored trial, or the finished trial with ``uid``."""
    order = ranked(trials, objectives)
    if not order:
        finished = sum(t.done for t in trials)
        raise ConfigError(None, "DIR", None,
                          f"the campaign has no candidate with scores yet ({len(trials)} "
                          f"trials, {finished} finished, none complete)")
    if uid is not None:
        match = next((t for t in trials if t.candidate.uid == uid), None)
        if match is None:
            front = [t.candidate.uid for t in pareto_front(trials, objectives)]
            raise ConfigError(None, "--uid", uid,
                              f"no trial of the campaign has this uid (the Pareto front: "
                              f"{', '.join(front)})")
        if match.state != "COMPLETE" or match.fitness is None or not match.fitness.is_ok:
            raise ConfigError(None, "--uid", uid,
                              f"trial {match.number} is {match.state}, not a scored candidate")
        return match
    if rank < 1 or rank > len(order):
        raise ConfigError(None, "--rank", rank,
                          f"must lie in [1, {len(order)}]: the campaign has {len(order)} "
                          "scored candidates")
    return order[rank - 1]
