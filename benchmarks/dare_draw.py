"""DARE's and DELLA's random draws and DARE's mask step: the ways compared, timed here.

Each table gives the median and the fastest of ``--rounds`` runs, the variants taking
turns in one process:

1. ``bytes``: DARE's random bytes on CPU (one byte per entry, ``--entries-drawn`` of
   them): the counter-based draw in use
   (:func:`~evomerge.merge.operators.random_drop.first_bytes`, a hash of the key and the
   position in numpy, two parts) against the draw it replaced (numpy SFC64 streams seeded
   from a ``torch.Generator``, one per half, copied into place a cache-sized chunk at a
   time; kept here only to time it) and torch's Mersenne Twister (``Tensor.random_``),
   the parts on a builder's pool (``MergeContext.each``: two threads) or one after
   another.
2. ``layers``: ``drop_random`` (l1 rescale, density 0.3: second bytes needed) over the
   tensors of ``--layers`` SmolLM2-135M decoder layers, DARE's byte draw swapped between
   the counter-based one and the SFC64 one: many mid-size tensors, mask step included.
3. ``della``: DELLA's uniforms on CPU: ``rank_uniforms`` (counter-based) against
   ``torch.rand`` with a generator (the draw it replaced).
4. ``mask``: one DARE mask step over a task vector (keep the entries whose random byte
   is below the level, measure the kept L1): the widening compare ``drop_random`` uses,
   against a bool mask with ``masked_fill_``, a multiply by a bool mask, and a uint8
   compare widened afterwards.
5. With ``--set``, whole dare_ties builds of a ``merge_throughput`` model set
   (``LiveMerger.build``, sources resident), DARE's byte draw swapped between the
   counter-based one and the SFC64 one, taking turns in one process.

    python benchmarks/dare_draw.py
    python benchmarks/dare_draw.py --only layers --torch-threads 1 --rounds 15
    python benchmarks/dare_draw.py --only bytes --set smollm2 --builds 9
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from evomerge.merge.engine import MergeContext
from evomerge.merge.operators import random_drop
from evomerge.merge.operators.seeding import DrawKey, next_key, tensor_seed
from evomerge.merge.operators.side_by_side import each as one_after_another

#: the thread pool a builder lends the operators (two threads here: DARE's two parts)
POOL = MergeContext()


def _median_times(variants: dict[str, Callable[[], object]],
                  rounds: int) -> dict[str, tuple[float, float]]:
    """(median, fastest) seconds of each variant; the fastest shows the cost on a
    machine that others keep busy, the median what a run there takes."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for name, fn in variants.items():  # warm-up: first touches, thread pool start
        fn()
    for _ in range(rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def _table(title: str, times: dict[str, tuple[float, float]], reference: str) -> None:
    print(f"\n{title}\n\n| variant | median s | vs {reference} | fastest s | vs |\n"
          "|---|---|---|---|---|")
    ref_median, ref_min = times[reference]
    for name, (median, fastest) in times.items():
        print(f"| {name} | {median:.4f} | {median / ref_median:.2f}x | {fastest:.4f} | "
              f"{fastest / ref_min:.2f}x |")


# --- the draw DARE used before the counter-based one, kept here to time it ---------------

#: 64-bit words an SFC64 stream drew per call
SFC64_DRAW_WORDS = 1 << 16
#: draws of at least this many 64-bit words were split into two streams on two threads
SFC64_PARALLEL_WORDS = 1 << 16


def sfc64_fill(words: torch.Tensor, seed: int) -> None:
    """Fill ``words`` (CPU int64) with uniform bits from an SFC64 stream seeded ``seed``."""
    bits = np.random.SFC64(seed)
    out = words.numpy().view(np.uint64)
    for start in range(0, out.size, SFC64_DRAW_WORDS):
        stop = min(out.size, start + SFC64_DRAW_WORDS)
        out[start:stop] = bits.random_raw(stop - start)


def sfc64_lanes(numel: int, generator: torch.Generator, words: torch.Tensor,
                run=POOL.each) -> torch.Tensor:
    """The replaced CPU draw: two SFC64 streams seeded from ``generator`` for a long
    draw, one per half of ``words``, run side by side by ``run``."""
    count = 1 if words.numel() < SFC64_PARALLEL_WORDS else 2
    seeds = torch.randint(0, 1 << 62, (count,), generator=generator).tolist()
    if count == 1:  # on the calling thread
        sfc64_fill(words, seeds[0])
    else:
        run(sfc64_fill, words.tensor_split(count), seeds)
    return words.view(torch.uint8)[:numel]


def _torch_fill(words: torch.Tensor, seed: int) -> None:
    words.random_(-(1 << 63), None, generator=torch.Generator().manual_seed(seed))


def draw_table(numel: int, rounds: int) -> None:
    words = torch.zeros(random_drop.lane_words(numel), dtype=torch.int64)
    halves = words.tensor_split(2)
    key = next_key(tensor_seed(1, "bench"))
    old = "numpy SFC64, 2 streams on 2 threads (replaced)"
    _table(f"DARE's random bytes for {numel / 1e6:.0f}M entries", _median_times({
        old: lambda: sfc64_lanes(numel, torch.Generator().manual_seed(1), words),
        "counter hash, 2 parts on 2 threads (in use)":
            lambda: random_drop.first_bytes(key, numel, words=words, each=POOL.each),
        "numpy SFC64, 2 streams on 1 thread": lambda: sfc64_lanes(
            numel, torch.Generator().manual_seed(1), words, one_after_another),
        "counter hash, 2 parts on 1 thread": lambda: random_drop.first_bytes(
            key, numel, words=words, each=one_after_another),
        "torch Mersenne Twister, 2 threads": lambda: POOL.each(_torch_fill, halves, [1, 2]),
    }, rounds), old)


#: one SmolLM2-135M decoder layer's weight shapes (q, k, v, o, gate, up, down, a norm)
SMOLLM2_LAYER = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576),
                 (576, 1536), (576,)]


