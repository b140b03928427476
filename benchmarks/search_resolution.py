"""How finely a campaign's search split tells merges apart: scores of small random steps
around the best merge a search found.

The campaign runs once with its optimizer and seed (one local worker) for ``--budget``
evaluations. Around its best candidate (search split), ``--neighbours`` points are drawn
at each of ``--scales`` (a Gaussian step of that standard deviation in the unit box,
clipped) and scored on the search split and on the report split (the test split: here
only to see whether the centre's lead over its neighbours carries over). Per scale the
table gives the neighbours' mean, standard deviation and maximum on both splits, and the
share of neighbours that score at least as well as the centre on the search split.

What it is for: the best search score of a run is a maximum over candidates. Where one
step of 1% of the box changes the score by more than the difference between two
optimizers, that difference is partly the luck of which points a run happened to
evaluate (the winner's curse), and the test column says how much of the centre's lead
is real.

Run from the repository root::

    python benchmarks/search_resolution.py --campaign experiments/evo_param/toy_cma.yaml
"""

from __future__ import annotations

import shutil
import statistics
import time
from datetime import datetime, timezone

import numpy as np
import torch

from machine_info import machine  # benchmarks/, on the path when run as a script
from optimizer_efficiency import campaign_parser, fitness_at, fresh_run, one_worker_copy
from evomerge.campaign.config import campaign_from_dict
from evomerge.config_io import read_yaml


def scores(executor, campaign, points: dict[str, list[float]], split: str,
           objective: str) -> dict[str, float]:
    """The objective of each point (by key) on ``split``; a failed evaluation is NaN."""
    out = fitness_at(executor, campaign, points, split)
    return {key: (fit.objectives[objective] if fit.is_ok else float("nan"))
            for key, fit in out.items()}


def spread(values: list[float]) -> str:
    return (f"{statistics.mean(values):.4f} | {statistics.stdev(values):.4f} | "
            f"{max(values):.4f}")


def main() -> None:
    torch.set_num_threads(1)
    parser = campaign_parser("runs/bench_resolution")
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--neighbours", type=int, default=20)
    parser.add_argument("--scales", default="0.01,0.03,0.1")
    args = parser.parse_args()
    if args.neighbours < 2:
        parser.error("--neighbours must be at least 2 (a spread needs two values)")
    scales = [float(s) for s in args.scales.split(",")]
    base = read_yaml(args.campaign)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"machine: {machine('cpu', ('lm_eval', 'cma', 'optuna'))}", flush=True)
    data = {**one_worker_copy(base, args.campaign, "resolution", base["optimizer"],
                              base.get("seed", 0)),
            "budget": {"evaluations": args.budget}}
    if campaign_from_dict(data).objectives.directions[0] != "maximize":
        raise SystemExit(f"{args.campaign}: this benchmark reads a maximised objective")
    start = time.perf_counter()
    folder, executor, _, _ = fresh_run(args.work, data)
    objective = folder.campaign.objectives.names[0]
    done = [t for t in folder.open_record().trials()
            if t.state == "COMPLETE" and t.candidate.x is not None]
    centre = max(done, key=lambda t: t.fitness.objectives[objective])
    rng = np.random.default_rng(base.get("seed", 0))
    x0 = np.asarray(centre.candidate.x)
    points = {"centre": list(x0)}
    for s in scales:
        for k in range(args.neighbours):
            step = x0 + s * rng.standard_normal(x0.shape)
            points[f"{s}/{k}"] = [float(v) for v in np.clip(step, 0.0, 1.0)]
    search = scores(executor, folder.campaign, points, "search", objective)
    test = scores(executor, folder.campaign, points, "report", objective)
    executor.close()
    shutil.rmtree(folder.out, ignore_errors=True)
    wall = time.perf_counter() - start

    recorded = centre.fitness.objectives[objective]
    print(f"\n`python benchmarks/search_resolution.py --campaign {args.campaign} "
          f"--budget {args.budget} --neighbours {args.neighbours} --scales {args.scales}` "
          f"(from {started}, {wall:.0f} s): the best of {len(done)} candidates of "
          f"optimizer {base['optimizer']['name']!r} (seed {base.get('seed', 0)}) scores "
          f"{recorded:.4f} on the search split (scored again: {search['centre']:.4f}) and "
          f"{test['centre']:.4f} on the test split.\n")
    print("| step sd (box units) | search: mean | sd | max | share >= centre "
          "| test: mean | sd | max |")
    print("|---|---|---|---|---|---|---|---|")
    for s in scales:
        keys = [f"{s}/{k}" for k in range(args.neighbours)]
        near = [search[k] for k in keys]
        share = sum(v >= search["centre"] for v in near) / len(near)
        print(f"| {s:g} | {spread(near)} | {share:.0%} | {spread([test[k] for k in keys])} |")


if __name__ == "__main__":
    main()
