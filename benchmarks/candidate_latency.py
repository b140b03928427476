"""Candidate latency: seconds from the optimizer's point to a scored candidate.

Two paths from the same point to the same score, taking turns candidate by candidate:

* **evomerge, in memory**: what a campaign worker does per candidate
  (:meth:`evomerge.execute.worker.Worker.evaluate`): the space decodes the point into a
  recipe, ``LiveMerger.build`` writes it into the resident model, and the lm-eval
  adapter scores that model in memory. The worker's start-up (imports, sources loaded,
  model allocated, tasks and requests prepared) happens once, before the first
  candidate; it is reported apart and, for "start-up included", added whole to the
  first candidate and spread over all of them.
* **mergekit, on disk**: the same decoded recipe written as mergekit YAML
  (:func:`evomerge.export.mergekit_yaml.mergekit_yaml`), ``mergekit-yaml`` to a folder,
  then the ``lm_eval`` command line on that folder with the same tasks, limits, batch
  size and dtype. Both are processes a user types, so each candidate pays their
  start-up, the model's load and the write; that is the path, so it is counted. The
  page cache is warm (sources read beforehand); mergekit's output is not fsynced.

Each candidate's scores on the two paths are compared (``scores equal``: the count
whose every task metric matches lm_eval's result file).

Model sets: ``zoo_large`` (``evomerge zoo build runs/zoo_large --preset large``, 2.6M
parameters) and ``zoo`` (the default zoo at ``runs/zoo``), base and four experts, scored
on the zoo's ``zoo_mc_search`` group (four skills, ``--limit`` documents each); and
``smollm2`` (``evomerge zoo import-gguf runs/smollm2 --experts 2``: SmolLM2-135M and two
synthetic experts), scored on the default zoo's local task files, which SmolLM2's own
tokenizer reads like any text. The space is the demo's: task arithmetic, one weight per
expert. Nothing downloads (the subprocesses run with the Hugging Face offline switches).

Run from the repository root::

    python benchmarks/candidate_latency.py                              # zoo_large + smollm2
    python benchmarks/candidate_latency.py --sets zoo,smollm2 --candidates 3 --limit 10
    python benchmarks/candidate_latency.py --device cuda                # on a GPU
"""

from __future__ import annotations

import time

_IMPORT_START = time.perf_counter()
from machine_info import machine  # benchmarks/, on the path when run as a script
from evomerge.evaluate import lm_eval_adapter  # noqa: F401  torch, transformers, lm-eval
from evomerge.execute.worker import Worker

IMPORT_S = time.perf_counter() - _IMPORT_START

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from evomerge.campaign.config import Campaign, campaign_from_dict
from evomerge.execute.base import WorkerSpec
from evomerge.export.mergekit_yaml import mergekit_yaml
from evomerge.zoo.build import load_zoo
from evomerge.zoo.demo import SEARCH_TASK, SPACE

REPO = Path(__file__).resolve().parents[1]
TARGET = 10.0
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


#: the packages whose versions the machine line names
VERSIONS = ("lm_eval", "mergekit", "transformers")

def zoo_set(root: Path) -> tuple[Path, list[Path], Path]:
    """Base, experts and task folder of a built zoo."""
    zoo = load_zoo(root)
    return zoo.base, list(zoo.experts.values()), zoo.task_dir


def smollm2_set(root: Path, tasks: Path) -> tuple[Path, list[Path], Path]:
    """``evomerge zoo import-gguf ROOT --experts N``: ROOT/model and ROOT/experts/*."""
    base = root / "model"
    experts = sorted(p for p in (root / "experts").iterdir() if (p / "config.json").is_file())
    if not (base / "config.json").is_file() or not experts:
        raise SystemExit(f"{root}: run `evomerge zoo import-gguf {root} --experts 2` first")
    return base, experts, tasks


def campaign_for(name: str, base: Path, experts: list[Path], tasks: Path, limit: int,
                 batch_size: int, device: str, n: int) -> Campaign:
    """The demo's space over these models, one search task with ``limit`` documents per
    subtask; checked as ``evomerge run`` checks a campaign file."""
    return campaign_from_dict({
        "format": "evomerge/campaign-v1", "name": f"latency-{name}",
        "models": {"base": str(base), "sources": [str(e) for e in experts]},
        "space": SPACE,
        "evaluation": {"lm_eval": {
            "include_paths": [str(tasks)], "batch_size": batch_size,
            "search_tasks": [{"name": SEARCH_TASK, "limit": limit}]}},
        "budget": {"evaluations": n},
        "executor": {"kind": "local", "workers": 1, "device": device},
        "seed": 0,
    })


