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
    import torch

    from evomerge.evaluate import build_report_evaluator
    from evomerge.merge.live import LiveMerger

    evaluator = build_report_evaluator(campaign.evaluation, str(campaign.file))
    out: dict[str, Metrics] = {}
    if recorded:
        out[MERGE] = dict(recorded)
    else:
        # float32 on the CPU, as the campaign's workers build a candidate by default
        with LiveMerger(campaign.sources, base=campaign.base, dtype=torch.float32) as merger:
            model = merger.new_model()
            merger.build(recipe, model)
            out[MERGE] = _evaluate(evaluator, model, campaign.base or campaign.sources[0],
                                   "the merge")
        del model
    for source in recipe.source_models():
        out[source] = _evaluate(evaluator, _load(source), source, source)
    return out


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
