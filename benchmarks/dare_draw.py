"""DARE's random draw and mask step: the ways compared, timed on this machine.

Three tables, each a median over ``--rounds``, the variants taking turns:

1. Drawing random 64-bit words on CPU: torch's Mersenne Twister (``Tensor.random_``)
   against numpy's SFC64 as :func:`~evomerge.merge.operators.random_drop.uniform_lanes`
   draws them (cache-sized chunks copied into place), on one thread and on two.
2. One DARE mask step over a task vector (keep the entries whose random byte is below
   the level, measure the kept L1): the widening compare ``drop_random`` uses, against
   a bool mask with ``masked_fill_``, a multiply by a bool mask, and a uint8 compare
   widened afterwards.
3. With ``--set``, whole dare_ties builds of a ``merge_throughput`` model set
   (``LiveMerger.build``, sources resident), the draw swapped between torch's generator
   and the one in use, taking turns in one process.

    python benchmarks/dare_draw.py
    python benchmarks/dare_draw.py --set smollm2 --builds 9
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from evomerge.merge.operators import random_drop
from evomerge.merge.operators.side_by_side import each


def _median_times(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for name, fn in variants.items():  # warm-up: first touches, thread pool start
        fn()
    for _ in range(rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _table(title: str, medians: dict[str, float], reference: str) -> None:
    print(f"\n{title}\n\n| variant | median s | vs {reference} |\n|---|---|---|")
    for name, t in medians.items():
        print(f"| {name} | {t:.3f} | {t / medians[reference]:.2f}x |")


def _torch_fill(words: torch.Tensor, seed: int) -> None:
    words.random_(-(1 << 63), None, generator=torch.Generator().manual_seed(seed))


def draw_table(words: int, rounds: int) -> None:
    buffer = torch.zeros(words, dtype=torch.int64)
    halves = buffer.tensor_split(2)
    _table(f"Drawing {words / 1e6:.0f}M random 64-bit words", _median_times({
        "torch Mersenne Twister, 1 thread": lambda: _torch_fill(buffer, 1),
        "numpy SFC64, 1 thread": lambda: random_drop._fill_from_stream(buffer, 1),
        "torch Mersenne Twister, 2 threads": lambda: each(_torch_fill, halves, [1, 2]),
        "numpy SFC64, 2 threads": lambda: each(random_drop._fill_from_stream, halves, [1, 2]),
    }, rounds), "torch Mersenne Twister, 1 thread")


def mask_table(numel: int, rounds: int) -> None:
    tau, kept = torch.randn(numel), torch.empty(numel)
    lanes = torch.randint(0, 256, (numel,), dtype=torch.uint8)
    step, high = 1 << 18, 128
    scratch, keep = torch.empty(step), torch.empty(step, dtype=torch.bool)

    def walk(make: Callable[[slice, torch.Tensor], None]) -> Callable[[], float]:
        def run() -> float:
            total = torch.zeros((), dtype=torch.float64)
            for start in range(0, numel, step):
                part = slice(start, start + step)
                out = kept[part]
                make(part, out)
                total += torch.abs(out, out=scratch[:out.numel()]).sum()
            return float(total)
        return run

    def widening(part, out):  # what drop_random does
        torch.lt(out.copy_(lanes[part]), high, out=out)
        out.mul_(tau[part])

    def masked_fill(part, out):
        torch.ge(lanes[part], high, out=keep[:out.numel()])
        out.copy_(tau[part]).masked_fill_(keep[:out.numel()], 0)

    def bool_multiply(part, out):
        torch.lt(lanes[part], high, out=keep[:out.numel()])
        torch.mul(tau[part], keep[:out.numel()], out=out)

    def byte_compare_then_widen(part, out):
        torch.lt(lanes[part], high, out=keep[:out.numel()])
        out.copy_(keep[:out.numel()].view(torch.uint8)).mul_(tau[part])

    _table(f"One DARE mask step over {numel / 1e6:.0f}M entries (kept L1 included)",
           _median_times({
               "widening compare (in use)": walk(widening),
               "bool mask, masked_fill_": walk(masked_fill),
               "multiply by a bool mask": walk(bool_multiply),
               "uint8 compare, then widen": walk(byte_compare_then_widen),
           }, rounds), "widening compare (in use)")


def build_table(name: str, work: Path, builds: int) -> None:
    from evomerge.merge.live import LiveMerger
    from evomerge.merge.recipe import load_recipe_dict
    from merge_throughput import prepare, recipe

    base, experts = prepare(name, work)
    cfg = recipe("dare_ties", base, experts)
    print(f"\nloading {name} ...", flush=True)
    merger = LiveMerger(experts, base=str(base))
    live = merger.new_model()
    build = load_recipe_dict(cfg)
    in_use = random_drop._fill_from_stream

    def with_draw(fill) -> Callable[[], float]:
        # swaps the per-stream fill only: the split into streams stays the one in use
        def run() -> float:
            random_drop._fill_from_stream = fill
            try:
                return merger.build(build, live)
            finally:
                random_drop._fill_from_stream = in_use
        return run

    _table(f"dare_ties in-memory builds of {name}, {builds} each", _median_times({
        "numpy SFC64 draw (in use)": with_draw(in_use),
        "torch Mersenne Twister draw": with_draw(_torch_fill),
    }, builds), "torch Mersenne Twister draw")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--words", type=int, default=62_000_000, help="words per draw")
    ap.add_argument("--entries", type=int, default=64 << 20, help="entries per mask walk")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--set", help="also time whole builds of this merge_throughput set")
    ap.add_argument("--builds", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path("runs/bench_merge"))
    args = ap.parse_args()
    print(f"torch {torch.__version__}, numpy {np.__version__}, "
          f"threads {torch.get_num_threads()}")
    draw_table(args.words, args.rounds)
    mask_table(args.entries, args.rounds)
    if args.set:
        build_table(args.set, args.work, args.builds)


if __name__ == "__main__":
    main()