def read_through(folders: list[Path], block: int = 64 << 20) -> None:
    """Read the models' weight files once, so neither path pays for a cold cache."""
    for folder in folders:
        for f in sorted(folder.glob("*.safetensors")):
            with open(f, "rb", buffering=0) as stream:
                while stream.read(block):
                    pass


def run(cmd: list[str]) -> float:
    threads = str(torch.get_num_threads())  # the same CPU threads as the in-memory path
    env = {**os.environ, **OFFLINE, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return elapsed


def lm_eval_results(folder: Path) -> dict:
    """The ``results`` mapping of the one result file lm_eval wrote under ``folder``."""
    files = sorted(folder.rglob("results_*.json"))
    return json.loads(files[-1].read_text())["results"]


def same_scores(objectives: dict[str, float], results: dict) -> bool:
    """Every ``task/metric`` objective equals lm_eval's ``metric,none`` for that task."""
    checked = 0
    for key, value in objectives.items():
        task, _, metric = key.rpartition("/")
        if not task:
            continue
        theirs = results.get(task, {}).get(f"{metric},none")
        if theirs is None or abs(theirs - value) > 1e-9:
            return False
        checked += 1
    return checked > 0


def mergekit_candidate(campaign: Campaign, candidate, work: Path, tasks: Path, limit: int,
                       batch_size: int, device: str) -> dict:
    """Point -> mergekit YAML -> ``mergekit-yaml`` -> ``lm_eval`` on the folder."""
    cfg, out, scores = work / "candidate.yml", work / "merged", work / "lm_eval_out"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(scores, ignore_errors=True)
    start = time.perf_counter()
    recipe, _ = campaign.decode(candidate)
    cfg.write_text(mergekit_yaml(recipe))
    decode_s = time.perf_counter() - start
    merge = [shutil.which("mergekit-yaml") or "mergekit-yaml", str(cfg), str(out)]
    if device.startswith("cuda"):
        merge.append("--cuda")
    merge_s = run(merge)
    evaluate_s = run([
        shutil.which("lm_eval") or "lm_eval", "--model", "hf",
        "--model_args", f"pretrained={out},dtype=float32",
        "--tasks", SEARCH_TASK, "--include_path", str(tasks), "--limit", str(limit),
        "--batch_size", str(batch_size), "--device", device, "--output_path", str(scores)])
    return {"decode_s": decode_s, "merge_s": merge_s, "eval_s": evaluate_s,
            "total_s": decode_s + merge_s + evaluate_s, "results": lm_eval_results(scores)}


def evomerge_candidate(campaign: Campaign, candidate, worker: Worker) -> dict:
    """Point -> recipe -> in-place build -> in-memory lm-eval (``Worker.evaluate``)."""
    start = time.perf_counter()
    recipe, _ = campaign.decode(candidate)
    decode_s = time.perf_counter() - start
    fitness = worker.evaluate(recipe.to_dict())
    total_s = time.perf_counter() - start
    if not fitness.is_ok:
        raise RuntimeError(fitness.error)
    return {"decode_s": decode_s, "merge_s": fitness.timings["merge_s"],
            "eval_s": fitness.timings["eval_s"], "total_s": total_s,
            "objectives": fitness.objectives}


def bench(name: str, base: Path, experts: list[Path], tasks: Path, n: int, limit: int,
          batch_size: int, device: str, work: Path) -> dict:
    campaign = campaign_for(name, base, experts, tasks, limit, batch_size, device, n)
    candidates = campaign.build_optimizer().ask(n)
    read_through([base, *experts])
    spec = WorkerSpec(base=campaign.base, sources=tuple(campaign.sources),
                      evaluation=campaign.evaluation, device=device, source=name)
    start = time.perf_counter()
    worker = Worker(spec, worker_id="bench")
    load_s = time.perf_counter() - start
    ours, theirs = [], []
    work.mkdir(parents=True, exist_ok=True)
    for i, candidate in enumerate(candidates):  # the two paths take turns
        ours.append(evomerge_candidate(campaign, candidate, worker))
        theirs.append(mergekit_candidate(campaign, candidate, work, tasks, limit,
                                         batch_size, device))
        print(f"{name} candidate {i}: evomerge {ours[-1]['total_s']:.3f} s "
              f"(merge {ours[-1]['merge_s']:.3f}, eval {ours[-1]['eval_s']:.3f}); "
              f"mergekit path {theirs[-1]['total_s']:.2f} s (merge {theirs[-1]['merge_s']:.2f},"
              f" lm_eval {theirs[-1]['eval_s']:.2f})", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    # steady state: the candidates after the first (the first may still warm caches)
    later = ours[1:] or ours

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    startup_s = IMPORT_S + load_s
    return {
        "set": name, "n": n, "limit": limit, "params_m": sum(
            p.numel() for p in worker.model.parameters()) / 1e6,
        "import_s": IMPORT_S, "load_s": load_s,
        "first_s": ours[0]["total_s"],
        "decode_s": med(later, "decode_s"), "merge_s": med(later, "merge_s"),
        "eval_s": med(later, "eval_s"), "total_s": med(later, "total_s"),
        "amortized_s": (startup_s + sum(r["total_s"] for r in ours)) / n,
        "cold_s": startup_s + ours[0]["total_s"],
        "mk_merge_s": med(theirs, "merge_s"), "mk_eval_s": med(theirs, "eval_s"),
        "mk_total_s": med(theirs, "total_s"),
        "mk_spread": (min(r["total_s"] for r in theirs), max(r["total_s"] for r in theirs)),
        "spread": (min(r["total_s"] for r in later), max(r["total_s"] for r in later)),
        "equal": sum(same_scores(o["objectives"], t["results"]) for o, t in zip(ours, theirs)),
    }


HEADER = ("| set | params M | N | limit | start-up s (imports + load) | evomerge merge s | "
          "evomerge eval s | evomerge s/cand | mergekit-yaml s | lm_eval s | "
          "mergekit path s/cand | merge ratio | eval ratio | ratio, start-up excluded | "
          "ratio, start-up spread over N | ratio, one cold candidate | scores equal |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def format_row(r: dict) -> str:
    ratio = r["mk_total_s"] / r["total_s"]
    return (f"| {r['set']} | {r['params_m']:.1f} | {r['n']} | {r['limit']} | "
            f"{r['import_s'] + r['load_s']:.2f} ({r['import_s']:.2f} + {r['load_s']:.2f}) | "
            f"{r['merge_s']:.3f} | {r['eval_s']:.3f} | {r['total_s']:.3f} "
            f"({r['spread'][0]:.3f}-{r['spread'][1]:.3f}) | {r['mk_merge_s']:.2f} | "
            f"{r['mk_eval_s']:.2f} | {r['mk_total_s']:.2f} "
            f"({r['mk_spread'][0]:.2f}-{r['mk_spread'][1]:.2f}) | "
            f"{r['mk_merge_s'] / r['merge_s']:.0f}x | {r['mk_eval_s'] / r['eval_s']:.1f}x | "
            f"{ratio:.1f}x{'' if ratio >= TARGET else ' (below 10x)'} | "
            f"{r['mk_total_s'] / r['amortized_s']:.1f}x | "
            f"{r['mk_total_s'] / r['cold_s']:.1f}x | {r['equal']}/{r['n']} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="zoo_large,smollm2",
                    help="comma-separated: zoo_large, zoo, smollm2")
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--limit", type=int, default=16, help="documents per zoo skill task")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads, here and in the subprocesses (on a shared "
                         "machine, 2-thread ops wait for descheduled threads)")
    ap.add_argument("--zoo-large", type=Path, default=Path("runs/zoo_large"))
    ap.add_argument("--zoo", type=Path, default=Path("runs/zoo"))
    ap.add_argument("--smollm2", type=Path, default=Path("runs/smollm2"))
    ap.add_argument("--work", type=Path, default=Path("runs/bench_latency"))
    ap.add_argument("--write", type=Path, help="append the table to this markdown file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.chdir(REPO)
    sets = {"zoo_large": lambda: zoo_set(args.zoo_large), "zoo": lambda: zoo_set(args.zoo),
            "smollm2": lambda: smollm2_set(args.smollm2, load_zoo(args.zoo).task_dir)}
    load = os.getloadavg()
    print(f"machine: {machine(args.device, VERSIONS)}\nload average at start: "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    rows = []
    for name in args.sets.split(","):
        base, experts, tasks = sets[name]()
        rows.append(bench(name, base, experts, tasks, args.candidates, args.limit,
                          args.batch_size, args.device, args.work / name))
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    table = HEADER + "\n" + "\n".join(format_row(r) for r in rows)
    print(table)
    print("\nevomerge s/cand: median over the candidates after the first (min-max); "
          "mergekit path: median over all (min-max).\nratio = mergekit path / evomerge; "
          "start-up excluded: steady state; spread over N: evomerge's start-up added once "
          "to N candidates;\none cold candidate: evomerge's start-up plus its first "
          "candidate, against one mergekit-path candidate.")
    if args.write:
        stamp = datetime.date.today().isoformat()
        with open(args.write, "a") as f:
            f.write(f"\n## {stamp}: {machine(args.device, VERSIONS)}\n\ncommand: "
                    f"`python {' '.join(sys.argv)}`\n\n{table}\n")


if __name__ == "__main__":
    main()
