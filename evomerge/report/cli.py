"""``evomerge report`` and ``evomerge dashboard``."""

from __future__ import annotations

from pathlib import Path

import click

from evomerge.errors import ConfigError

REPORT_FILE = "report.html"


@click.command("report")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help=f"the HTML file (default: OUT_DIR/{REPORT_FILE})")
def report(out_dir: Path, output: Path | None) -> None:
    """Write a self-contained HTML report of the campaign in OUT_DIR (running or not)."""
    from evomerge.campaign.folder import open_folder, write_atomic
    from evomerge.report.data import campaign_data
    from evomerge.report.html import render_report

    folder = open_folder(out_dir)
    target = output or folder.out / REPORT_FILE
    if target.is_dir():
        raise ConfigError(None, "-o", str(target), "is a folder; give a file name")
    data = campaign_data(folder)
    page = render_report(data)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, page)
    click.echo(f"wrote {target} ({len(data.trials)} trials, {len(page) / 1024:.0f} KiB)")


@click.command("dashboard")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--port", type=int, default=8080, show_default=True)
def dashboard(out_dir: Path, port: int) -> None:
    """Serve the study of the campaign in OUT_DIR in optuna-dashboard on 127.0.0.1."""
    from evomerge.campaign.folder import open_folder
    from evomerge.report.dashboard import serve

    if not 0 < port < 65536:
        raise ConfigError(None, "--port", port, "must lie in [1, 65535]")
    folder = open_folder(out_dir)
    try:
        serve(folder, port, announce=lambda url: click.echo(
            f"optuna-dashboard for {folder.url} at {url} (Ctrl-C stops it)"))
    except KeyboardInterrupt:
        click.echo("dashboard stopped")
