"""``evomerge demo``: a whole campaign on the toy zoo, on Ray workers, in a few minutes.

It builds the default zoo (or reuses a built one), searches per-expert task-arithmetic
weights for the average over the four skills with the default optimizer on the Ray
executor, and prints the best merge it found against the base, every expert and the best
merge of a uniform grid (one weight for every expert). Every choice is made on the search
split; the test split scores only the models chosen there (and the sources, for
reference). Results are kept in the campaign's study, so running the demo again on the
same folder continues it (or only prints it, once finished).

>>> # evomerge demo --out runs/demo
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from evomerge.campaign.choice import best_trials
from evomerge.campaign.cli import live_progress
from evomerge.campaign.config import campaign_from_dict
from evomerge.campaign.folder import (
    CAMPAIGN_FILE,
    CampaignFolder,
    new_folder,
    open_folder,
)
from evomerge.campaign.loop import CampaignLoop
from evomerge.campaign.runner import open_executor
from evomerge.campaign.study import StudyRecord
from evomerge.execute.base import Executor
from evomerge.execute.batch import evaluate_all
from evomerge.records import Fitness
from evomerge.zoo.build import Zoo, build_zoo
from evomerge.zoo.landscape import task_arithmetic_recipe

#: candidates the search evaluates
BUDGET = 48
#: documents per skill on the search split (the test split is scored whole)
SEARCH_LIMIT = 50
#: the uniform grid the search is compared with: the same weight for every expert
GRID_LEVELS = (0.2, 0.4, 0.6, 0.8, 1.0)
SEARCH_TASK, TEST_TASK = "zoo_mc_search", "zoo_mc_test"
#: study attribute prefix of the demo's reference scores (base, experts, grid)
REFERENCE_PREFIX = "reference:"

SPACE = {  # one weight per expert on [0, 1], as search_spaces/task_arithmetic.yaml
    "format": "evomerge/space-v1", "name": "task_arithmetic",
    "merge_method": "task_arithmetic",
    "models": {"base": "base", "sources": {"min": 1}},
    "genes": [{"param": "weight", "per": ["model"], "bounds": [0.0, 1.0]}],
}


def demo_campaign(zoo: Zoo, workers: int, budget: int = BUDGET) -> dict[str, Any]:
    """The demo's campaign over ``zoo``: all four experts, the skill average."""
    return {
        "format": "evomerge/campaign-v1",
        "name": "demo-zoo-task-arithmetic",
        "models": {"base": str(zoo.base), "sources": [str(p) for p in zoo.experts.values()]},
        "space": SPACE,
        "evaluation": {"lm_eval": {
            "include_paths": [str(zoo.task_dir)],
            "search_tasks": [{"name": SEARCH_TASK, "limit": SEARCH_LIMIT}],
            "report_tasks": [{"name": TEST_TASK}]}},
        "budget": {"evaluations": budget},
        "executor": {"kind": "ray", "workers": workers, "device": "auto"},
        "report": {"best": 1},
        "seed": 0,
    }


def run_demo(out: Path, zoo_dir: Path, workers: int | None = None,
             budget: int = BUDGET, quiet: bool = False) -> dict[str, dict[str, float | None]]:
    """Run (or continue) the demo in ``out``; returns the table it prints."""
    from evomerge.zoo.cli import _progress

    with _progress() as report:
        zoo = build_zoo(zoo_dir, progress=report)
    workers = workers or max(1, min(2, os.cpu_count() or 1))
    if (out / CAMPAIGN_FILE).exists():
        folder = open_folder(out)
    else:
        folder = new_folder(out, campaign_from_dict(demo_campaign(zoo, workers, budget)),
                            storage=None)
    executor = open_executor(folder)
    try:
        with live_progress(quiet) as progress:
            status = CampaignLoop(folder, executor, progress, close_executor=False).run(
                resume=True)
        if status.stopped == "interrupted":
            raise KeyboardInterrupt
        record = folder.open_record()
        references = _score_references(record, executor, zoo)
    finally:
        executor.close()
    return _table(folder, record, references)


