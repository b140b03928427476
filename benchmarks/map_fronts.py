"""MAP's Pareto fronts against the brute-force grid front, on one multi-objective campaign.

The campaign ``--campaign`` (task arithmetic over T experts, one objective per task, as
in ``experiments/map_pareto/``) is run with each MAP variant and ``--seeds`` seeds, in
process with one worker and one torch thread, at the campaign's own budget:

* ``plain``: MAP without its Bayesian rounds (``bayes_rounds: 0``): plan, then the
  surrogates' predicted front;
* ``bayes``: Bayesian MAP (``map`` with its default ``bayes_rounds: 2``): between the
  fronts, points where the surrogates' leave-one-out error is largest;
* ``nested``: Nested MAP (``nested_map``: 2-D MAPs up a binary tree of task vectors).

The reference is a grid over the same box, every point evaluated (``--grid-step``: 0.1
gives 11^T points). A run's front is the non-dominated set of the points it evaluated
on the search split; the same points are then scored on the test split (the report
tasks), where the grid is scored too, so each front is also compared on documents no
choice was made on. Per variant, mean ± standard deviation over seeds: hypervolume
(reference point: every objective 0), IGD to the grid's front, and win rate (the share
of the grid front's points that some point of the run's front matches or dominates).

Run from the repository root (the zoo built first, see the campaign file)::

    python benchmarks/map_fronts.py --campaign experiments/map_pareto/toy_2tasks.yaml
    python benchmarks/map_fronts.py --campaign experiments/map_pareto/toy_3tasks.yaml \\
        --grid-step 0.2
"""

from __future__ import annotations

import itertools
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from machine_info import machine  # benchmarks/, on the path when run as a script
from optimizer_efficiency import (  # benchmarks/ too
    campaign_parser,
    fitness_at,
    fresh_run,
    mean_spread,
    one_worker_copy,
)
from evomerge.campaign.config import campaign_from_dict
from evomerge.campaign.folder import new_folder
from evomerge.campaign.runner import open_executor
from evomerge.config_io import read_yaml
from evomerge.optim.pareto_metrics import hypervolume, igd, win_rate
from evomerge.pareto import non_dominated_mask

#: label -> the campaign's ``optimizer`` section
VARIANTS = {
    "plain": {"name": "map", "options": {"bayes_rounds": 0}},
    "bayes": {"name": "map"},
    "nested": {"name": "nested_map"},
}
VERSIONS = ("lm_eval", "optuna")


def on_report(data: dict, objective: str) -> str:
    """The report split's name of a search objective ``task/metric``: the report task
    listed at the search task's position."""
    lm_eval = data["evaluation"]["lm_eval"]
    task, metric = objective.split("/", 1)
    pairs = {s["name"]: r["name"] for s, r in zip(lm_eval["search_tasks"],
                                                   lm_eval["report_tasks"])}
    return f"{pairs[task]}/{metric}"


def scored(executor, campaign, objectives: list[str], points: list[list[float]],
           split: str) -> np.ndarray:
    """The objective vectors of ``points`` (decoded by the campaign's space) on
    ``split``, in the order of the search ``objectives``; a failed evaluation is a row
    of NaN."""
    fits = fitness_at(executor, campaign, {str(i): x for i, x in enumerate(points)}, split)
    if split == "report":
        objectives = [on_report(campaign.config.model_dump(), o) for o in objectives]
    return np.array([[fits[str(i)].objectives[o] if fits[str(i)].is_ok else np.nan
                      for o in objectives] for i in range(len(points))])


def run_variant(work: Path, data: dict) -> tuple[np.ndarray, np.ndarray]:
    """One campaign run: the search scores of the points it evaluated, and the test
    scores of those on its front (NaN for the others)."""
    folder, executor, _, _ = fresh_run(work, data)
    names = list(folder.campaign.objectives.names)
    trials = [t for t in folder.open_record().trials()
              if t.done and t.state == "COMPLETE" and t.candidate.x is not None]
    points = [list(t.candidate.x) for t in trials]
    search = np.array([[t.fitness.objectives[o] for o in names] for t in trials])
    front = non_dominated_mask(search, ["maximize"] * len(names))
    test = np.full_like(search, np.nan)
    test[front] = scored(executor, folder.campaign, names,
                         [p for p, on in zip(points, front) if on], "report")
    executor.close()
    shutil.rmtree(folder.out, ignore_errors=True)
    return search, test


