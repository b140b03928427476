"""Which optimizer to pick: best merge found per evaluation budget, on one campaign.

For each optimizer and seed, the campaign ``--campaign`` runs once with the largest
budget (in process, one worker, one torch thread); a smaller budget's result is the
first N candidates of that run (every optimizer here asks the same first candidates
whatever its budget). Per optimizer and budget, over the seeds:

* the best search-split score among the first N candidates;
* that candidate's score on the campaign's report tasks (the test split: scored only for
  the candidates the search split chose, never used to choose);
* the evaluations each run needed to reach 95% of the best search score any run found
  (runs that never reach it count as not reached).

Optimizers that do not fit the campaign (M2N2 needs a coefficient space, MAP several
objectives) are listed with the reason instead of a row. ``--fidelity LEVELS`` adds, for
the optimizers given with ``--fidelity-optimizers``, runs with those fidelity levels and
a documents budget equal to the full runs' (search documents scored, every level
counted), so that both compare at equal evaluation time.

Target: the default optimizer reaches, in half the evaluations, the score optuna's
CMA-ES (as Akiba et al. ran it) reaches with the full budget.

Run from the repository root::

    python benchmarks/optimizer_efficiency.py --campaign CAMPAIGN.yaml
    python benchmarks/optimizer_efficiency.py --campaign CAMPAIGN.yaml --budgets 25,50 \\
        --seeds 2 --optimizers cma,random --fidelity 0.1,0.3,1.0

To share the runs between processes (one per core or machine), give each its optimizers
and ``--save PART.json``, then print the one table from all parts with
``--combine PART.json ...`` (the 95% target is then the best of every part's runs).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from machine_info import machine  # benchmarks/, on the path when run as a script
from evomerge.campaign.config import campaign_from_dict
from evomerge.campaign.folder import new_folder
from evomerge.campaign.loop import CampaignLoop
from evomerge.campaign.runner import open_executor
from evomerge.config_io import read_yaml
from evomerge.errors import ConfigError
from evomerge.execute.batch import evaluate_all
from evomerge.records import Candidate, Fitness

#: label -> the campaign's ``optimizer`` section
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "cma": {"name": "cma"},  # the default: pycma, x0 = 0.5, sigma0 = 1/6
    "optuna-cmaes": {"name": "optuna", "options": {"sampler": "CmaEs"}},
    # pycma variants: a smaller population (more generations per budget), a wider start
    "cma-pop6": {"name": "cma", "options": {"popsize": 6}},
    "cma-sigma0.3": {"name": "cma", "options": {"sigma0": 0.3}},
    "cma-diagonal": {"name": "cma", "options": {"diagonal": True}},  # separable CMA-ES
    "optuna-tpe": {"name": "optuna", "options": {"sampler": "TPE"}},
    "optuna-gp": {"name": "optuna", "options": {"sampler": "GP"}},  # Bayesian optimisation
    "ngopt": {"name": "nevergrad", "options": {"optimizer": "NGOpt"}},  # + the budget
    # nevergrad's CMA-ES that proposes the optimum of a quadratic fit to its best points,
    # once it holds n(n-1)/2 + 2n + 1 of them (325 for 24 genes: later than 200 here)
    "ng-metamodel": {"name": "nevergrad", "options": {"optimizer": "MetaModel"}},
    "ng-oneplusone": {"name": "nevergrad", "options": {"optimizer": "OnePlusOne"}},
    "m2n2": {"name": "m2n2"},
    "map": {"name": "map"},
    "random": {"name": "random"},
}
DEFAULT, PAPER = "cma", "optuna-cmaes"
VERSIONS = ("lm_eval", "optuna", "cma", "nevergrad")
REACH = 0.95


def one_worker_copy(base: dict, file: Path, label: str, optimizer: dict, seed: int) -> dict:
    """The campaign ``base`` (read from ``file``) with ``optimizer`` and ``seed``, one
    local CPU worker, its space path made absolute, named after ``label`` and the seed."""
    data = {**base, "name": f"{base['name']}-{label}-{seed}", "seed": seed,
            "optimizer": optimizer,
            "executor": {"kind": "local", "workers": 1, "device": "cpu"}}
    if isinstance(data["space"], str):  # relative to the campaign file
        data["space"] = str((file.parent / data["space"]).resolve())
    return data


def campaign_parser(work: str) -> argparse.ArgumentParser:
    """The options every campaign benchmark here takes (its docstring's first line
    describes it)."""
    main_doc = sys.modules["__main__"].__doc__ or ""
    parser = argparse.ArgumentParser(description=main_doc.split("\n\n")[0])
    parser.add_argument("--campaign", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path(work))
    return parser


def campaign_for(base: dict, file: Path, optimizer: str, seed: int, budget: dict,
                 fidelity: list[float] | None) -> dict:
    data = {**one_worker_copy(base, file, optimizer, OPTIMIZERS[optimizer], seed),
            "budget": budget}
    if optimizer == "ngopt":  # NGOpt picks its method from the budget
        data["optimizer"] = {**data["optimizer"], "options": {
            **data["optimizer"]["options"], "budget": budget.get("evaluations", 200)}}
    data["evaluation"] = {**base["evaluation"]}
    if fidelity is not None:
        data["evaluation"]["fidelity"] = {"levels": fidelity}
    return data


def fresh_run(work: Path, data: dict):
    """Run campaign ``data`` in a new folder under ``work``; returns the folder, its
    executor (still open, to score the chosen candidates on other splits), the loop's
    final status and the run's wall time. The caller closes the executor."""
    out = work / data["name"]
    shutil.rmtree(out, ignore_errors=True)
    folder = new_folder(out, campaign_from_dict(data), storage=None)
    executor = open_executor(folder)
    start = time.perf_counter()
    status = CampaignLoop(folder, executor, close_executor=False).run()
    return folder, executor, status, time.perf_counter() - start


