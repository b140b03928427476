"""Campaign scaling: evaluations per hour on 1 and 2 Ray workers, busy workers, a light driver.

Each run is a whole campaign as ``evomerge run ... --executor ray --workers N`` runs it
(:func:`evomerge.campaign.runner.open_executor`, then
:class:`evomerge.campaign.loop.CampaignLoop`): the demo's campaign over a built zoo
(:func:`evomerge.zoo.demo.demo_campaign`: task arithmetic, one weight per expert, the
default optimizer, the ``zoo_mc_search`` group), with ``--limit`` documents per skill
(the demo's 50 by default), ``--budget`` evaluations and no report tasks, so that every
evaluation is a search candidate. Worker counts take turns (1, 2, 1, 2, ... for ``--repeats``), so a neighbour's
load falls on both alike.

Per run:

* evaluations per hour over the loop (the workers' start-up excluded: Ray started and
  every worker loaded before the loop's clock starts), and with the start-up included;
* each worker's busy fraction as ``evomerge status`` gives it
  (:func:`evomerge.campaign.status.worker_time`: merge + evaluate over the span from the
  worker becoming ready to its last result), and over the span from its first candidate
  (the wait for the other workers to load and for the study to open left out);
* the driver's own time per evaluation (``LoopStatus.driver_s``: ask, decode, record,
  tell, save the optimizer; the wait for results is not counted) against a candidate's
  time on a worker (median of build + evaluate, as the worker clocks it).

Targets: every worker at least 95% busy; driver time under 2% of a candidate's time.

Run from the repository root (the default zoo: ``evomerge zoo build runs/zoo``)::

    python benchmarks/campaign_scaling.py                          # 1 and 2 CPU workers
    python benchmarks/campaign_scaling.py --repeats 3 --budget 24
    python benchmarks/campaign_scaling.py --device cuda --workers 1   # one GPU worker
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

from machine_info import machine  # benchmarks/, on the path when run as a script
from evomerge.campaign.config import campaign_from_dict
from evomerge.campaign.folder import new_folder
from evomerge.campaign.loop import CampaignLoop
from evomerge.campaign.runner import open_executor
from evomerge.campaign.status import campaign_status
from evomerge.zoo.build import load_zoo
from evomerge.zoo.demo import SEARCH_LIMIT, demo_campaign

REPO = Path(__file__).resolve().parents[1]
BUSY_TARGET = 0.95
DRIVER_TARGET = 0.02


#: the packages whose versions the machine line names
VERSIONS = ("ray", "lm_eval", "optuna")

def campaign_data(zoo_dir: Path, workers: int, budget: int, limit: int, device: str,
                  seed: int) -> dict:
    """The demo's campaign with ``limit`` documents per skill, no report tasks."""
    data = demo_campaign(load_zoo(zoo_dir), workers, budget)
    data["name"] = f"scaling-{device}-{workers}"
    lm_eval = data["evaluation"]["lm_eval"]
    lm_eval["search_tasks"][0]["limit"] = limit
    lm_eval.pop("report_tasks", None)
    data["executor"]["device"] = device
    data["seed"] = seed
    return data


def from_first_candidate(trials) -> dict[str, float]:
    """Per worker: busy seconds over the span from its first candidate's start to its
    last result (the loading wait before the loop left out)."""
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for t in trials:
        if t.fitness is not None and t.worker and "began" in t.fitness.timings:
            spans[t.worker].append((t.fitness.timings["began"], t.fitness.timings["ended"]))
    out = {}
    for worker, marks in spans.items():
        span = max(e for _, e in marks) - min(b for b, _ in marks)
        out[worker] = sum(e - b for b, e in marks) / span if span > 0 else 1.0
    return out


