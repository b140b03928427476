"""Print the README's results table from the JSON files ``run.py`` wrote.

    python experiments/m2n2_digits/summarize.py experiments/m2n2_digits/results/*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def describe(config: dict) -> str:
    method = config["method"]
    if method == "m2n2":
        ablation = config["ablation"]
        return "M2N2" if ablation == "none" else f"M2N2, {ablation}"
    if method == "cmaes":
        return f"CMA-ES diagonal, {config.get('cma_sigma', 'tpa').upper()}"
    return "best single SLERP weight (grid of 10,000)"


def row(path: Path) -> str:
    report = json.loads(path.read_text())
    config, runs = report["config"], report["runs"]
    tests = ", ".join(f"{100 * r['test_accuracy']:.1f}" for r in runs)
    if len(config.get("expert_seeds", [])) > 1:  # several expert pairs: a mean per pair
        by_pair: dict[int, list[float]] = {}
        for r in runs:
            by_pair.setdefault(r["expert_seed"], []).append(r["test_accuracy"])
        tests = ", ".join(f"{pair}: {100 * sum(v) / len(v):.1f}" for pair, v in by_pair.items())
    trains = sum(r["train_accuracy"] for r in runs) / len(runs)
    wall = sum(r["wall_s"] for r in runs) / len(runs)
    cpu = sum(r.get("cpu_s", float("nan")) for r in runs) / len(runs)
    evals = "-" if config["method"] == "slerp-grid" else f"{config['evals']:,}"
    start = config["mode"]
    if start == "experts" and "expert_lr" in config:
        pairs = len(config["expert_seeds"])
        start = f"experts, lr {config['expert_lr']}, {pairs} pair{'s' * (pairs > 1)}"
    return (f"| {start} | {describe(config)} | {evals} | "
            f"**{100 * report['test_accuracy_mean']:.1f}** ± "
            f"{100 * report['test_accuracy_std']:.1f} | {tests} | {100 * trains:.1f} | "
            f"{wall:.0f} / {cpu:.0f} | `{path.name}` |")


def main(paths: list[str]) -> None:
    print("| start | method | evals | test acc % (mean ± std) | per seed (per expert pair: "
          "its mean) | train acc % "
          "| wall / CPU s per run | file |")
    print("|---|---|---|---|---|---|---|---|")
    for path in paths:
        print(row(Path(path)))


if __name__ == "__main__":
    main(sys.argv[1:])
