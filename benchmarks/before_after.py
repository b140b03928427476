"""Disk merges and in-memory builds of two revisions, timed side by side.

Each round runs both revisions at the same time, one torch thread each, so that a busy
machine's changing load falls on both alike (with more threads, waits for descheduled
OpenMP threads dominate on a loaded host). A run times every method's disk merge
(``merge_to_disk``, best of ``--disk-runs``) and in-memory build (``LiveMerger.build``
after a warm-up, best of ``--builds``); the table gives the medians over rounds and the
median of the per-round ratios after / before.

    python benchmarks/before_after.py --before 373fde6 --after HEAD
    python benchmarks/before_after.py --before HEAD~3 --after HEAD --rounds 3 --layers 4

The models are a SmolLM2-135M-shaped random Llama (``--layers`` of its 30) in bfloat16
and two perturbed copies, made once under ``--work``. A method with ``+order`` is built
in memory with ``LiveMerger(remember_order=True)``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = "ties,dare_ties,breadcrumbs,task_arithmetic,linear,slerp,ties+order"
PARAMS = {"ties": {"weight": 0.5, "density": 0.5}, "dare_ties": {"weight": 0.5, "density": 0.5},
          "breadcrumbs": {"weight": 0.5, "density": 0.9, "gamma": 0.01},
          "task_arithmetic": {"weight": 0.5}, "linear": {"weight": 0.5},
          "della": {"weight": 0.5, "density": 0.5, "epsilon": 0.1},
          "dare_linear": {"weight": 0.5, "density": 0.5}}


def prepare(root: Path, layers: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if all((root / n / "config.json").exists() for n in ("base", "expert_0", "expert_1")):
        return
    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                         num_hidden_layers=layers, num_attention_heads=9,
                         num_key_value_heads=3, tie_word_embeddings=True)
    torch.manual_seed(0)
    base = LlamaForCausalLM(config).to(torch.bfloat16)
    base.save_pretrained(root / "base")
    for i in range(2):
        expert = LlamaForCausalLM(config).to(torch.bfloat16)
        expert.load_state_dict(base.state_dict())
        g = torch.Generator().manual_seed(i + 1)
        with torch.no_grad():
            for p in expert.parameters():
                p.add_((torch.randn(p.shape, generator=g) * 0.01).to(p.dtype))
        expert.save_pretrained(root / f"expert_{i}")


def recipe(method: str, root: Path) -> dict:
    base, experts = root / "base", [root / "expert_0", root / "expert_1"]
    if method == "slerp":
        return {"merge_method": "slerp", "base_model": str(base),
                "models": [{"model": str(base)}, {"model": str(experts[0])}],
                "parameters": {"t": 0.5}}
    cfg = {"merge_method": method,
           "models": [{"model": str(e), "parameters": dict(PARAMS[method])} for e in experts]}
    if method != "linear":
        cfg["base_model"] = str(base)
    return cfg


def child(args) -> None:
    """Time one revision (the evomerge first on sys.path); print one JSON line."""
    import torch

    torch.set_num_threads(1)
    import evomerge
    from evomerge.merge.live import LiveMerger
    from evomerge.merge.recipe import load_recipe_dict
    from evomerge.merge.to_disk import merge_to_disk

    root, methods = args.work / "models", args.methods.split(",")
    result = {"evomerge": evomerge.__file__}

    def best(run, times):
        return min(_timed(run) for _ in range(times))

    for method in (m for m in methods if not m.endswith("+order")):
        r = load_recipe_dict(recipe(method, root))
        result[f"disk {method}"] = best(
            lambda: merge_to_disk(r, args.out, overwrite=True), args.disk_runs)
    for order in (False, True):
        todo = [m for m in methods if m.endswith("+order") == order]
        if not todo:
            continue
        merger = LiveMerger([str(root / "expert_0"), str(root / "expert_1")],
                            base=str(root / "base"), remember_order=order)
        model = merger.new_model()
        for method in todo:
            r = load_recipe_dict(recipe(method.removesuffix("+order"), root))
            merger.build(r, model)  # warm-up
            result[f"in-memory {method}"] = best(lambda: merger.build(r, model), args.builds)
    print(json.dumps(result))


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def worktree(repo: Path, rev: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(where), rev],
                   check=True, capture_output=True)
    return where


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", help="revision timed first (git rev)")
    ap.add_argument("--after", help="revision compared with it")
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--builds", type=int, default=3)
    ap.add_argument("--disk-runs", type=int, default=2)
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--work", type=Path, default=Path("runs/bench_before_after"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.work = args.work.resolve()
    if args.child:
        child(args)
        return
    if not args.before or not args.after:
        ap.error("--before and --after are required")
    prepare(args.work / "models", args.layers)
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        trees = {name: worktree(repo, rev, Path(tmp) / name)
                 for name, rev in (("before", args.before), ("after", args.after))}
        try:
            rows = {"before": [], "after": []}
            for r in range(args.rounds):
                procs = {}
                for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--child",
                           "--methods", args.methods,
                           "--builds", str(args.builds), "--disk-runs", str(args.disk_runs),
                           "--work", str(args.work), "--out", str(Path(tmp) / f"out_{name}")]
                    procs[name] = subprocess.Popen(
                        cmd, env=dict(os.environ, PYTHONPATH=str(trees[name])),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for name, proc in procs.items():
                    out, err = proc.communicate()
                    if proc.returncode:
                        raise RuntimeError(f"{name} failed:\n{err[-3000:]}")
                    result = json.loads(out.strip().splitlines()[-1])
                    if not result.pop("evomerge").startswith(str(trees[name])):
                        raise RuntimeError(f"{name} did not import its own tree")
                    rows[name].append(result)
                print(f"round {r + 1} of {args.rounds} done", flush=True)
        finally:
            for where in trees.values():
                subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force",
                                str(where)], capture_output=True)
    print(f"\nbefore {args.before}, after {args.after}; {args.rounds} rounds, one thread each\n")
    print("| build | before s | after s | after / before (median of rounds) |")
    print("|---|---|---|---|")
    for key in rows["before"][0]:
        before = [x[key] for x in rows["before"]]
        after = [x[key] for x in rows["after"]]
        ratio = statistics.median(a / b for a, b in zip(after, before))
        print(f"| {key} | {statistics.median(before):.3f} | {statistics.median(after):.3f} "
              f"| {ratio:.2f} |")


if __name__ == "__main__":
    main()