def fitness_at(executor, campaign, points: dict[str, list[float]], split: str
               ) -> dict[str, Fitness]:
    """Each point (by key) decoded by ``campaign``'s space and scored on ``split``."""
    recipes = {key: campaign.decode(Candidate(x=list(x))).recipe.to_dict()
               for key, x in points.items()}
    return evaluate_all(executor, recipes, split)


def one_run(work: Path, data: dict, budgets: list[int]) -> dict:
    """Run one campaign; per budget, the best search score in the first N candidates
    and the test score of that candidate."""
    folder, executor, status, wall = fresh_run(work, data)
    objective = folder.campaign.objectives.names[0]
    sign = 1.0 if folder.campaign.objectives.directions[0] == "maximize" else -1.0
    trials = [t for t in folder.open_record().trials()
              if t.done and not t.reused_from]
    curve, best = [], None  # best-so-far (search score, trial) after each candidate
    for t in trials:
        if t.state == "COMPLETE" and (best is None or sign * t.fitness.objectives[objective]
                                      > sign * best.fitness.objectives[objective]):
            best = t
        curve.append(best)
    chosen = {n: curve[min(n, len(curve)) - 1] for n in budgets if curve}
    recipes = {t.candidate.uid: folder.trial_recipe(t).to_dict()
               for t in chosen.values() if t is not None}
    test = evaluate_all(executor, recipes, "report")
    executor.close()
    shutil.rmtree(folder.out, ignore_errors=True)

    def at(n: int, what: str) -> float:
        t = chosen.get(n)
        if t is None:
            return math.nan
        fit = t.fitness if what == "search" else test[t.candidate.uid]
        return fit.objectives[objective] if fit.is_ok else math.nan

    return {"search": {n: at(n, "search") for n in budgets},
            "test": {n: at(n, "test") for n in budgets},
            "curve": [math.nan if t is None else t.fitness.objectives[objective]
                      for t in curve],
            "documents": status.documents, "candidates": status.evaluations,
            "wall_s": wall, "sign": sign}


