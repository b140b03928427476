"""What a campaign folder holds so far, read from its study (``evomerge status DIR``).

>>> # summary = campaign_status(open_folder("runs/toy")); summary["best"]["uid"]
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from evomerge.campaign.choice import best_trials
from evomerge.campaign.folder import CampaignFolder
from evomerge.campaign.study import TrialRecord

#: failures listed in full by ``status`` (the rest are counted)
SHOWN_FAILURES = 5


def campaign_status(folder: CampaignFolder) -> dict[str, Any]:
    """Counts by state, evaluations against the budget, the best trial, speed, the time
    each worker spent merging, evaluating and idle, failures, report-task scores."""
    record = folder.open_record()
    trials = record.trials()
    objectives = folder.campaign.objectives
    name, direction = objectives.names[0], objectives.directions[0]
    evaluated = [t for t in trials if t.done and not t.reused_from]
    ranked = best_trials(trials, objectives, folder.campaign.config.report.best)
    elapsed = float(record.user_attrs.get("elapsed_s", 0.0))
    budget = folder.campaign.config.budget
    failed = [t for t in trials if t.state == "FAIL"]
    return {
        "name": folder.campaign.config.name,
        "folder": str(folder.out),
        "storage": folder.url,
        "objective": {"name": name, "direction": direction},
        "evaluations": len(evaluated),
        "budget": {"evaluations": budget.evaluations, "hours": budget.hours,
                   "documents": budget.documents},
        "complete": sum(t.state == "COMPLETE" and not t.reused_from for t in trials),
        "failed": len(failed),
        "pruned": sum(t.state == "PRUNED" for t in trials),
        "running": sum(t.state == "RUNNING" for t in trials),
        "reused": sum(bool(t.reused_from) for t in trials),
        "trials": len(trials),
        "elapsed_s": elapsed,
        "evaluations_per_hour": 3600.0 * len(evaluated) / elapsed if elapsed > 0 else None,
        "best": _summary(ranked[0]) if ranked else None,
        "chosen": [_summary(t) for t in ranked],
        "workers": worker_time(evaluated),
        "failures": [{"trial": t.number, "uid": t.candidate.uid, "worker": t.worker,
                      "error": _last_line(t.fitness.error if t.fitness else None)}
                     for t in failed[-SHOWN_FAILURES:]],
    }


def _summary(trial: TrialRecord) -> dict[str, Any]:
    return {"trial": trial.number, "uid": trial.candidate.uid,
            "recipe_hash": trial.recipe_hash, "objectives": trial.fitness.objectives,
            "worker": trial.worker,
            "report": trial.report["objectives"] if trial.report else None}


def worker_time(trials: list[TrialRecord]) -> dict[str, dict[str, float]]:
    """Per worker: candidates, seconds merging and evaluating, idle seconds between
    becoming ready and its last result, and the busy fraction of that span."""
    by_worker: dict[str, list[dict[str, float]]] = defaultdict(list)
    for t in trials:
        if t.fitness is not None and t.worker and "began" in t.fitness.timings:
            by_worker[t.worker].append(t.fitness.timings)
    out = {}
    for worker, timings in sorted(by_worker.items()):
        merge = sum(x.get("merge_s", 0.0) for x in timings)
        evaluate = sum(x.get("eval_s", 0.0) for x in timings)
        # a candidate scored in fidelity levels carries its levels' wall time (busy_s)
        busy = sum(x.get("busy_s", x["ended"] - x["began"]) for x in timings)
        start = min(x.get("ready_at", x["began"]) for x in timings)
        span = max(x["ended"] for x in timings) - start
        out[worker] = {"candidates": len(timings), "load_s": timings[0].get("load_s", 0.0),
                       "merge_s": merge, "eval_s": evaluate,
                       "idle_s": max(span - busy, 0.0),
                       "busy_fraction": busy / span if span > 0 else 1.0}
    return out


def _last_line(text: str | None) -> str:
    """The line of a traceback that says what went wrong."""
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
