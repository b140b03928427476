"""Scores on a campaign's report tasks (its test split), for the model card of an export.

A chosen candidate's report scores are read from the study, where the campaign recorded
them for its best candidates when the search stopped (``TrialRecord.report``); where
there are none, the candidate is built in memory, as the campaign's workers build it,
and scored here. Each source model is scored from its folder, so the card can set the
merge against every model it was made from.

>>> # scores = report_scores(folder.campaign, recipe, recorded=None)
>>> # scores["merge"]["score"], scores["/models/expert_add"]["score"]
"""

from __future__ import annotations

from typing import Any

from evomerge.campaign.config import Campaign
from evomerge.campaign.study import TrialRecord
from evomerge.export.model_card import recipe_models
from evomerge.merge.recipe import Recipe

#: the key of the merged model in :func:`report_scores`' answer
MERGE = "merge"

Metrics = dict[str, float]


def recorded_report(trial: TrialRecord) -> Metrics | None:
    """The report-task scores the campaign recorded for ``trial`` (None: not scored, or
    the scoring failed)."""
    report = trial.report or {}
    if report.get("error") or not report.get("objectives"):
        return None
    return {k: float(v) for k, v in report["objectives"].items()}


def report_scores(campaign: Campaign, recipe: Recipe,
                  recorded: Metrics | None = None) -> dict[str, Metrics]:
    """``{MERGE: metrics, model folder: metrics, ...}`` on the report tasks, for the merge
    of ``recipe`` (``recorded`` when given) and every model the recipe reads."""
    from evomerge.evaluate import build_report_evaluator

    evaluator = build_report_evaluator(campaign.evaluation, str(campaign.file))
    out: dict[str, Metrics] = {}
    if recorded:
        out[MERGE] = dict(recorded)
    else:
        model, tokenizer = _candidate(campaign, recipe)
        out[MERGE] = _evaluate(evaluator, model, tokenizer, "the merge")
        del model
    for source in recipe_models(recipe):
        out[source] = _evaluate(evaluator, _load(source), source, source)
    return out


def _candidate(campaign: Campaign, recipe: Recipe) -> tuple[Any, str]:
    """The candidate built in memory as the campaign's workers build it (float32, CPU),
    and the folder of its tokenizer."""
    import torch

    if recipe.routing is not None:
        from evomerge.merge.routed_model import routed_from_folders

        return routed_from_folders(recipe, dtype=torch.float32), recipe.routing.embeddings
    from evomerge.merge.live import LiveMerger

    with LiveMerger(campaign.sources, base=campaign.base, dtype=torch.float32) as merger:
        model = merger.new_model()
        merger.build(recipe, model)
    return model, campaign.base or campaign.sources[0]


def _load(folder: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def _evaluate(evaluator: Any, model: Any, tokenizer_folder: str, label: str) -> Metrics:
    from transformers import AutoTokenizer

    fitness = evaluator.evaluate(model, AutoTokenizer.from_pretrained(tokenizer_folder))
    if not fitness.is_ok:
        raise RuntimeError(f"scoring {label} on the report tasks failed: "
                           f"{fitness.error}")
    return {k: float(v) for k, v in fitness.objectives.items()}