def evaluations_to_reach(curve: list[float], target: float, sign: float) -> int | None:
    for i, value in enumerate(curve, 1):
        if not math.isnan(value) and sign * value >= sign * target:
            return i
    return None


def mean_spread(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main() -> None:
    torch.set_num_threads(1)  # on a shared machine, 2-thread ops wait for each other
    parser = campaign_parser("runs/bench_optimizers")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument("--budgets", default="25,50,100,200")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="run seeds FIRST .. FIRST + SEEDS - 1 (to add seeds to saved parts)")
    parser.add_argument("--fidelity", default=None, help="levels, e.g. 0.1,0.3,1.0")
    parser.add_argument("--fidelity-optimizers", default=f"{DEFAULT},{PAPER}")
    parser.add_argument("--save", type=Path, help="also write the runs to this JSON file")
    parser.add_argument("--combine", type=Path, nargs="+",
                        help="run nothing: print the table of these --save files")
    args = parser.parse_args()
    budgets = sorted(int(b) for b in args.budgets.split(","))
    if args.combine:
        runs, skipped, started = load_parts(args.combine)
        report(args, budgets, runs, skipped, started)
        return
    base = read_yaml(args.campaign)
    runs: dict[tuple[str, str], list[dict]] = {}
    skipped: dict[str, str] = {}
    print(f"machine: {machine('cpu', VERSIONS)}", flush=True)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    modes = [("full", None)]
    if args.fidelity:
        modes.append(("fidelity", [float(v) for v in args.fidelity.split(",")]))
    for optimizer in args.optimizers.split(","):
        for mode, levels in modes:
            if mode == "fidelity" and optimizer not in args.fidelity_optimizers.split(","):
                continue
            for index, seed in enumerate(range(args.first_seed, args.first_seed + args.seeds)):
                budget = {"evaluations": budgets[-1]}
                if mode == "fidelity":  # the same documents as the full run of this seed
                    budget = {"documents": runs[(optimizer, "full")][index]["documents"]}
                try:
                    data = campaign_for(base, args.campaign, optimizer, seed, budget, levels)
                    result = one_run(args.work, data, budgets)
                except ConfigError as exc:  # the optimizer does not fit the campaign
                    skipped[optimizer] = exc.rule
                    break
                except Exception as exc:  # noqa: BLE001 - one optimizer's crash is a row
                    skipped[optimizer] = f"failed: {type(exc).__name__}: {exc}"[:200]
                    break
                runs.setdefault((optimizer, mode), []).append({**result, "seed": seed})
                print(f"{optimizer} {mode} seed {seed}: search "
                      f"{result['search']} test {result['test']} "
                      f"({result['candidates']} candidates, {result['wall_s']:.0f} s)",
                      file=sys.stderr, flush=True)
    if args.save:
        save_part(args.save, runs, skipped, started)
    report(args, budgets, runs, skipped, started)


def save_part(path: Path, runs: dict, skipped: dict, started: str) -> None:
    rows = [{"optimizer": o, "mode": m, "runs": rs} for (o, m), rs in runs.items()]
    path.write_text(json.dumps({"started": started, "runs": rows, "skipped": skipped}))


def load_parts(paths: list[Path]) -> tuple[dict, dict, str]:
    """The runs, skipped optimizers and earliest start of several ``--save`` files."""
    runs: dict[tuple[str, str], list[dict]] = {}
    skipped: dict[str, str] = {}
    starts = []
    for path in paths:
        part = json.loads(path.read_text())
        starts.append(part["started"])
        skipped.update(part["skipped"])
        for row in part["runs"]:
            for r in row["runs"]:  # JSON keys are strings; the budgets are ints
                r["search"] = {int(n): v for n, v in r["search"].items()}
                r["test"] = {int(n): v for n, v in r["test"].items()}
            joined = runs.setdefault((row["optimizer"], row["mode"]), [])
            seeds = {r.get("seed") for r in joined} - {None}
            again = seeds & {r.get("seed") for r in row["runs"]}
            if again:  # a seed run twice would count twice in the means
                raise SystemExit(f"{path}: {row['optimizer']} ({row['mode']}) seed(s) "
                                 f"{sorted(again)} are already in an earlier part")
            joined.extend(row["runs"])
    return runs, skipped, min(starts)