def _score_references(record: StudyRecord, executor: Executor,
                      zoo: Zoo) -> dict[str, dict[str, Any]]:
    """Base, experts and the uniform grid on the search split; the best grid merge (by
    the search split) and the sources on the test split. Kept in the study."""
    known = {k[len(REFERENCE_PREFIX):]: v for k, v in record.user_attrs.items()
             if k.startswith(REFERENCE_PREFIX)}
    recipes = {"base": _source(zoo.base)}
    recipes |= {f"expert {skill}": _source(path) for skill, path in zoo.experts.items()}
    recipes |= {f"grid {level:g}": task_arithmetic_recipe(
        zoo, dict.fromkeys(zoo.experts, level)).to_dict() for level in GRID_LEVELS}

    def keep(split: str):
        def save(name: str, fitness: Fitness) -> None:
            entry = known.setdefault(name, {})
            entry[split] = fitness.objectives.get("score") if fitness.is_ok else None
            record.set_attr(REFERENCE_PREFIX + name, entry)
        return save

    todo = {n: r for n, r in recipes.items() if "search" not in known.get(n, {})}
    evaluate_all(executor, todo, "search", keep("search"))
    grid = [n for n in recipes if n.startswith("grid")]
    best_grid = max(grid, key=lambda n: (known[n]["search"] or 0.0, -grid.index(n)))
    chosen = [n for n in recipes if not n.startswith("grid")] + [best_grid]
    evaluate_all(executor, {n: recipes[n] for n in chosen if "test" not in known[n]},
                 "report", keep("test"))
    return {n: known[n] for n in chosen}


def _source(path: Path) -> dict[str, Any]:
    """A recipe that is exactly one model (a linear merge of it alone)."""
    return {"merge_method": "linear",
            "models": [{"model": str(path), "parameters": {"weight": 1.0}}]}


def _table(folder: CampaignFolder, record: StudyRecord,
           references: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Rows of the printed table: the references, then the search's best."""
    rows: dict[str, dict[str, float | None]] = {}
    for name, scores in references.items():
        label = f"best uniform grid merge ({name.split()[1]} per expert)" \
            if name.startswith("grid") else name
        rows[label] = {"search": scores.get("search"), "test": scores.get("test")}
    ranked = best_trials(record.trials(), folder.campaign.objectives, 1)
    if ranked:
        best = ranked[0]
        weights = ", ".join(f"{float(w):.2f}" for w in best.candidate.x)
        rows[f"best searched merge (weights {weights})"] = {
            "search": best.fitness.objectives["score"],
            "test": (best.report or {}).get("objectives", {}).get("score")}
    return rows


def print_table(rows: dict[str, dict[str, float | None]], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="skill-average accuracy (lm-eval acc, zoo_mc_*)")
    table.add_column("model")
    table.add_column(f"search split ({SEARCH_LIMIT}/skill)", justify="right")
    table.add_column("test split (200/skill)", justify="right")
    for label, scores in rows.items():
        table.add_row(label, *("-" if scores[s] is None else f"{scores[s]:.4f}"
                               for s in ("search", "test")))
    Console().print(table)
    click.echo(f"campaign folder: {out}  (evomerge status {out})")


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/demo"), show_default=True, help="campaign folder")
@click.option("--zoo", "zoo_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/zoo"), show_default=True,
              help="the zoo to use (built there when missing)")
@click.option("--workers", type=int, default=None,
              help="Ray workers (default: 2, or 1 on a one-core machine)")
@click.option("--quiet", is_flag=True, help="no live progress")
def demo_cmd(out: Path, zoo_dir: Path, workers: int | None, quiet: bool) -> None:
    """Search merges of the toy zoo on Ray workers and compare with the sources and a grid."""
    rows = run_demo(out, zoo_dir, workers, quiet=quiet)
    print_table(rows, out)
