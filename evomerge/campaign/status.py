"""What a campaign folder holds so far, read from its study (``evomerge status DIR``).

>>> # summary = campaign_status(open_folder("runs/toy")); summary["best"]["uid"]
"""

from __future__ import annotations

from typing import Any

from evomerge.campaign.folder import CampaignFolder


def campaign_status(folder: CampaignFolder) -> dict[str, Any]:
    """Counts by state, evaluations against the budget, the best trial, speed."""
    record = folder.open_record()
    trials = record.trials()
    objectives = folder.campaign.objectives
    name, direction = objectives.names[0], objectives.directions[0]
    evaluated = [t for t in trials if t.done and not t.reused_from]
    ok = [t for t in evaluated if t.fitness is not None and t.fitness.is_ok]
    best = None
    if ok:
        sign = 1.0 if direction == "maximize" else -1.0
        top = max(ok, key=lambda t: sign * t.fitness.objectives[name])
        best = {"trial": top.number, "uid": top.candidate.uid, "recipe_hash": top.recipe_hash,
                "objectives": top.fitness.objectives, "worker": top.worker}
    elapsed = float(record.user_attrs.get("elapsed_s", 0.0))
    budget = folder.campaign.config.budget
    return {
        "name": folder.campaign.config.name,
        "folder": str(folder.out),
        "storage": folder.url,
        "objective": {"name": name, "direction": direction},
        "evaluations": len(evaluated),
        "budget": {"evaluations": budget.evaluations, "hours": budget.hours},
        "complete": sum(t.state == "COMPLETE" and not t.reused_from for t in trials),
        "failed": sum(t.state == "FAIL" for t in trials),
        "pruned": sum(t.state == "PRUNED" for t in trials),
        "running": sum(t.state == "RUNNING" for t in trials),
        "reused": sum(bool(t.reused_from) for t in trials),
        "trials": len(trials),
        "elapsed_s": elapsed,
        "evaluations_per_hour": 3600.0 * len(evaluated) / elapsed if elapsed > 0 else None,
        "best": best,
    }
