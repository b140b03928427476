"""Measure what the ``proving`` zoo is for: that searching layer-wise pays over a fine
global grid, that optimizers separate, and that a routed path composes two experts.

``python -m evomerge.zoo.proving DIR`` scores a built ``proving`` zoo and prints a
markdown report (the zoo README pastes it):

1. a global grid of task-arithmetic and TIES merges of the layer-localised experts
   (``--levels`` per expert), its best merge chosen on the search split; layer-wise
   task arithmetic (one weight per expert and layer) searched by CMA-ES and by random
   search (``--budget`` evaluations, ``--seeds``) on the search split; the best of each
   search (chosen on the search split) against the grid's best on the test split, with
   a 95% confidence interval of the difference paired over documents;
2. the hand-written routed recipe (:func:`routed_recipe`) on the cross-skill target
   against its parents, the base, a task-arithmetic grid of the two parents and a
   layer-wise CMA-ES search over them (both chosen on the search split).

Every choice is made on the search split; the test split only reports. Scoring is the
zoo's own (:mod:`evomerge.zoo.scoring`, which agrees with lm-eval document by document).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from evomerge.merge.live import LiveMerger
from evomerge.merge.recipe import Recipe, load_recipe_dict
from evomerge.merge.routed_model import build_routed, load_sources
from evomerge.optim.registry import build_optimizer
from evomerge.records import Fitness
from evomerge.space import Space
from evomerge.zoo.build import Zoo, load_zoo
from evomerge.zoo.data import read_jsonl
from evomerge.zoo.scoring import prepare, score_prepared, stop_token_ids
from evomerge.zoo.train import deterministic

#: the layer-localised experts whose merges the search and the grid compare
LAYERED = ("add", "reverse", "sort")
#: the routed recipe's parents and the target they compose on
READER, SOLVER, TARGET = "glyph", "add", "glyph_add"
LAYERWISE = {"format": "evomerge/space-v1", "name": "task_arithmetic_layerwise",
             "merge_method": "task_arithmetic", "models": {"base": "base",
                                                          "sources": {"min": 1}},
             "genes": [{"param": "weight", "per": ["model", "layer"], "bounds": [0.0, 1.0]}]}


def routed_recipe(zoo: Zoo) -> Recipe:
    """The reader's first layer, then every layer of the arithmetic expert: the reader
    hands the arithmetic expert decimal digits where the prompt has foreign ones.

    Every expert keeps the base's embeddings, final norm and head, so the frame could
    be either; the path starts with the reader's layer, hence ``anchored: false``."""
    reader, solver = str(zoo.experts[READER]), str(zoo.experts[SOLVER])
    n = zoo.manifest["spec"]["preset"]["shape"]["layers"]
    path = [{"model": reader, "layer": 0}] + [{"model": solver, "layer": i}
                                              for i in range(n)]
    return load_recipe_dict({"routing": {"embeddings": solver, "path": path,
                                         "anchored": False}})


class Scorer:
    """Models of one zoo scored on prepared documents: weight merges built in place over
    resident experts, routed recipes over loaded sources. ``limit`` caps the documents
    per task and split (``None``: all)."""

    def __init__(self, zoo: Zoo, experts: Sequence[str], tasks: Sequence[str],
                 limits: dict[str, int | None]):
        self.zoo, self.experts, self.tasks = zoo, list(experts), list(tasks)
        self.tok = AutoTokenizer.from_pretrained(zoo.base)
        self.stops = stop_token_ids(self.tok)
        self.merger = LiveMerger([str(zoo.experts[s]) for s in self.experts],
                                 base=str(zoo.base))
        self.model = AutoModelForCausalLM.from_pretrained(zoo.base)
        self.prepared = prepare_splits(zoo, self.tok, self.tasks, limits)

    def recipe(self, method: str, weights: dict[str, float | list[float]],
               density: float | None = None) -> Recipe:
        models = []
        for s in self.experts:
            params: dict = {"weight": weights.get(s, 0.0)}
            if density is not None:
                params["density"] = density
            models.append({"model": str(self.zoo.experts[s]), "parameters": params})
        return load_recipe_dict({"merge_method": method, "base_model": str(self.zoo.base),
                                 "models": models})

    def score(self, model_or_recipe, split: str) -> dict[str, dict[str, float]]:
        """task -> doc id -> ``acc`` (0 or 1) of a recipe (built in place) or a model."""
        model = model_or_recipe
        if isinstance(model_or_recipe, Recipe):
            self.merger.build(model_or_recipe, self.model)
            model = self.model
        return per_doc_acc(model, self.prepared[split], self.stops)


