"""A campaign's chosen recipe as a file, and as a model folder with a model card.

The recipe is the one the trial evaluated (:meth:`CampaignFolder.trial_recipe`), written
as native YAML or, where mergekit can express it, as a mergekit config. Materializing
builds it with the disk engine (:func:`~evomerge.merge.to_disk.merge_to_disk`) and gives
the folder the usual records (:func:`~evomerge.export.model_card.merge_records`) with
two more card sections: the scores on the report tasks against every source, and the
campaign the recipe came from.

>>> # chosen = chosen_candidate(open_folder("runs/toy"), rank=1)
>>> # print(recipe_text(chosen.recipe, "mergekit"))
>>> # materialize(chosen, "runs/toy_best", scores=None)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evomerge.campaign.choice import evaluated_ok
from evomerge.campaign.folder import CAMPAIGN_FILE, CampaignFolder, write_atomic
from evomerge.campaign.study import TrialRecord
from evomerge.errors import ConfigError
from evomerge.export.choose import choose_trial, read_trials
from evomerge.export.mergekit_yaml import mergekit_yaml
from evomerge.export.model_card import (
    CARD_FILE,
    MERGEKIT_FILE,
    merge_records,
    model_card,
    package_versions,
)
from evomerge.export.routed import export_recipe
from evomerge.export.scores import MERGE, Metrics
from evomerge.merge.recipe import Recipe
from evomerge.merge.to_disk import merge_to_disk


@dataclass
class Chosen:
    """A chosen trial of a campaign folder and the recipe it evaluated."""

    folder: CampaignFolder
    trial: TrialRecord
    recipe: Recipe
    evaluations: int  # scored candidates in the campaign when it was chosen
    config_hash: str  # as the study recorded it when the campaign started


def chosen_candidate(folder: CampaignFolder, rank: int = 1, uid: str | None = None) -> Chosen:
    attrs, trials = read_trials(folder)
    trial = choose_trial(trials, folder.campaign.objectives, rank=rank, uid=uid,
                         where=folder.out)
    config_hash = attrs.get("config_hash") or folder.campaign.config_hash()
    return Chosen(folder, trial, folder.trial_recipe(trial), len(evaluated_ok(trials)), config_hash)


def recipe_text(recipe: Recipe, fmt: str) -> str:
    """The recipe as native YAML or as a mergekit config (refused with the reason)."""
    if fmt == "native":
        return recipe.to_yaml()
    try:
        return mergekit_yaml(recipe)
    except ConfigError as exc:
        raise ConfigError(None, "--format", fmt,
                          f"mergekit cannot express this recipe: {exc.rule} "
                          "(export it with --format native)") from None


def provenance(chosen: Chosen) -> str:
    """YAML comment lines saying where an exported recipe came from (the campaign, its
    config hash and seed, the trial, its scores and evaluation settings, the versions);
    both recipe formats ignore them."""
    trial, config = chosen.trial, chosen.folder.campaign.config
    fitness = trial.fitness
    scores = ", ".join(f"{k} = {v:.4g}" for k, v in fitness.objectives.items())
    versions = package_versions("evomerge", "torch", "transformers")
    return "\n".join([
        (f"# exported by evomerge from campaign {config.name!r} (config hash "
         f"{chosen.config_hash}, seed {config.seed}) at {chosen.folder.out.resolve()}"),
        f"# trial {trial.number}, uid {trial.candidate.uid}, recipe hash {trial.recipe_hash}",
        f"# search tasks: {scores}" + (f" (evaluation settings {fitness.settings_hash})"
                                        if fitness.settings_hash else ""),
        "# " + ", ".join(f"{k} {v}" for k, v in versions.items()), ""])


def materialize(chosen: Chosen, out_dir: Path | str, scores: dict[str, Metrics] | None,
                overwrite: bool = False, merge_scored_by_campaign: bool = False) -> str:
    """Build the chosen recipe into ``out_dir`` with its recipe files and model card;
    returns what was written, in words."""
    sections = [scores_section(chosen, scores, merge_scored_by_campaign),
                campaign_section(chosen)]
    recipe = chosen.recipe
    if recipe.routing is None:
        report = merge_to_disk(recipe, out_dir, overwrite=overwrite,
                               recipe_file=chosen.folder.out / CAMPAIGN_FILE,
                               records=merge_records(recipe, sections))
        return (f"{report.tensors} tensors ({report.bytes_written / 2**20:.1f} MiB) in "
                f"{report.seconds:.2f} s")
    # a layer path: built in memory and exported by export/routed.py, which writes the
    # recipe (and the mergekit config of an unscaled path); the card follows the folder
    out = export_recipe(recipe, out_dir, overwrite=overwrite)
    refusal = None if (out / MERGEKIT_FILE).is_file() else (
        "its layer path scales the hidden state or runs through the weight merge")
    write_atomic(out / CARD_FILE, model_card(recipe, refusal, sections))
    return f"a routed model of {len(recipe.routing.path)} hops"


def scores_section(chosen: Chosen, scores: dict[str, Metrics] | None,
                   merge_scored_by_campaign: bool = False) -> str:
    """The card's scores: the search objectives the campaign measured, and the report
    tasks for the merge and every model it was made from."""
    fitness = chosen.trial.fitness
    lines = ["## Scores", "",
             "On the search tasks (what the campaign selected on):", "",
             *_table({"this merge": fitness.objectives if fitness else {}}), ""]
    if not scores:
        lines += ["On the report tasks: not scored.", ""]
        return "\n".join(lines)
    rows = {"this merge": scores.get(MERGE, {})}
    for model, metrics in scores.items():
        if model != MERGE:
            role = " (base)" if model == chosen.recipe.base_model else ""
            rows[f"`{model}`{role}"] = metrics
    where = ("the merge's as the campaign scored it, the sources' scored at export"
             if merge_scored_by_campaign else "all scored at export")
    lines += [("On the report tasks (a split the search never saw), against every source "
               f"({where}):"), "", *_table(rows), ""]
    return "\n".join(lines)


def campaign_section(chosen: Chosen) -> str:
    folder, trial, config = chosen.folder, chosen.trial, chosen.folder.campaign.config
    return "\n".join([
        "## Campaign", "",
        (f"- campaign `{config.name}` (config hash `{chosen.config_hash}`), "
         f"folder `{folder.out.resolve()}`"),
        f"- record `{folder.url}`",
        (f"- optimizer `{config.optimizer.name}`, seed {config.seed}, "
         f"{chosen.evaluations} candidates scored"),
        (f"- trial {trial.number}, uid `{trial.candidate.uid}`, recipe hash "
         f"`{trial.recipe_hash}`"), ""])


def _table(rows: dict[str, Metrics]) -> list[str]:
    """A Markdown table: one row per model, one column per metric."""
    columns = sorted({k for metrics in rows.values() for k in metrics})
    out = ["| model | " + " | ".join(columns) + " |",
           "|---|" + "---|" * len(columns)]
    for label, metrics in rows.items():
        cells = [f"{metrics[c]:.4g}" if c in metrics else "-" for c in columns]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out
