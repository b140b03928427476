"""Measure a zoo's merge landscape: does searching over merge coefficients pay?

Scores the base, every expert, and a coarse grid of per-expert task-arithmetic weights
(θ = θ_base + Σ λ_m τ_m with τ_m = θ_m − θ_base, λ_m from ``levels``) on every task, then
reports the best merge against the experts and the base on the average over the expert
skills, the Pareto front of per-skill accuracies across the grid, and each cross-skill
target against the experts it needs.

>>> pts = [Point("a", {}, {"acc": {"x": 1.0, "y": 0.0}}),
...        Point("b", {}, {"acc": {"x": 0.0, "y": 1.0}}),
...        Point("c", {}, {"acc": {"x": 0.0, "y": 0.5}})]
>>> [p.name for p in pareto_front(pts, "acc", ["x", "y"])]
['a', 'b']
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from evomerge.merge.live import LiveMerger
from evomerge.merge.recipe import Recipe, load_recipe_dict
from evomerge.pareto import non_dominated_mask
from evomerge.zoo.build import Zoo, load_zoo
from evomerge.zoo.data import read_jsonl
from evomerge.zoo.scoring import METRICS, prepare, score_prepared, stop_token_ids
from evomerge.zoo.skills import SKILLS
from evomerge.zoo.train import deterministic

DEFAULT_LEVELS = (0.0, 0.5, 1.0)


@dataclass
class Point:
    """One scored model: ``scores[metric][task]``; ``weights`` maps skill -> λ for merges."""

    name: str
    weights: dict[str, float]
    scores: dict[str, dict[str, float]]

    def average(self, metric: str, tasks: Sequence[str]) -> float:
        return sum(self.scores[metric][t] for t in tasks) / len(tasks)


@dataclass
class Landscape:
    skills: list[str]
    targets: list[str]
    base: Point
    experts: dict[str, Point]
    grid: list[Point] = field(default_factory=list)

    def best_merge(self, metric: str) -> Point:
        return max(self.grid, key=lambda p: p.average(metric, self.skills))

    def best_expert(self, metric: str) -> Point:
        return max(self.experts.values(), key=lambda p: p.average(metric, self.skills))

    def margins(self, metric: str) -> dict[str, float]:
        """Best merge minus the best expert, and minus the base, on the skill average."""
        best = self.best_merge(metric).average(metric, self.skills)
        return {"vs_best_expert": best - self.best_expert(metric).average(metric, self.skills),
                "vs_base": best - self.base.average(metric, self.skills)}

    def target_report(self, metric: str) -> dict[str, dict[str, float]]:
        """Per cross-skill target: the base, each parent expert, the best merge (chosen on
        the skill average) and the best grid point for the target itself."""
        best = self.best_merge(metric)
        out = {}
        for t in self.targets:
            row = {"base": self.base.scores[metric][t]}
            row |= {f"expert_{s}": self.experts[s].scores[metric][t] for s in SKILLS[t].needs}
            row["best_merge"] = best.scores[metric][t]
            row["best_grid_for_target"] = max(p.scores[metric][t] for p in self.grid)
            out[t] = row
        return out


def pareto_front(points: Sequence[Point], metric: str, tasks: Sequence[str]) -> list[Point]:
    """The points no other point beats on every task (ties do not dominate)."""
    values = [[p.scores[metric][t] for t in tasks] for p in points]
    keep = non_dominated_mask(values, ["maximize"] * len(tasks))
    return [p for p, kept in zip(points, keep) if kept]


def task_arithmetic_recipe(zoo: Zoo, weights: dict[str, float]) -> Recipe:
    """θ_base + Σ λ_m τ_m over the zoo's experts (unnamed experts weigh 0)."""
    return load_recipe_dict({
        "merge_method": "task_arithmetic", "base_model": str(zoo.base),
        "models": [{"model": str(path), "parameters": {"weight": float(weights.get(s, 0.0))}}
                   for s, path in zoo.experts.items()]})