def one_run(zoo_dir: Path, work: Path, workers: int, budget: int, limit: int, device: str,
            seed: int) -> dict:
    out = work / f"{device}_{workers}"
    shutil.rmtree(out, ignore_errors=True)
    folder = new_folder(out, campaign_from_dict(
        campaign_data(zoo_dir, workers, budget, limit, device, seed)), storage=None)
    start = time.perf_counter()
    executor = open_executor(folder)
    startup_s = time.perf_counter() - start
    status = CampaignLoop(folder, executor).run()
    summary = campaign_status(folder)
    trials = [t for t in folder.open_record().trials() if t.done and not t.reused_from]
    candidate_s = statistics.median(
        t.fitness.timings["ended"] - t.fitness.timings["began"] for t in trials)
    per_worker = summary["workers"]
    steady = from_first_candidate(trials)
    # the optimizer's saved state (its whole history), written 3 times per candidate
    state_kb = (out / "optimizer.json").stat().st_size / 1024
    shutil.rmtree(out, ignore_errors=True)
    evaluations = status.run_evaluations
    return {
        "workers": workers, "device": device, "evaluations": evaluations,
        "failures": status.failures, "startup_s": startup_s, "loop_s": status.run_s,
        "per_hour": status.per_hour,
        "per_hour_with_startup": 3600.0 * evaluations / (startup_s + status.run_s),
        "busy": [w["busy_fraction"] for w in per_worker.values()],
        "busy_steady": list(steady.values()),
        "idle_s": [w["idle_s"] for w in per_worker.values()],
        "candidate_s": candidate_s,
        "merge_s": statistics.median(t.fitness.timings.get("merge_s", 0.0) for t in trials),
        "driver_s": status.driver_s / max(evaluations, 1), "state_kb": state_kb,
    }


HEADER = ("| run | workers | evaluations | start-up s | loop s | evals/h (loop) | "
          "evals/h (with start-up) | vs 1 worker | s/candidate (merge) | busy, status | "
          "busy, from first candidate | idle s | driver ms/eval | driver / candidate | "
          "optimizer.json KB |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def format_row(r: dict, run: int, one_worker: float | None) -> str:
    def fractions(values):
        return ", ".join(f"{v:.1%}" for v in values)

    busy_met = all(v >= BUSY_TARGET for v in r["busy"])
    driver_share = r["driver_s"] / r["candidate_s"]
    scale = f"{r['per_hour'] / one_worker:.2f}x" if one_worker else "n/a"
    return (f"| {run} | {r['workers']} {r['device']} | {r['evaluations']} "
            f"({r['failures']} failed) | {r['startup_s']:.1f} | {r['loop_s']:.1f} | "
            f"{r['per_hour']:.0f} | {r['per_hour_with_startup']:.0f} | {scale} | "
            f"{r['candidate_s']:.2f} ({r['merge_s']:.3f}) | {fractions(r['busy'])}"
            f"{'' if busy_met else ' (below 95%)'} | {fractions(r['busy_steady'])} | "
            f"{', '.join(f'{v:.1f}' for v in r['idle_s'])} | {1000 * r['driver_s']:.1f} | "
            f"{driver_share:.2%}{'' if driver_share < DRIVER_TARGET else ' (not under 2%)'} | "
            f"{r['state_kb']:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default=None,
                    help="comma-separated worker counts (default: 1,2 on CPU, 1 on cuda)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cuda: one Ray worker per GPU (needs a GPU)")
    ap.add_argument("--budget", type=int, default=16, help="evaluations per campaign")
    ap.add_argument("--limit", type=int, default=SEARCH_LIMIT,
                    help="documents per zoo skill task (default: the demo's)")
    ap.add_argument("--repeats", type=int, default=2, help="campaigns per worker count")
    ap.add_argument("--zoo", type=Path, default=Path("runs/zoo"))
    ap.add_argument("--work", type=Path, default=Path("runs/bench_scaling"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no GPU here")
    os.chdir(REPO)
    counts = [int(n) for n in (args.workers or ("1,2" if args.device == "cpu" else "1"))
              .split(",")]
    load = os.getloadavg()
    print(f"machine: {machine(args.device, VERSIONS)}\nload average at start: "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    rows = []
    for run in range(1, args.repeats + 1):
        for n in counts:  # worker counts take turns
            r = one_run(args.zoo, args.work, n, args.budget, args.limit, args.device,
                        args.seed)
            rows.append((run, r))
            print(f"run {run}, {n} worker(s): {r['per_hour']:.0f} evals/h, busy "
                  f"{[round(b, 3) for b in r['busy']]}, driver {1000 * r['driver_s']:.1f} "
                  f"ms/eval, candidate {r['candidate_s']:.2f} s", flush=True)
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print(HEADER)
    for run, r in rows:
        one = next((x["per_hour"] for k, x in rows if k == run and x["workers"] == 1), None)
        print(format_row(r, run, one))
    print("\nevals/h (loop): evaluations over the loop's wall time, workers already loaded; "
          "vs 1 worker: the same repeat's 1-worker run.\nbusy, status: merge + evaluate "
          "over the span from the worker becoming ready (evomerge status); "
          "driver / candidate: the driver's ms per evaluation over the median candidate "
          "time.")
    print(f"\ncommand: python {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
