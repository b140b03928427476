"""Multi-fidelity against full scoring at equal evaluation time: does a campaign that
stops weak candidates early find as good a merge with a third of the documents?

The campaign is the demo's (:func:`evomerge.zoo.demo.demo_campaign`: four task-arithmetic
weights over the default zoo, ``zoo_mc_search`` with ``--limit`` documents per skill),
run in process (one worker) for each optimizer, seed and mode:

* ``full``: every candidate on every search document, ``--candidates`` of them;
* ``fidelity``: levels ``--levels`` with the rule ``--rule``, until the documents it
  scored reach the ``full`` run's (``budget.documents``), and again until a third of them.

Per run: candidates scored, documents scored, wall seconds, the best search-split score
and the test-split score (``zoo_mc_test``, every document) of the candidate the search
split chose. Per optimizer and mode, the mean and spread over seeds, then the targets:
``fidelity`` at a third of the documents against ``full``.

Run from the repository root (the default zoo: ``evomerge zoo build runs/zoo``)::

    python benchmarks/fidelity_efficiency.py                   # cma and optuna's CMA-ES, 5 seeds
    python benchmarks/fidelity_efficiency.py --seeds 2 --candidates 12
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from machine_info import machine  # benchmarks/, on the path when run as a script
from optimizer_efficiency import mean_spread
from evomerge.campaign.config import campaign_from_dict
from evomerge.campaign.folder import new_folder
from evomerge.campaign.loop import CampaignLoop
from evomerge.campaign.runner import open_executor
from evomerge.zoo.build import load_zoo
from evomerge.zoo.demo import demo_campaign

OPTIMIZERS = {"cma": {"name": "cma"},
              "optuna-cmaes": {"name": "optuna", "options": {"sampler": "CmaEs"}}}
VERSIONS = ("lm_eval", "optuna", "cma")


def campaign(zoo_dir: Path, optimizer: str, seed: int, limit: int, budget: dict,
             fidelity: dict | None) -> dict:
    data = demo_campaign(load_zoo(zoo_dir), workers=1)
    data.update(name=f"fidelity-{optimizer}-{seed}", seed=seed, budget=budget,
                optimizer=OPTIMIZERS[optimizer],
                executor={"kind": "local", "workers": 1, "device": "cpu"})
    data["evaluation"]["lm_eval"]["search_tasks"][0]["limit"] = limit
    if fidelity is not None:
        data["evaluation"]["fidelity"] = fidelity
    return data


def one_run(work: Path, data: dict) -> dict:
    out = work / data["name"]
    shutil.rmtree(out, ignore_errors=True)
    folder = new_folder(out, campaign_from_dict(data), storage=None)
    start = time.perf_counter()
    status = CampaignLoop(folder, open_executor(folder)).run()
    wall = time.perf_counter() - start
    trials = folder.open_record().trials()
    chosen = [t for t in trials if t.report is not None]
    best = max((t for t in trials if t.fitness is not None and t.fitness.is_ok),
               key=lambda t: t.fitness.objectives["score"])
    shutil.rmtree(out, ignore_errors=True)
    return {"candidates": status.evaluations, "pruned": status.pruned,
            "documents": status.documents, "wall_s": wall,
            "search": best.fitness.objectives["score"],
            "test": chosen[0].report["objectives"]["score"] if chosen else float("nan")}


def main() -> None:
    # one thread: on a shared machine, 2-thread torch ops wait for descheduled threads
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", type=Path, default=Path("runs/zoo"))
    parser.add_argument("--work", type=Path, default=Path("runs/bench_fidelity"))
    parser.add_argument("--optimizers", default="cma,optuna-cmaes")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--candidates", type=int, default=24,
                        help="candidates of a full-scoring run (sets the document budget)")
    parser.add_argument("--limit", type=int, default=50, help="search documents per skill")
    parser.add_argument("--levels", default="0.1,0.3,1.0")
    parser.add_argument("--rule", default="successive_halving")
    args = parser.parse_args()
    levels = [float(v) for v in args.levels.split(",")]
    fidelity = {"levels": levels, "rule": args.rule}
    documents = args.candidates * 4 * args.limit
    modes = {"full": ({"evaluations": args.candidates}, None),
             "fidelity, same documents": ({"documents": documents}, fidelity),
             "fidelity, 1/3 documents": ({"documents": documents // 3}, fidelity)}
    print(f"machine: {machine('cpu', VERSIONS)}", flush=True)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for optimizer in args.optimizers.split(","):
        for mode, (budget, fid) in modes.items():
            runs = []
            for seed in range(args.seeds):
                r = one_run(args.work, campaign(args.zoo, optimizer, seed, args.limit,
                                                budget, fid))
                runs.append(r)
                print(f"{optimizer} {mode} seed {seed}: {r}", file=sys.stderr, flush=True)
            rows.append((optimizer, mode, runs))
    print(f"\n`python benchmarks/fidelity_efficiency.py --seeds {args.seeds} --candidates "
          f"{args.candidates} --levels {args.levels} --rule {args.rule}` (from {started}; "
          f"{args.limit} search documents per skill, full budget {documents} documents)\n")
    print("| optimizer | mode | candidates | pruned | documents | wall s | best search "
          "| its test | test vs full |")
    print("|---|---|---|---|---|---|---|---|---|")
    full_test = {}
    for optimizer, mode, runs in rows:
        test = [r["test"] for r in runs]
        if mode == "full":
            full_test[optimizer] = statistics.mean(test)
        diff = statistics.mean(test) - full_test[optimizer]
        print(f"| {optimizer} | {mode} | {statistics.mean(r['candidates'] for r in runs):.1f} "
              f"| {statistics.mean(r['pruned'] for r in runs):.1f} "
              f"| {statistics.mean(r['documents'] for r in runs):.0f} "
              f"| {statistics.mean(r['wall_s'] for r in runs):.1f} "
              f"| {mean_spread([r['search'] for r in runs])} | {mean_spread(test)} "
              f"| {diff:+.4f} |")


if __name__ == "__main__":
    main()
