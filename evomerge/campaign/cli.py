"""The campaign commands: ``evomerge run``, ``evomerge resume`` and ``evomerge status``."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import click

from evomerge.campaign.loop import LoopStatus
from evomerge.errors import ConfigError


@click.command("run")
@click.argument("campaign_file", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="campaign folder (default: runs/<campaign name>)")
@click.option("--budget", type=int, default=None, help="evaluations (replaces the file's)")
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None)
@click.option("--workers", type=int, default=None, help="candidates evaluated at once")
@click.option("--address", default=None,
              help="HOST:PORT of a running Ray head to join (implies --executor ray)")
@click.option("--storage", default=None,
              help="an optuna storage URL for the record (default: OUT/study.journal)")
@click.option("--quiet", is_flag=True, help="no live progress")
def run(campaign_file: Path, out: Path | None, budget: int | None, executor: str | None,
        workers: int | None, address: str | None, storage: str | None, quiet: bool) -> None:
    """Search the merges of CAMPAIGN_FILE; every candidate is a trial of an optuna study."""
    from evomerge.campaign.config import load_campaign
    from evomerge.campaign.folder import new_folder
    from evomerge.campaign.runner import run_folder

    overrides = _overrides(budget, workers, address)
    if executor is not None:
        overrides["executor.kind"] = executor
    campaign = load_campaign(campaign_file, overrides)
    folder = new_folder(out or Path("runs") / campaign.config.name, campaign, storage)
    click.echo(f"campaign {campaign.config.name!r}: {campaign.space.dim} genes, "
               f"optimizer {campaign.config.optimizer.name}, record {folder.url}")
    with live_progress(quiet) as progress:
        status = run_folder(folder, progress)
    _summary(status, folder.out)


@click.command("resume")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--budget", type=int, default=None,
              help="evaluations in all, this run and the earlier ones (replaces the budget)")
@click.option("--workers", type=int, default=None, help="candidates evaluated at once")
@click.option("--address", default=None,
              help="HOST:PORT of a running Ray head to join (implies the Ray executor)")
@click.option("--quiet", is_flag=True, help="no live progress")
def resume(out_dir: Path, budget: int | None, workers: int | None, address: str | None,
           quiet: bool) -> None:
    """Continue the campaign in OUT_DIR: finished trials are kept, interrupted ones rerun."""
    from evomerge.campaign.folder import open_folder
    from evomerge.campaign.runner import run_folder

    folder = open_folder(out_dir, _overrides(budget, workers, address))
    with live_progress(quiet) as progress:
        status = run_folder(folder, progress, resume=True)
    _summary(status, folder.out)


@click.command("status")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the status as JSON")
def status(out_dir: Path, as_json: bool) -> None:
    """Evaluations, failures and the best candidate of the campaign in OUT_DIR."""
    from evomerge.campaign.folder import open_folder
    from evomerge.campaign.status import campaign_status

    s = campaign_status(open_folder(out_dir))
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    budget = s["budget"]["evaluations"]
    click.echo(f"campaign    {s['name']}  ({s['storage']})")
    click.echo(f"evaluations {s['evaluations']}" + (f" / {budget}" if budget else "")
               + f"  complete {s['complete']}  failed {s['failed']}  running {s['running']}"
               f"  reused {s['reused']}")
    rate = s["evaluations_per_hour"]
    click.echo(f"time        {s['elapsed_s']:.1f} s" + (f"  ({rate:.0f} evaluations/h)"
                                                        if rate else ""))
    name = s["objective"]["name"]
    if s["best"] is None:
        click.echo("best        none yet")
    for rank, chosen in enumerate(s["chosen"], 1):
        test = _report_scores(chosen["report"], name)
        click.echo(f"{'best' if rank == 1 else f'#{rank}':<12}{name} = "
                   f"{chosen['objectives'][name]:.4g}{test}  uid {chosen['uid']}"
                   f"  trial {chosen['trial']}  recipe {chosen['recipe_hash']}")
    for worker, w in s["workers"].items():
        click.echo(f"worker      {worker}: {w['candidates']} candidates, merge "
                   f"{w['merge_s']:.1f} s, evaluate {w['eval_s']:.1f} s, idle "
                   f"{w['idle_s']:.1f} s ({100 * w['busy_fraction']:.0f}% busy)")
    for failure in s["failures"]:
        click.echo(f"failed      trial {failure['trial']} ({failure['worker']}): "
                   f"{failure['error']}")


def _overrides(budget: int | None, workers: int | None,
               address: str | None) -> dict[str, Any]:
    """Campaign fields the command line replaces, as dotted names."""
    overrides: dict[str, Any] = {}
    for option, value in (("--budget", budget), ("--workers", workers)):
        if value is not None and value <= 0:
            raise ConfigError(None, option, value, "must be a whole number > 0")
    if budget is not None:
        overrides["budget.evaluations"] = budget
    if workers is not None:
        overrides["executor.workers"] = workers
    if address is not None:
        overrides["executor.kind"] = "ray"
        overrides["executor.address"] = address
    return overrides


def _summary(status: LoopStatus, out: Path) -> None:
    best = ("none" if status.best_value is None
            else f"{status.objective} = {status.best_value:.4g} (uid {status.best_uid})")
    pruned = f", {status.pruned} pruned" if status.pruned else ""
    click.echo(f"stopped ({status.stopped}): {status.evaluations} evaluations, "
               f"{status.failures} failed{pruned}, {status.reused} reused, "
               f"{status.documents} documents scored; best {best}")
    if status.stopped == "interrupted":
        click.echo(f"continue with: evomerge resume {out}")


@contextlib.contextmanager
def live_progress(quiet: bool):
    """A progress callback drawing a rich live bar (None when quiet)."""
    if quiet:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("[bold]evaluations"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), transient=False) as bar:
        job = bar.add_task("campaign", total=None, info="starting")

        def update(s: LoopStatus) -> None:
            best = ("-" if s.best_value is None
                    else f"{s.objective} {s.best_value:.4g} ({s.best_uid})")
            eta = ""
            if s.budget and s.per_hour > 0:
                eta = f"  ETA {_duration(3600.0 * (s.budget - s.evaluations) / s.per_hour)}"
            bar.update(job, completed=s.evaluations, total=s.budget,
                       info=f"best {best}  {s.per_hour:.0f}/h{eta}  busy {s.running}"
                            f"  failed {s.failures}  pruned {s.pruned}  reused {s.reused}")

        yield update


def _duration(seconds: float) -> str:
    """
    >>> _duration(3725)
    '1h02m'
    """
    minutes = int(max(seconds, 0) // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{int(seconds)}s" \
        if minutes == 0 else f"{minutes}m{int(seconds) % 60:02d}s"


def _report_scores(report: dict[str, float] | None, objective: str) -> str:
    """The report tasks' scores of a chosen candidate: the objective's own name where the
    report has it (a single ``score``), else every report task's metric (the report's
    tasks are other tasks than the search objectives name)."""
    if report is None:
        return ""
    if objective in report:
        return f"  report {report[objective]:.4g}"
    return "  report " + ", ".join(f"{k} {v:.4g}" for k, v in report.items() if k != "score")