def report(args, budgets: list[int], runs: dict, skipped: dict, started: str) -> None:
    every = [r for rs in runs.values() for r in rs]
    sign = every[0]["sign"] if every else 1.0
    best_found = max((sign * v for r in every for v in r["curve"] if not math.isnan(v)),
                     default=math.nan) * sign
    target = best_found * REACH if sign > 0 else best_found / REACH
    if args.combine:
        command = f"--combine {' '.join(map(str, args.combine))}"
    else:
        command = (f"--budgets {args.budgets} --seeds {args.seeds}"
                   + (f" --first-seed {args.first_seed}" if args.first_seed else "")
                   + (f" --fidelity {args.fidelity}" if args.fidelity else ""))
    print(f"\n`python benchmarks/optimizer_efficiency.py --campaign {args.campaign} "
          f"{command}` (from {started}); best search score any run found: "
          f"{best_found:.4f}; 95% of it: {target:.4f}\n")
    print("| optimizer | mode | runs | budget | best search | its test | evaluations to "
          "95% (runs that reached it) |")
    print("|---|---|---|---|---|---|---|")
    for (optimizer, mode), rs in runs.items():
        reached = [evaluations_to_reach(r["curve"], target, sign) for r in rs]
        hit = [n for n in reached if n is not None]
        to_reach = (f"{statistics.mean(hit):.0f} ({len(hit)}/{len(rs)})" if hit
                    else f"not reached (0/{len(rs)})")
        for n in budgets:
            print(f"| {optimizer} | {mode} | {len(rs)} | {n} | "
                  f"{mean_spread([r['search'][n] for r in rs])} | "
                  f"{mean_spread([r['test'][n] for r in rs])} | {to_reach} |")
    for optimizer, why in skipped.items():
        print(f"| {optimizer} | n/a | | | | | does not apply: {why} |")
    if (DEFAULT, "full") in runs and (PAPER, "full") in runs:
        half, full = budgets[-1] // 2, budgets[-1]
        ours = [r["search"].get(half, math.nan) for r in runs[(DEFAULT, "full")]]
        if half not in budgets:
            ours = [r["curve"][min(half, len(r["curve"])) - 1] for r in runs[(DEFAULT, "full")]]
        theirs = [r["search"][full] for r in runs[(PAPER, "full")]]
        print(f"\nTarget: {DEFAULT} at {half} evaluations {mean_spread(ours)} against "
              f"{PAPER} at {full}: {mean_spread(theirs)} (search split, mean over seeds); "
              f"difference {difference_interval(ours, theirs)}")


def difference_interval(a: list[float], b: list[float]) -> str:
    """``mean(a) - mean(b)`` with Welch's 95% interval (the runs are independent).

    >>> difference_interval([0.70, 0.72, 0.71], [0.73, 0.74, 0.72])
    '-0.0200 [-0.0427, +0.0027] (Welch, 3 and 3 runs)'
    """
    from scipy import stats

    a, b = [v for v in a if not math.isnan(v)], [v for v in b if not math.isnan(v)]
    if len(a) < 2 or len(b) < 2:
        return "n/a (fewer than 2 runs)"
    result = stats.ttest_ind(a, b, equal_var=False)
    low, high = result.confidence_interval(0.95)
    diff = statistics.mean(a) - statistics.mean(b)
    return f"{diff:+.4f} [{low:+.4f}, {high:+.4f}] (Welch, {len(a)} and {len(b)} runs)"


if __name__ == "__main__":
    main()