def sfc64_first_bytes(key: DrawKey, numel: int, device="cpu", words=None, *,
                      each=POOL.each) -> torch.Tensor:
    """``random_drop.first_bytes`` with the replaced draw, for swapping in."""
    if words is None:
        words = torch.empty(random_drop.lane_words(numel), dtype=torch.int64)
    return sfc64_lanes(numel, torch.Generator().manual_seed(key.value), words, each)


def with_first_bytes(first_bytes, fn: Callable[[], float]) -> Callable[[], float]:
    """``fn`` run with DARE's byte draw swapped for ``first_bytes`` (the tied entries'
    second bytes stay counter-based: one entry in 256)."""
    def run() -> float:
        in_use = random_drop.first_bytes
        random_drop.first_bytes = first_bytes
        try:
            return fn()
        finally:
            random_drop.first_bytes = in_use
    return run


def layers_table(layers: int, rounds: int) -> None:
    g = torch.Generator().manual_seed(0)
    taus = [torch.randn(shape, generator=g) * 0.01 for shape in SMOLLM2_LAYER * layers]

    def sparsify_all() -> None:
        for i, tau in enumerate(taus):
            random_drop.drop_random(tau, 0.3, tensor_seed(0, str(i)), "l1", each=POOL.each)

    old = "numpy SFC64 draw (replaced)"
    _table(f"drop_random over {layers} SmolLM2-135M layers' tensors ({len(taus)} calls)",
           _median_times({
               old: with_first_bytes(sfc64_first_bytes, sparsify_all),
               "counter-hash draw (in use)": sparsify_all,
           }, rounds), old)


def della_table(shape: tuple[int, int], rounds: int) -> None:
    key = next_key(tensor_seed(2, "bench"))
    numel = shape[0] * shape[1]
    old = "torch.rand with a generator (replaced)"
    _table(f"DELLA's uniforms for a {shape[0]}x{shape[1]} tensor", _median_times({
        old: lambda: torch.rand(shape, generator=torch.Generator().manual_seed(2)),
        "counter hash, rank_uniforms on 2 threads (in use)":
            lambda: random_drop.rank_uniforms(key, numel, each=POOL.each),
    }, rounds), old)


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

    def build_once() -> float:
        return merger.build(build, live)

    old = "numpy SFC64 draw (replaced)"
    _table(f"dare_ties in-memory builds of {name}, {builds} each", _median_times({
        old: with_first_bytes(sfc64_first_bytes, build_once),
        "counter-hash draw (in use)": build_once,
    }, builds), old)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries-drawn", type=int, default=256 << 20,
                    help="entries (bytes) per DARE draw")
    ap.add_argument("--layers", type=int, default=8, help="SmolLM2 layers sparsified")
    ap.add_argument("--della-shape", type=int, nargs=2, default=(4096, 4096))
    ap.add_argument("--entries", type=int, default=64 << 20, help="entries per mask walk")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--set", help="also time whole builds of this merge_throughput set")
    ap.add_argument("--builds", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path("runs/bench_merge"))
    ap.add_argument("--torch-threads", type=int,
                    help="torch's intra-op threads (default: torch's own choice)")
    ap.add_argument("--only", choices=["bytes", "layers", "della", "mask"],
                    help="run this table alone (and the builds with --set)")
    args = ap.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    print(f"torch {torch.__version__}, numpy {np.__version__}, "
          f"threads {torch.get_num_threads()}")
    tables = {"bytes": lambda: draw_table(args.entries_drawn, args.rounds),
              "layers": lambda: layers_table(args.layers, args.rounds),
              "della": lambda: della_table(tuple(args.della_shape), args.rounds),
              "mask": lambda: mask_table(args.entries, args.rounds)}
    for name, table in tables.items():
        if args.only in (None, name):
            table()
    if args.set:
        build_table(args.set, args.work, args.builds)


if __name__ == "__main__":
    main()