def measure(zoo: Zoo | Path | str, split: str = "search",
            levels: Sequence[float] = DEFAULT_LEVELS, limit: int | None = None,
            on_point: Callable[[int, int], None] | None = None) -> Landscape:
    """Score base, experts and the per-expert weight grid on ``split`` (first ``limit``
    documents of each task)."""
    zoo = zoo if isinstance(zoo, Zoo) else load_zoo(zoo)
    rows = {t: read_jsonl(zoo.split_file(t, split))[:limit] for t in zoo.manifest["data"]}
    tok = AutoTokenizer.from_pretrained(zoo.base)
    prepared = {t: prepare(tok, r) for t, r in rows.items()}
    stops = stop_token_ids(tok)
    # the same in-memory build a search worker runs: sources resident, task vectors once
    merger = LiveMerger([str(p) for p in zoo.experts.values()], base=str(zoo.base))
    model = AutoModelForCausalLM.from_pretrained(zoo.base)
    skills = list(zoo.experts)

    def score(name: str, weights: dict[str, float]) -> Point:
        merger.build(task_arithmetic_recipe(zoo, weights), model)
        per_task = {t: score_prepared(model, p, stops).metrics for t, p in prepared.items()}
        return Point(name, weights, {m: {t: per_task[t][m] for t in rows} for m in METRICS})

    combos = list(itertools.product(levels, repeat=len(skills)))
    total = 1 + len(skills) + len(combos)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if on_point is not None:
            on_point(done, total)

    # One thread: on a shared machine, several OpenMP threads of a tiny model mostly wait
    # for each other (a grid of small forward passes ran 20 times slower with two).
    with torch.no_grad(), deterministic(seed=0, threads=1):
        base_pt = score("base", {})
        tick()
        experts = {}
        for s in skills:
            experts[s] = score(f"expert_{s}", {s: 1.0})
            tick()
        grid = []
        for combo in combos:
            weights = dict(zip(skills, combo))
            grid.append(score("merge " + " ".join(f"{w:g}" for w in combo), weights))
            tick()
    targets = [t for t in rows if t in SKILLS and SKILLS[t].is_target]
    return Landscape(skills, targets, base_pt, experts, grid)


def summary(land: Landscape) -> dict:
    """The landscape's headline numbers per metric, as plain JSON-ready values."""
    out = {}
    for m in METRICS:
        best = land.best_merge(m)
        front = pareto_front(land.grid, m, land.skills)
        out[m] = {
            "base": land.base.average(m, land.skills),
            "experts": {s: p.average(m, land.skills) for s, p in land.experts.items()},
            "best_merge": {"weights": best.weights, "average": best.average(m, land.skills),
                           "scores": best.scores[m]},
            "margins": land.margins(m),
            "pareto_front_size": len(front),
            "grid_size": len(land.grid),
            "targets": land.target_report(m),
        }
    return out


def render(land: Landscape) -> str:
    """A plain-text table: one row per model (base, experts, best merge per metric),
    one column per task, then the margins, the Pareto front size and the targets."""
    tasks = land.skills + land.targets
    rows = [land.base, *land.experts.values()]
    for m in METRICS:
        best = land.best_merge(m)
        rows.append(Point(f"best merge ({m})", best.weights, best.scores))
    lines = []
    for m in METRICS:
        head = f"{m:<28}" + "".join(f"{t:>12}" for t in tasks) + f"{'skill avg':>11}"
        lines += [head, "-" * len(head)]
        for p in rows:
            label = p.name
            if p.weights and p.name.startswith("best"):
                label += " " + ",".join(f"{w:g}" for w in p.weights.values())
            cells = "".join(f"{p.scores[m][t]:>12.3f}" for t in tasks)
            lines.append(f"{label:<28}{cells}{p.average(m, land.skills):>11.3f}")
        margins = land.margins(m)
        front = pareto_front(land.grid, m, land.skills)
        lines.append(f"best merge - best expert: {100 * margins['vs_best_expert']:+.1f} points; "
                     f"- base: {100 * margins['vs_base']:+.1f} points; Pareto front: "
                     f"{len(front)} of {len(land.grid)} grid points")
        for t, r in land.target_report(m).items():
            parts = ", ".join(f"{k} {v:.3f}" for k, v in r.items())
            lines.append(f"target {t}: {parts}")
        lines.append("")
    lines.append("weights order: " + ", ".join(land.skills))
    return "\n".join(lines)