def front_of(values: np.ndarray) -> np.ndarray:
    values = values[~np.isnan(values).any(axis=1)]
    return values[non_dominated_mask(values, ["maximize"] * values.shape[1])]


def metrics(found: np.ndarray, grid_front: np.ndarray) -> dict[str, float]:
    m = found.shape[1]
    front = front_of(found)
    up = ["maximize"] * m
    return {"hv": hypervolume(front, [0.0] * m, up), "igd": igd(front, grid_front, up),
            "win": win_rate(front, grid_front, up), "size": float(len(front))}


def main() -> None:
    torch.set_num_threads(1)  # on a shared machine, 2-thread ops wait for each other
    parser = campaign_parser("runs/bench_map")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--grid-step", type=float, default=0.1)
    args = parser.parse_args()
    base = read_yaml(args.campaign)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"machine: {machine('cpu', VERSIONS)}", flush=True)

    grid_data = one_worker_copy(base, args.campaign, "grid", VARIANTS["plain"], 0)
    shutil.rmtree(args.work / grid_data["name"], ignore_errors=True)
    folder = new_folder(args.work / grid_data["name"], campaign_from_dict(grid_data),
                        storage=None)
    names = list(folder.campaign.objectives.names)
    levels = np.round(np.arange(0.0, 1.0 + 1e-9, args.grid_step), 6).tolist()
    grid = [list(p) for p in itertools.product(levels, repeat=len(names))]
    executor = open_executor(folder)
    grid_values = {split: scored(executor, folder.campaign, names, grid, split)
                   for split in ("search", "report")}
    executor.close()
    shutil.rmtree(folder.out, ignore_errors=True)
    grid_fronts = {split: front_of(v) for split, v in grid_values.items()}
    print(f"grid: {len(grid)} points, front of {len(grid_fronts['search'])} on the search "
          f"split and {len(grid_fronts['report'])} on the test split", file=sys.stderr,
          flush=True)

    rows = {}
    for variant in args.variants.split(","):
        runs = []
        for seed in range(args.seeds):
            data = one_worker_copy(base, args.campaign, variant, VARIANTS[variant], seed)
            search, test = run_variant(args.work, data)
            runs.append({"evaluations": len(search),
                         "search": metrics(search, grid_fronts["search"]),
                         "test": metrics(test, grid_fronts["report"])})
            print(f"{variant} seed {seed}: {runs[-1]}", file=sys.stderr, flush=True)
        rows[variant] = runs
    report(args, len(grid), names, grid_fronts, rows, started)


def report(args, n_grid: int, names: list[str], grid_fronts: dict, rows: dict,
           started: str) -> None:
    m = len(names)
    print(f"\n`python benchmarks/map_fronts.py --campaign {args.campaign} --seeds "
          f"{args.seeds} --grid-step {args.grid_step}` (from {started}); objectives: "
          f"{', '.join(names)}; grid: {n_grid} points\n")
    print("| front | split | evaluations | points on front | hypervolume | IGD to grid "
          "front | win rate vs grid front |")
    print("|---|---|---|---|---|---|---|")
    for split, label in (("search", "search"), ("report", "test")):
        g = grid_fronts[split]
        print(f"| grid | {label} | {n_grid} | {len(g)} | "
              f"{hypervolume(g, [0.0] * m, ['maximize'] * m):.4f} | 0 | 1 |")
        for variant, runs in rows.items():
            key = "search" if split == "search" else "test"
            cells = [mean_spread([r[key][k] for r in runs]) for k in ("hv", "igd", "win")]
            counts = [f"{np.mean([r[k] for r in runs]):.1f}" for k in ("evaluations",)]
            counts.append(f"{np.mean([r[key]['size'] for r in runs]):.1f}")
            print(f"| {variant} (mean of {len(runs)}) | {label} | " + " | ".join(counts + cells)
                  + " |")


if __name__ == "__main__":
    main()
