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
    trains = sum(r["train_accuracy"] for r in runs) / len(runs)
    wall = sum(r["wall_s"] for r in runs) / len(runs)
    cpu = sum(r.get("cpu_s", float("nan")) for r in runs) / len(runs)
    evals = "-" if config["method"] == "slerp-grid" else f"{config['evals']:,}"
    return (f"| {config['mode']} | {describe(config)} | {evals} | "
            f"**{100 * report['test_accuracy_mean']:.1f}** ± "
            f"{100 * report['test_accuracy_std']:.1f} | {tests} | {100 * trains:.1f} | "
            f"{wall:.0f} / {cpu:.0f} | `{path.name}` |")


def main(paths: list[str]) -> None:
    print("| start | method | evals | test acc % (mean ± std) | per seed | train acc % "
          "| wall / CPU s per run | file |")
    print("|---|---|---|---|---|---|---|---|")
    for path in paths:
        print(row(Path(path)))


if __name__ == "__main__":
    main(sys.argv[1:])
