"""optuna-dashboard over a campaign's study (an optional extra: ``pip install -e
".[dashboard]"``).

The study already reads well there: a trial's parameters are the space's gene names,
its user attributes hold the per-task metrics (``metrics``), timings, worker and uid.
What the study may lack is the objectives' names, which optuna keeps as the study's
metric names: :func:`name_objectives` sets them from the campaign before serving.

>>> # serve(open_folder("runs/toy"), port=8080)   # blocks until Ctrl-C
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

from evomerge.campaign.folder import CampaignFolder
from evomerge.campaign.study import StudyRecord
from evomerge.errors import ConfigError, EvomergeError

HOST = "127.0.0.1"
INSTALL_HINT = ('optuna-dashboard is not installed; install it with '
                '`pip install -e ".[dashboard]"` (or `pip install optuna-dashboard`)')


def name_objectives(record: StudyRecord, names: list[str]) -> bool:
    """Give the study's objectives the campaign's names; True when they were changed."""
    if record.study.metric_names == names:
        return False
    with warnings.catch_warnings():  # optuna marks metric names experimental since 3.2
        warnings.simplefilter("ignore")
        record.study.set_metric_names(names)
    return True


def serve(folder: CampaignFolder, port: int, host: str = HOST,
          announce: Callable[[str], None] = print) -> None:
    """Serve the campaign's study until interrupted (optuna-dashboard's own server);
    ``announce`` gets the address once everything but the server has started."""
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise EvomergeError(INSTALL_HINT) from None
    record = folder.open_record()
    name_objectives(record, list(folder.campaign.objectives.names))
    announce(f"http://{host}:{port}/")
    try:
        run_server(record.storage, host=host, port=port)
    except OSError as exc:  # the port is taken, or not ours to bind
        raise ConfigError(None, "--port", port,
                          f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
