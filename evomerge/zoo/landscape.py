"""Measure a zoo's merge landscape: does searching over merge coefficients pay?

Scores the base, every expert, and a coarse grid of per-expert task-arithmetic weights
(θ = θ_base + Σ λ_m τ_m with τ_m = θ_m − θ_base, λ_m from ``levels``) on every task, then
reports the best merge against the experts and the base on the average over the expert
skills, the Pareto front of per-skill accuracies across the grid, and each cross-skill
target against the experts it needs.

Every choice (the best merge, the best expert, each target's best grid point) is made on
the search split. Measured on the test split, a landscape scores the grid on the search
split to choose, then scores on the test split only the base, the experts and the merges
chosen: the test split reports what the search split chose and never picks a model itself.

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
    """Scores on one ``split``. ``selection`` is the landscape whose scores make every
    choice (the search split's); ``None`` when this landscape chooses on its own scores.
    ``grid`` holds every merge scored on this split: the whole grid on the search split,
    only the chosen merges on another split. ``documents``: task -> documents scored."""

    skills: list[str]
    targets: list[str]
    base: Point
    experts: dict[str, Point]
    grid: list[Point] = field(default_factory=list)
    split: str = "search"
    selection: Landscape | None = None
    documents: dict[str, int] = field(default_factory=dict)

    @property
    def chooser(self) -> Landscape:
        """The landscape the choices are made on."""
        return self.selection if self.selection is not None else self

    def merge(self, weights: dict[str, float]) -> Point:
        """This split's scores of the grid merge with ``weights``."""
        for p in self.grid:
            if p.weights == weights:
                return p
        raise KeyError(f"no merge with weights {weights} was scored on the {self.split} split")

    def best_merge(self, metric: str) -> Point:
        """The merge with the best skill average on the chooser's split, scored on this one."""
        chosen = max(self.chooser.grid, key=lambda p: p.average(metric, self.skills))
        return self.merge(chosen.weights)

    def best_expert(self, metric: str) -> Point:
        chooser = self.chooser
        name = max(chooser.experts, key=lambda s: chooser.experts[s].average(metric, self.skills))
        return self.experts[name]

    def _best_for_target(self, metric: str, target: str) -> Point:
        chosen = max(self.chooser.grid, key=lambda p: p.scores[metric][target])
        return self.merge(chosen.weights)

    def chosen_weights(self) -> list[dict[str, float]]:
        """The weights of every merge a report shows: the best merge per metric and each
        target's best grid point per metric (chosen on the chooser's split), once each."""
        chooser, out = self.chooser, []
        for m in METRICS:
            picks = [max(chooser.grid, key=lambda p: p.average(m, self.skills))]
            picks += [max(chooser.grid, key=lambda p, t=t: p.scores[m][t]) for t in self.targets]
            out += [p.weights for p in picks if p.weights not in out]
        return out

    def margins(self, metric: str) -> dict[str, float]:
        """Best merge minus the best expert, and minus the base, on the skill average."""
        best = self.best_merge(metric).average(metric, self.skills)
        return {"vs_best_expert": best - self.best_expert(metric).average(metric, self.skills),
                "vs_base": best - self.base.average(metric, self.skills)}

    def target_report(self, metric: str) -> dict[str, dict[str, float]]:
        """Per cross-skill target: the base, each parent expert, the best merge (chosen on
        the skill average) and the grid point best for the target itself (chosen on the
        chooser's split too)."""
        best = self.best_merge(metric)
        out = {}
        for t in self.targets:
            row = {"base": self.base.scores[metric][t]}
            row |= {f"expert_{s}": self.experts[s].scores[metric][t] for s in SKILLS[t].needs}
            row["best_merge"] = best.scores[metric][t]
            row["best_grid_for_target"] = self._best_for_target(metric, t).scores[metric][t]
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


SELECTION_SPLIT = "search"


def measure(zoo: Zoo | Path | str, split: str = SELECTION_SPLIT,
            levels: Sequence[float] = DEFAULT_LEVELS, limit: int | None = None,
            on_point: Callable[[int, int], None] | None = None) -> Landscape:
    """Score base, experts and the per-expert weight grid on the search split (first
    ``limit`` documents of each task). For another ``split``, also score on it the base,
    the experts and the merges chosen on the search split: the returned landscape is that
    split's, with the search split's as its ``selection``. ``on_point(done, total)``
    follows the models scored (``total`` grows once the choices are known)."""
    zoo = zoo if isinstance(zoo, Zoo) else load_zoo(zoo)
    tok = AutoTokenizer.from_pretrained(zoo.base)
    stops = stop_token_ids(tok)
    # the same in-memory build a search worker runs: sources resident, task vectors once
    merger = LiveMerger([str(p) for p in zoo.experts.values()], base=str(zoo.base))
    model = AutoModelForCausalLM.from_pretrained(zoo.base)
    skills = list(zoo.experts)
    combos = [dict(zip(skills, c)) for c in itertools.product(levels, repeat=len(skills))]
    progress = {"done": 0, "total": 1 + len(skills) + len(combos)}

    def score_split(name: str, merges: list[dict[str, float]],
                    selection: Landscape | None) -> Landscape:
        rows = {t: read_jsonl(zoo.split_file(t, name))[:limit] for t in zoo.manifest["data"]}
        prepared = {t: prepare(tok, r) for t, r in rows.items()}

        def score(label: str, weights: dict[str, float]) -> Point:
            merger.build(task_arithmetic_recipe(zoo, weights), model)
            per_task = {t: score_prepared(model, p, stops).metrics for t, p in prepared.items()}
            progress["done"] += 1
            if on_point is not None:
                on_point(progress["done"], progress["total"])
            return Point(label, weights, {m: {t: per_task[t][m] for t in rows} for m in METRICS})

        base_pt = score("base", {})
        experts = {s: score(f"expert_{s}", {s: 1.0}) for s in skills}
        grid = [score("merge " + " ".join(f"{w:g}" for w in weights.values()), weights)
                for weights in merges]
        targets = [t for t in rows if t in SKILLS and SKILLS[t].is_target]
        return Landscape(skills, targets, base_pt, experts, grid, split=name,
                         selection=selection, documents={t: len(r) for t, r in rows.items()})

    # One thread: on a shared machine, several OpenMP threads of a tiny model mostly wait
    # for each other.
    with torch.no_grad(), deterministic(seed=0, threads=1):
        chooser = score_split(SELECTION_SPLIT, combos, None)
        if split == SELECTION_SPLIT:
            return chooser
        chosen = chooser.chosen_weights()
        progress["total"] += 1 + len(skills) + len(chosen)
        return score_split(split, chosen, chooser)


def choice_note(land: Landscape) -> str:
    """Where the merges a report shows were chosen, in words."""
    chooser = land.chooser
    where = (f"the {chooser.split} split's scores" if chooser is land else
             f"the {chooser.split} split (not on these {land.split}-split scores)")
    return (f"best merge, best expert and best grid point per target chosen on {where}, "
            f"among {len(chooser.grid)} grid merges")


def summary(land: Landscape) -> dict:
    """The landscape's headline numbers per metric, as plain JSON-ready values."""
    out = {"split": land.split, "chosen_on": land.chooser.split}
    for m in METRICS:
        best = land.best_merge(m)
        front = pareto_front(land.chooser.grid, m, land.skills)
        out[m] = {
            "base": land.base.average(m, land.skills),
            "experts": {s: p.average(m, land.skills) for s, p in land.experts.items()},
            "best_expert": land.best_expert(m).name,
            "best_merge": {"weights": best.weights, "average": best.average(m, land.skills),
                           "scores": best.scores[m]},
            "margins": land.margins(m),
            "pareto_front_size": len(front),
            "grid_size": len(land.chooser.grid),
            "targets": land.target_report(m),
        }
    return out


def render(land: Landscape) -> str:
    """A plain-text table: one row per model (base, experts, best merge per metric),
    one column per task, then the margins, the Pareto front size and the targets."""
    tasks = land.skills + land.targets
    rows = [(p.name, p) for p in (land.base, *land.experts.values())]
    for m in METRICS:
        best = land.best_merge(m)
        weights = ",".join(f"{w:g}" for w in best.weights.values())
        rows.append((f"best merge ({m}) {weights}", best))
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"{land.split} split; {choice_note(land)}", ""]
    for m in METRICS:
        head = f"{m:<{width}}" + "".join(f"{t:>12}" for t in tasks) + f"{'skill avg':>11}"
        lines += [head, "-" * len(head)]
        for label, p in rows:
            cells = "".join(f"{p.scores[m][t]:>12.3f}" for t in tasks)
            lines.append(f"{label:<{width}}{cells}{p.average(m, land.skills):>11.3f}")
        margins = land.margins(m)
        chooser = land.chooser
        front = pareto_front(chooser.grid, m, land.skills)
        lines.append(f"best merge - best expert ({land.best_expert(m).name}): "
                     f"{100 * margins['vs_best_expert']:+.1f} points; - base: "
                     f"{100 * margins['vs_base']:+.1f} points; Pareto front ({chooser.split} "
                     f"split): {len(front)} of {len(chooser.grid)} grid points")
        for t, r in land.target_report(m).items():
            parts = ", ".join(f"{k} {v:.3f}" for k, v in r.items())
            lines.append(f"target {t}: {parts}")
        lines.append("")
    lines.append("weights order: " + ", ".join(land.skills))
    return "\n".join(lines)
