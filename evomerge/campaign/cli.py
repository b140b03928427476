"""The campaign commands: ``evomerge run``, ``evomerge resume`` and ``evomerge status``."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

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
@click.option("--storage", default=None,
              help="an optuna storage URL for the record (default: OUT/study.journal)")
@click.option("--quiet", is_flag=True, help="no live progress")
def run(campaign_file: Path, out: Path | None, budget: int | None, executor: str | None,
        workers: int | None, storage: str | None, quiet: bool) -> None:
    """Search the merges of CAMPAIGN_FILE; every candidate is a trial of an optuna study."""
    from evomerge.campaign.config import load_campaign
    from evomerge.campaign.folder import new_folder
    from evomerge.campaign.runner import run_folder

    overrides = {}
    if budget is not None:
        if budget <= 0:
            raise ConfigError(None, "--budget", budget, "must be a whole number > 0")
        overrides["budget.evaluations"] = budget
    if executor is not None:
        overrides["executor.kind"] = executor
    if workers is not None:
        if workers <= 0:
            raise ConfigError(None, "--workers", workers, "must be a whole number > 0")
        overrides["executor.workers"] = workers
    campaign = load_campaign(campaign_file, overrides)
    folder = new_folder(out or Path("runs") / campaign.config.name, campaign, storage)
    click.echo(f"campaign {campaign.config.name!r}: {campaign.space.dim} genes, "
               f"optimizer {campaign.config.optimizer.name}, record {folder.url}")
    with _live(quiet) as progress:
        status = run_folder(folder, progress)
    _summary(status, folder.out)


@click.command("resume")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--quiet", is_flag=True, help="no live progress")
def resume(out_dir: Path, quiet: bool) -> None:
    """Continue the campaign in OUT_DIR: finished trials are kept, interrupted ones rerun."""
    from evomerge.campaign.folder import open_folder
    from evomerge.campaign.runner import run_folder

    folder = open_folder(out_dir)
    with _live(quiet) as progress:
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
    best = s["best"]
    if best is None:
        click.echo("best        none yet")
    else:
        name = s["objective"]["name"]
        click.echo(f"best        {name} = {best['objectives'][name]:.4g}  uid {best['uid']}"
                   f"  trial {best['trial']}  recipe {best['recipe_hash']}")


def _summary(status: LoopStatus, out: Path) -> None:
    best = ("none" if status.best_value is None
            else f"{status.objective} = {status.best_value:.4g} (uid {status.best_uid})")
    click.echo(f"stopped ({status.stopped}): {status.evaluations} evaluations, "
               f"{status.failures} failed, {status.reused} reused; best {best}")
    if status.stopped == "interrupted":
        click.echo(f"continue with: evomerge resume {out}")


@contextlib.contextmanager
def _live(quiet: bool):
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
            bar.update(job, completed=s.evaluations, total=s.budget,
                       info=f"best {best}  {s.per_hour:.0f}/h  failed {s.failures}"
                            f"  reused {s.reused}")

        yield update
