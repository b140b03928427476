"""Routed candidates: the time to build one against the time to evaluate it, beside
parameter-space candidates of the same two models.

A worker loads its sources once. A routed candidate is built from shallow copies of
the sources' layers (``build_routed(recipe, sources, into=previous)``: no layer weight
is copied, which the script checks); a parameter-space candidate writes merged weights
into one live model (``LiveMerger.build``). Every candidate is scored by the lm-eval
adapter on the tests' tiny local tasks (``tests/evaluate/data``: 20 one-digit sums,
multiple choice; 20 words to copy, greedy generation). Target (issue 18): a routed
candidate's build under 5% of its evaluation time on SmolLM2-135M.

Candidates are seeded random points of ``search_spaces/dataflow_compact.yaml`` (routed,
about half the slots on: paths of about 1.25x the three-model-deep stack) and of
``search_spaces/dare_ties_layerwise.yaml`` (the first model as base, the second as its
source). Medians are over the candidates after the first (the first also builds the
evaluator's requests).

Run from the repository root::

    evomerge zoo import-gguf runs/smollm2 --experts 2      # once: SmolLM2-135M + experts
    python benchmarks/routed_candidate.py --models runs/smollm2/model runs/smollm2/expert_0
    python benchmarks/routed_candidate.py --tiny            # two random tiny Llamas
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
TASKS = ["evomerge_tiny_mc", "evomerge_tiny_gen"]
TARGET = 0.05


def evaluator(batch_size: int):
    from evomerge.evaluate import LmEvalConfig, LmEvalEvaluator, TaskConfig

    return LmEvalEvaluator(LmEvalConfig(include_paths=["tests/evaluate/data"],
                                        batch_size=batch_size,
                                        search_tasks=[TaskConfig(name=t) for t in TASKS]))


def points(bound, n: int, seed: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [rng.random(bound.dim).tolist() for _ in range(n)]


def run_routed(models, n, seed, batch_size, tokenizer):
    from evomerge.merge.routed_model import build_routed, load_sources
    from evomerge.space import load_space

    sources = load_sources(models)
    source_weights = {p.data_ptr() for m in sources.values() for p in m.parameters()}
    bound = load_space(REPO / "search_spaces/dataflow_compact.yaml").bind(None, models)
    scorer, model, rows = evaluator(batch_size), None, []
    for x in points(bound, n, seed):
        recipe = bound.decode(x).recipe
        start = time.perf_counter()
        model = build_routed(recipe, sources, into=model)
        build_s = time.perf_counter() - start
        hop_weights = {p.data_ptr() for hop in model.model.layers
                       for p in hop.layer.parameters()}
        assert hop_weights <= source_weights, "a hop holds weights of its own"
        fitness = scorer.evaluate(model, tokenizer)
        assert fitness.is_ok, fitness.error
        rows.append((len(recipe.routing.path), build_s, fitness.timings["eval_s"]))
    return rows


def run_parameter_space(models, n, seed, batch_size, tokenizer):
    from evomerge.merge.live import LiveMerger
    from evomerge.space import load_space

    base, source = models
    merger = LiveMerger([source], base=base)
    live = merger.new_model()
    bound = load_space(REPO / "search_spaces/dare_ties_layerwise.yaml").bind(base, [source])
    scorer, rows = evaluator(batch_size), []
    for x in points(bound, n, seed):
        build_s = merger.build(bound.decode(x).recipe, live)
        fitness = scorer.evaluate(live, tokenizer)
        assert fitness.is_ok, fitness.error
        rows.append((live.config.num_hidden_layers, build_s, fitness.timings["eval_s"]))
    merger.close()
    return rows


def summary(kind: str, rows) -> dict:
    later = rows[1:] or rows
    build = statistics.median(b for _, b, _ in later)
    evaluate = statistics.median(e for _, _, e in later)
    return {"kind": kind, "n": len(rows), "layers": statistics.median(k for k, _, _ in later),
            "build_s": build, "eval_s": evaluate,
            "share": statistics.median(b / e for _, b, e in later)}


def print_table(name: str, rows: list[dict]) -> None:
    head = (f"{'models':10} {'candidate':16} {'N':>3} {'layers':>6} {'build s':>9} "
            f"{'eval s':>8} {'build/eval':>10}  target<5% (routed)")
    print(head)
    print("-" * len(head))
    for r in rows:
        verdict = ("met" if r["share"] < TARGET else "NOT met") if r["kind"] == "routed" else ""
        print(f"{name:10} {r['kind']:16} {r['n']:>3} {r['layers']:>6.0f} {r['build_s']:>9.5f} "
              f"{r['eval_s']:>8.3f} {r['share']:>9.3%}  {verdict}")
    print("\nlayers: decoder layers run per token (a routed candidate: its path's hops); "
          "build s, eval s: medians over the candidates after the first; build/eval: the "
          "median of each candidate's ratio.")


def tiny_models(tmp: Path) -> list[str]:
    from evomerge.testing.random_models import save_random_llama

    return [str(save_random_llama(tmp / name, seed=seed, num_layers=4))
            for seed, name in enumerate(["a", "b"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs=2, metavar="DIR",
                        help="two model folders of one architecture (the first frames "
                             "the routed paths and is the parameter-space base)")
    parser.add_argument("--tiny", action="store_true", help="two random tiny Llamas")
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if bool(args.models) == args.tiny:
        parser.error("give --models DIR DIR or --tiny")
    torch.set_num_threads(args.threads)
    os.chdir(REPO)  # the task YAMLs name their data files relative to the repository root
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        models = tiny_models(Path(tmp)) if args.tiny else [str(Path(m).resolve())
                                                           for m in args.models]
        tokenizer = AutoTokenizer.from_pretrained(models[0])
        rows = [summary("routed", run_routed(models, args.candidates, args.seed,
                                             args.batch_size, tokenizer)),
                summary("parameter space", run_parameter_space(
                    models, args.candidates, args.seed, args.batch_size, tokenizer))]
    print_table("tiny" if args.tiny else Path(models[0]).parent.name, rows)


if __name__ == "__main__":
    main()
