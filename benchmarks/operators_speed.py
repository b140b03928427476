"""Merge operators on every tensor of a SmolLM2-135M-shaped model: fast vs. their formulas.

For each method, the time to merge all tensors of the model from three random task
vectors (the base for slerp) with the registered operator, all tensors sharing one
MergeContext as a builder's do, against the method's formula in plain torch
(``evomerge.merge.operators.reference``: stable sorts for the trims, stacked tensors,
masks drawn as ``torch.rand < p``), and the ratio. Both sides get identical inputs; the
formula is checked against the operator on one tensor first (random methods given the
operator's own masks).

    python benchmarks/operators_speed.py                 # all methods, 2 threads
    python benchmarks/operators_speed.py --methods ties dare_ties --layers 4

Tensors of one shape share the same random task vectors (one set per distinct shape), so
memory stays near 0.5 GB while every tensor of the model is merged.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from evomerge.merge.engine import MergeContext
from evomerge.merge.operators import OPERATORS, reference, tensor_generator
from evomerge.merge.operators.random_drop import drop_by_rank, drop_random

# SmolLM2-135M: hidden 576, MLP 1536, 30 layers, 9 heads / 3 KV heads, vocab 49152, tied head
SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                    num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                    tie_word_embeddings=True)

PARAMS = {
    "linear": {"weight": [0.5, 0.3, 0.2]},
    "task_arithmetic": {"weight": [0.5, 0.3, 0.2]},
    "ties": {"weight": [0.5, 0.3, 0.2], "density": [0.3, 0.5, 0.7]},
    "dare_linear": {"weight": [0.5, 0.3, 0.2], "density": [0.3, 0.5, 0.7]},
    "dare_ties": {"weight": [0.5, 0.3, 0.2], "density": [0.3, 0.5, 0.7]},
    "breadcrumbs": {"weight": [0.5, 0.3, 0.2], "density": 0.6, "gamma": 0.05},
    "breadcrumbs_ties": {"weight": [0.5, 0.3, 0.2], "density": 0.6, "gamma": 0.05},
    "della_linear": {"weight": [0.5, 0.3, 0.2], "density": 0.5, "epsilon": 0.2},
    "della": {"weight": [0.5, 0.3, 0.2], "density": 0.5, "epsilon": 0.2},
    "slerp": {"t": 0.3},
    "model_stock": {},
    "passthrough": {},
}


def model_shapes(layers: int | None) -> list[tuple[str, torch.Size]]:
    """(name, shape) of every tensor of the model, without allocating it."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = dict(SMOLLM2_135M)
    if layers is not None:
        config["num_hidden_layers"] = layers
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**config))
    return [(name, p.shape) for name, p in model.named_parameters()]


# --- the formula side: each method's formula (operators/reference.py), one tensor at a time

def drawn_masks(method, tensors, p, generator):
    """Keep masks drawn the obvious way (``torch.rand < p``), for the random methods."""
    if method.startswith("dare"):
        return [torch.rand(t.shape, generator=generator) < d
                for t, d in zip(tensors, p["density"])]
    if method.startswith("della"):
        return [torch.rand(t.shape, generator=generator)
                < reference.magprune_probabilities(t, d, e)
                for t, d, e in zip(tensors, p["density"], p["epsilon"])]
    return None


def formula(method, tensors, p, generator):
    return reference.merge(method, tensors, p, drawn_masks(method, tensors, p, generator))


# --- timing ----------------------------------------------------------------------

def inputs_by_shape(shapes, n_inputs: int) -> dict[torch.Size, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return {shape: [torch.randn(shape, generator=g) * 0.01 for _ in range(n_inputs)]
            for shape in {s for _, s in shapes}}


def run(method, shapes, inputs, use_reference: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) to merge every tensor once."""
    op = OPERATORS.get(method)
    start, cpu = time.perf_counter(), time.process_time()
    with MergeContext() as ctx:
        for name, shape in shapes:
            tensors = inputs[shape][:op.max_models or 3]
            params = op.resolve_params(PARAMS[method], len(tensors))
            generator = tensor_generator(0, name) if op.random else None
            if use_reference:
                formula(method, tensors, params, generator)
            else:
                op(tensors, params, generator=generator, ctx=ctx)
    return time.perf_counter() - start, time.process_time() - cpu


def operator_masks(method, tensors, p, seed):
    """The masks the operator draws from ``tensor_generator(0, seed)``."""
    generator = tensor_generator(0, seed)
    if method.startswith("dare"):
        return [drop_random(t, d, generator, "none").materialize() != 0
                for t, d in zip(tensors, p["density"])]
    return [drop_by_rank(t, d, e, generator, "none").materialize() != 0
            for t, d, e in zip(tensors, p["density"], p["epsilon"])]


def check_agreement(method, inputs) -> str:
    """Formula and operator agree on one mid-sized tensor (random methods given the
    operator's masks; the formula in float64)."""
    op = OPERATORS.get(method)
    shape = max((s for s in inputs if len(s) == 2 and s.numel() < 4_000_000),
                key=lambda s: s.numel())
    tensors = inputs[shape][:op.max_models or 3]
    params = op.resolve_params(PARAMS[method], len(tensors))
    fast = op(tensors, params, generator=tensor_generator(0, "check"))
    masks = operator_masks(method, tensors, params, "check") if op.random else None
    ref = reference.merge(method, [t.double() for t in tensors], params, masks)
    # in units of the inputs' scale: a result near zero (Model Stock's ratio when the
    # cosines cancel) is only as exact as the sums it comes from
    scale = max([ref.abs().max().item()] + [t.abs().max().item() for t in tensors])
    err = (fast - ref).abs().max().item() / max(scale, 1e-30)
    if not err < 1e-5:
        raise AssertionError(f"{method}: operator and formula differ (rel. {err:.2e})")
    return f"max rel. diff {err:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=list(PARAMS))
    parser.add_argument("--layers", type=int, default=None, help="fewer layers (quick run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="best of this many")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shapes = model_shapes(args.layers)
    numel = sum(math.prod(s) for _, s in shapes)
    inputs = inputs_by_shape(shapes, 3)
    print(f"{len(shapes)} tensors, {numel / 1e6:.1f}M parameters, 3 task vectors, "
          f"{args.threads} thread(s), best of {args.repeats}")
    print("wall: elapsed seconds; cpu: CPU seconds of all threads (steadier on a busy host)")
    print(f"{'method':<18}{'fast wall':>10}{'formula wall':>13}{'ratio':>7}"
          f"{'fast cpu':>10}{'formula cpu':>12}{'ratio':>7}  check")
    for method in args.methods:
        agreement = check_agreement(method, inputs)
        fast = [run(method, shapes, inputs, False) for _ in range(args.repeats)]
        naive = [run(method, shapes, inputs, True) for _ in range(args.repeats)]
        (fw, fc), (nw, nc) = min(fast), min(naive)
        print(f"{method:<18}{fw:>10.2f}{nw:>13.2f}{nw / fw:>6.1f}x"
              f"{fc:>10.2f}{nc:>12.2f}{nc / fc:>6.1f}x  {agreement}", flush=True)


if __name__ == "__main__":
    main()