def prepare_splits(zoo: Zoo, tok, tasks: Sequence[str], limits: dict[str, int | None]
                   ) -> dict[str, dict[str, object]]:
    """split -> task -> the split's documents (the first ``limits[split]``, ``None``:
    all) encoded once, to score many models on."""
    return {split: {t: prepare(tok, read_jsonl(zoo.split_file(t, split))[:limit])
                    for t in tasks}
            for split, limit in limits.items()}


def per_doc_acc(model, prepared: dict[str, object], stops: Sequence[int]
                ) -> dict[str, dict[str, float]]:
    """task -> doc id -> ``acc`` (0 or 1) of ``model`` on prepared documents."""
    with torch.no_grad():
        return {t: score_prepared(model, p, stops).per_doc["acc"] for t, p in prepared.items()}


def mean(per_task: dict[str, dict[str, float]], tasks: Sequence[str]) -> float:
    """The average over ``tasks`` of each task's mean."""
    return sum(sum(per_task[t].values()) / len(per_task[t]) for t in tasks) / len(tasks)


def paired_ci(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]],
              tasks: Sequence[str]) -> tuple[float, float, float]:
    """The difference of skill averages ``a - b`` and its 95% confidence interval,
    paired over documents (each task weighs equally, as in the average).

    >>> a = {"x": {"1": 1.0, "2": 1.0, "3": 0.0}}; b = {"x": {"1": 0.0, "2": 1.0, "3": 0.0}}
    >>> d, lo, hi = paired_ci(a, b, ["x"]); round(d, 3), lo < d < hi
    (0.333, True)
    """
    diff, var = 0.0, 0.0
    for t in tasks:
        ds = [a[t][k] - b[t][k] for k in a[t]]
        n = len(ds)
        m = sum(ds) / n
        diff += m / len(tasks)
        var += (sum((d - m) ** 2 for d in ds) / (n - 1)) / n / len(tasks) ** 2
    half = 1.96 * math.sqrt(var)
    return diff, diff - half, diff + half


@dataclass
class SearchResult:
    optimizer: str
    seed: int
    best_x: list[float]
    best_search: float
    curve: list[float]


def search(scorer: Scorer, space, optimizer: str, seed: int, budget: int,
           tasks: Sequence[str], split: str = "search") -> SearchResult:
    """Ask/tell ``budget`` candidates of ``space`` (bound) and keep the best on
    ``split``'s skill average over ``tasks``."""
    opt = build_optimizer(optimizer, space.dim, None, seed)
    best_x, best, curve = None, -1.0, []
    while len(curve) < budget:
        asked = opt.ask(min(4, budget - len(curve)))
        told = []
        for cand in asked:
            value = mean(scorer.score(space.decode(cand.x).recipe, split), tasks)
            told.append((cand, Fitness.ok({"fitness": value})))
            if value > best:
                best_x, best = list(cand.x), value
            curve.append(best)
        opt.tell(told)
    return SearchResult(optimizer, seed, best_x, best, curve)


def _bind(scorer: Scorer):
    space = Space.from_dict(LAYERWISE)
    return space.bind(str(scorer.zoo.base), [str(scorer.zoo.experts[s])
                                             for s in scorer.experts])


