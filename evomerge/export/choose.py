"""Which candidate of a campaign to take away: the best, the K-th best, or one by uid.

The order is the campaign's own (:func:`~evomerge.campaign.choice.best_trials`, the one
that chooses which candidates get the report tasks): by the search objective, each
recipe once; for several objectives, the Pareto front ordered by the first objective.
Any finished candidate, on the front or not, is chosen by its uid.

>>> # trial = choose_trial(open_folder("runs/toy").open_record().trials(), objectives, rank=2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evomerge.campaign.choice import best_trials
from evomerge.campaign.folder import CampaignFolder
from evomerge.campaign.study import NoStudyYet, TrialRecord
from evomerge.errors import ConfigError
from evomerge.optim.base import ObjectiveSpec

#: uids an unknown-uid message lists
SHOWN = 5


def read_trials(folder: CampaignFolder) -> tuple[dict[str, Any], list[TrialRecord]]:
    """The study's attributes and trials; none of either where the run stopped before its
    study was created (killed while loading its models)."""
    try:
        record = folder.open_record()
    except NoStudyYet:
        return {}, []
    return dict(record.user_attrs), record.trials()


def choose_trial(trials: Sequence[TrialRecord], objectives: ObjectiveSpec,
                 rank: int = 1, uid: str | None = None, where: Any = None) -> TrialRecord:
    """The ``rank``-th of the campaign's best trials, or the finished trial with ``uid``
    (``where``, the campaign folder, starts the error messages)."""
    order = best_trials(list(trials), objectives)
    if not order:
        finished = sum(t.done for t in trials)
        raise ConfigError(where, None, None,
                          f"the campaign has no candidate with scores yet ({len(trials)} "
                          f"trials, {finished} finished, none complete)")
    if uid is not None:
        match = next((t for t in trials if t.candidate.uid == uid), None)
        if match is None:
            listed = ", ".join(t.candidate.uid for t in order[:SHOWN])
            what = ("the Pareto front" if len(objectives.names) > 1
                    else f"the best {min(SHOWN, len(order))}")
            raise ConfigError(where, "--uid", uid,
                              f"no trial of the campaign has this uid ({what}: {listed})")
        if match.state != "COMPLETE" or match.fitness is None or not match.fitness.is_ok:
            raise ConfigError(where, "--uid", uid,
                              f"trial {match.number} is {match.state}, not a scored candidate")
        return match
    if rank < 1 or rank > len(order):
        kind = ("candidates on its Pareto front" if len(objectives.names) > 1
                else "scored candidates")
        raise ConfigError(where, "--rank", rank,
                          f"must lie in [1, {len(order)}]: the campaign has {len(order)} "
                          f"{kind}")
    return order[rank - 1]
