"""``evomerge export``: a campaign's best (or chosen) recipe as a file or a model folder."""

from __future__ import annotations

from pathlib import Path

import click

from evomerge.errors import ConfigError


@click.command("export")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["native", "mergekit"]), default="native",
              show_default=True, help="the recipe file's format")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="write the recipe to this file (default: print it, unless "
                   "--materialize writes it into the model folder)")
@click.option("--rank", type=int, default=1, show_default=True,
              help="the K-th best by the first objective (with several objectives: the "
                   "K-th member of the Pareto front, ordered by the first)")
@click.option("--uid", default=None, help="the candidate with this uid (e.g. a Pareto-front "
                                          "member of a multi-objective campaign)")
@click.option("--materialize", type=click.Path(path_type=Path), default=None,
              help="also build the model into this folder, with a model card")
@click.option("--overwrite", is_flag=True, help="replace a model already at --materialize")
@click.option("--no-scores", is_flag=True,
              help="do not score the model and its sources on the report tasks for the card")
def export(out_dir: Path, fmt: str, output: Path | None, rank: int, uid: str | None,
           materialize: Path | None, overwrite: bool, no_scores: bool) -> None:
    """Export the best recipe of the campaign in OUT_DIR (or the --rank K-th, or --uid)."""
    from evomerge.campaign.folder import open_folder, write_atomic
    from evomerge.checkpoint.writer import check_target
    from evomerge.export import campaign_export as ex
    from evomerge.export import scores as sc

    folder = open_folder(out_dir)
    chosen = ex.chosen_candidate(folder, rank=rank, uid=uid)
    text = ex.provenance(chosen) + ex.recipe_text(chosen.recipe, fmt)
    if output is not None and output.is_dir():
        raise ConfigError(None, "-o", str(output), "is a folder; give a file name")
    if materialize is not None:
        check_target(materialize, overwrite)  # before anything is written or scored
    trial = chosen.trial
    value = trial.fitness.objectives[folder.campaign.objectives.names[0]]
    click.echo(f"trial {trial.number} (uid {trial.candidate.uid}, "
               f"{folder.campaign.objectives.names[0]} = {value:.4g}), recipe "
               f"{trial.recipe_hash}", err=True)
    if output is None and materialize is None:
        click.echo(text, nl=False)
    elif output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(output, text)
        click.echo(f"wrote the {fmt} recipe to {output}", err=True)
    if materialize is None:
        return
    scores, recorded = None, sc.recorded_report(trial)
    if not no_scores and folder.campaign.has_report_tasks:
        click.echo("scoring " + ("the sources" if recorded else "the merge and its sources")
                   + " on the report tasks", err=True)
        scores = sc.report_scores(folder.campaign, chosen.recipe, recorded)
    written = ex.materialize(chosen, materialize, scores, overwrite=overwrite,
                             merge_scored_by_campaign=recorded is not None)
    click.echo(f"wrote {written} with a model card to {materialize}", err=True)