def _grid(scorer: Scorer, levels: Sequence[float], densities: Sequence[float],
          tasks: Sequence[str]) -> list[tuple[str, Recipe, float]]:
    """Every grid merge with its search-split skill average."""
    out = []
    for combo in itertools.product(levels, repeat=len(scorer.experts)):
        weights = dict(zip(scorer.experts, combo))
        label = ", ".join(f"{w:g}" for w in combo)
        recipes = [(f"task arithmetic {label}", scorer.recipe("task_arithmetic", weights))]
        recipes += [(f"TIES {label}, density {d:g}", scorer.recipe("ties", weights, d))
                    for d in densities if any(combo)]
        for name, recipe in recipes:
            out.append((name, recipe, mean(scorer.score(recipe, "search"), tasks)))
    return out


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def layerwise_report(zoo: Zoo, levels: Sequence[float], densities: Sequence[float],
                     budget: int, seeds: Sequence[int], search_limit: int | None) -> list[str]:
    """Points 1 and 3 of the zoo's claims, as markdown lines."""
    tasks = list(LAYERED)
    scorer = Scorer(zoo, LAYERED, tasks, {"search": search_limit, "test": None})
    space = _bind(scorer)
    grid = _grid(scorer, levels, densities, tasks)
    g_name, g_recipe, g_search = max(grid, key=lambda r: r[2])
    g_test = scorer.score(g_recipe, "test")
    runs = {name: [search(scorer, space, name, s, budget, tasks) for s in seeds]
            for name in ("cma", "random")}
    lines = [f"Grid: {len(grid)} merges (task arithmetic and TIES, λ ∈ "
             f"{{{', '.join(f'{v:g}' for v in levels)}}} per expert, TIES densities "
             f"{{{', '.join(f'{d:g}' for d in densities)}}}); layer-wise task arithmetic: "
             f"{space.dim} genes (one weight per expert and layer), {budget} evaluations "
             f"per search, seeds {', '.join(map(str, seeds))}; experts in the order "
             f"{', '.join(LAYERED)}; skill average `acc` over {', '.join(tasks)}.", "",
             "| model | search split | test split | test - best grid merge (95% CI, paired) |",
             "|---|---|---|---|"]
    base = scorer.score(scorer.recipe("task_arithmetic", {}), "test")
    rows = [("base", mean(scorer.score(scorer.recipe("task_arithmetic", {}), "search"),
                          tasks), base)]
    for s in LAYERED:
        r = scorer.recipe("task_arithmetic", {s: 1.0})
        rows.append((f"expert_{s}", mean(scorer.score(r, "search"), tasks),
                     scorer.score(r, "test")))
    rows.append((f"best grid merge: {g_name}", g_search, g_test))
    for name, results in runs.items():
        top = max(results, key=lambda r: r.best_search)
        genes = ", ".join(f"{v:.2f}" for v in top.best_x)
        rows.append((f"best {name} search (seed {top.seed}): {genes}", top.best_search,
                     scorer.score(space.decode(top.best_x).recipe, "test")))
    for label, s_value, per_doc in rows:
        d, lo, hi = paired_ci(per_doc, g_test, tasks)
        lines.append(f"| {label} | {s_value:.3f} | {mean(per_doc, tasks):.3f} | "
                     f"{_pts(d)} [{_pts(lo)}, {_pts(hi)}] |")
    lines.append("")
    marks = sorted({max(1, budget // 4), budget // 2, budget})
    lines += ["| optimizer | " + " | ".join(f"best after {m}" for m in marks)
              + " | per seed (best after all) |", "|---|" + "---|" * (len(marks) + 1)]
    means = {}
    for name, results in runs.items():
        at = [sum(r.curve[m - 1] for r in results) / len(results) for m in marks]
        means[name] = at[-1]
        lines.append(f"| {name} (mean of {len(results)}) | "
                     + " | ".join(f"{v:.3f}" for v in at) + " | "
                     + ", ".join(f"{r.best_search:.3f}" for r in results) + " |")
    lines += ["", f"- CMA-ES - random search, search split, mean over seeds: "
                  f"{_pts(means['cma'] - means['random'])} points."]
    return lines


def routing_report(zoo: Zoo, levels: Sequence[float], budget: int,
                   search_limit: int | None) -> list[str]:
    """Point 2: the routed recipe against its parents and weight merges, as markdown."""
    tasks = [TARGET]
    scorer = Scorer(zoo, [READER, SOLVER], tasks, {"search": search_limit, "test": None})
    sources = load_sources([str(zoo.experts[READER]), str(zoo.experts[SOLVER])])
    routed = build_routed(routed_recipe(zoo), sources)
    rows = [("base", scorer.recipe("task_arithmetic", {}))]
    rows += [(f"expert_{s}", scorer.recipe("task_arithmetic", {s: 1.0}))
             for s in (READER, SOLVER)]
    grid = [(scorer.recipe("task_arithmetic", dict(zip([READER, SOLVER], c))), c)
            for c in itertools.product(levels, repeat=2)]
    scored = [(mean(scorer.score(r, "search"), tasks), r, c) for r, c in grid]
    _, g_recipe, g_combo = max(scored, key=lambda t: t[0])
    rows.append((f"best task-arithmetic grid merge ({READER}, {SOLVER} = "
                 f"{', '.join(f'{w:g}' for w in g_combo)})", g_recipe))
    space = _bind(scorer)
    found = search(scorer, space, "cma", 0, budget, tasks)
    rows.append((f"best layer-wise merge (CMA-ES, {budget} evaluations)",
                 space.decode(found.best_x).recipe))
    rows.append((f"routed: {READER} layer 0, then {SOLVER} layers 0-"
                 f"{zoo.manifest['spec']['preset']['shape']['layers'] - 1}", routed))
    scores = {label: {split: scorer.score(m, split) for split in ("search", "test")}
              for label, m in rows}
    routed_test = scores[rows[-1][0]]["test"]
    lines = [f"Cross-skill target `{TARGET}` (`acc`; merges chosen on the search split):",
             "", "| model | search split | test split | routed - model, test (95% CI) |",
             "|---|---|---|---|"]
    for label, _ in rows:
        s = scores[label]
        d, lo, hi = paired_ci(routed_test, s["test"], tasks)
        lines.append(f"| {label} | {mean(s['search'], tasks):.3f} | "
                     f"{mean(s['test'], tasks):.3f} | {_pts(d)} [{_pts(lo)}, {_pts(hi)}] |")
    return lines


def report(zoo_dir: Path | str, levels: Sequence[float], densities: Sequence[float],
           budget: int, seeds: Sequence[int], search_limit: int | None,
           command: str) -> str:
    """The whole markdown report, under a line naming what it was measured on."""
    from evomerge.zoo.landscape_table import provenance

    zoo = load_zoo(zoo_dir)
    facts = provenance(zoo)
    start = time.perf_counter()
    with deterministic(seed=0, threads=1):
        body = layerwise_report(zoo, levels, densities, budget, seeds, search_limit)
        body += [""] + routing_report(zoo, levels, budget, search_limit)
    seconds = time.perf_counter() - start
    head = [
        "<!-- generated by the command named below: paste its output, do not edit -->",
        f"Measured {facts['date']} with `{command}` ({seconds:.0f} s): zoo spec "
        f"`{facts['spec_hash']}` (preset `{facts['preset']}`, seed {facts['seed']}; this "
        f"code builds spec `{facts['this_code_spec']}`), torch CPU kernels {facts['cpu']}, "
        f"Python {facts['python']}, evomerge {facts['evomerge']}, torch {facts['torch']}, "
        f"transformers {facts['transformers']}. Search split: the first "
        f"{search_limit or 'all'} documents per task (searches and grid choose there); "
        f"test split: all documents.", ""]
    return "\n".join(head + body) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m evomerge.zoo.proving", description=__doc__)
    p.add_argument("zoo", type=Path)
    p.add_argument("--levels", default="0,0.25,0.5,0.75,1")
    p.add_argument("--densities", default="0.5")
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--search-limit", type=int, default=50)
    a = p.parse_args(argv)
    command = "python -m evomerge.zoo.proving " + " ".join(
        argv if argv is not None else sys.argv[1:])
    print(report(a.zoo, [float(v) for v in a.levels.split(",")],
                 [float(v) for v in a.densities.split(",")], a.budget,
                 [int(v) for v in a.seeds.split(",")], a.search_limit, command), end="")


if __name__ == "__main__":
    main()
