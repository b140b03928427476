"""Merge operators on every tensor of a SmolLM2-135M-shaped model: fast vs. a naive loop.

For each method, the time to merge all tensors of the model from three random task
vectors (the base for slerp) with the registered operator, against a plain per-tensor
reference written the obvious way (``torch.kthvalue`` for the top-k threshold,
``torch.bernoulli`` masks, stacked tensors, argsort ranks), and the ratio.
Both sides get identical inputs; the reference is checked against the operator on one
tensor first (exactly for deterministic methods, in kept fraction for random ones).

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

from evomerge.merge.operators import OPERATORS, tensor_generator

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


# --- the naive reference: one tensor at a time, written the obvious way -------------

def ref_trim(tau, density):
    if density >= 1:
        return tau
    k = max(1, int(density * tau.numel()))
    mags = tau.abs().reshape(-1)
    threshold = torch.kthvalue(mags, mags.numel() - k + 1).values
    return tau * (tau.abs() >= threshold)


def ref_outliers(tau, density, gamma):
    n = tau.numel()
    keep, top = int(density * n), int(gamma * n)
    bottom = max(0, n - keep - top)
    order = torch.argsort(tau.abs().reshape(-1))
    mask = torch.zeros(n)
    mask[order[bottom:bottom + keep]] = 1
    return tau * mask.view(tau.shape)


def ref_l1(tau, kept):
    before, after = tau.abs().sum(), kept.abs().sum()
    return kept if before < 1e-7 or after < 1e-7 else kept * (before / after)


def ref_dare(tau, density, generator):
    mask = torch.bernoulli(torch.full_like(tau, density), generator=generator)
    return ref_l1(tau, tau * mask)


def ref_della(tau, density, epsilon, generator):
    ranks = torch.argsort(torch.argsort(tau.abs(), dim=-1), dim=-1).float()
    share = ranks / max(1, tau.shape[-1] - 1)
    probs = density - epsilon + 2 * epsilon * share
    return ref_l1(tau, tau * torch.bernoulli(probs, generator=generator))


def ref_combine(deltas, weights, consensus, normalize):
    d = torch.stack(deltas) * torch.tensor(weights).view(-1, *[1] * deltas[0].dim())
    w = torch.tensor(weights).view(-1, *[1] * deltas[0].dim())
    if consensus:
        majority = torch.where(d.sum(0) >= 0, 1.0, -1.0)
        mask = d.sign() == majority
        merged, divisor = (d * mask).sum(0), (w * mask).sum(0)
        divisor[divisor == 0] = 1
    else:
        merged, divisor = d.sum(0), w.sum(0)
    return merged / divisor if normalize else merged


def ref_slerp(t, a, b):
    a32, b32 = a.reshape(-1), b.reshape(-1)
    dot = ((a32 / a32.norm()) * (b32 / b32.norm())).sum().clamp(-1, 1)
    if dot.abs() > 0.9995:
        return (1 - t) * a + t * b
    theta = torch.acos(dot)
    return (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / torch.sin(theta)


def ref_model_stock(taus):
    flat = [t.reshape(-1) for t in taus]
    cos = torch.stack([(a @ b) / (a.norm() * b.norm()).clamp(min=1e-6)
                       for i, a in enumerate(flat) for b in flat[i + 1:]]).mean()
    k = len(taus)
    return k * cos / (1 + (k - 1) * cos) * (sum(taus) / k)


def reference(method, tensors, p, generator):
    w = p.get("weight")
    if method == "linear":
        return ref_combine(tensors, w, False, True)
    if method == "task_arithmetic":
        return ref_combine(tensors, w, False, False)
    if method in ("ties", "dare_ties", "dare_linear", "della", "della_linear",
                  "breadcrumbs", "breadcrumbs_ties"):
        if method == "ties":
            kept = [ref_trim(t, d) for t, d in zip(tensors, p["density"])]
        elif method.startswith("dare"):
            kept = [ref_dare(t, d, generator) for t, d in zip(tensors, p["density"])]
        elif method.startswith("della"):
            kept = [ref_della(t, d, e, generator)
                    for t, d, e in zip(tensors, p["density"], p["epsilon"])]
        else:
            kept = [ref_outliers(t, d, g) for t, d, g in zip(tensors, p["density"], p["gamma"])]
        return ref_combine(kept, w, not method.endswith(("linear", "breadcrumbs")),
                           p["normalize"])
    if method == "slerp":
        return ref_slerp(p["t"], *tensors)
    if method == "model_stock":
        return ref_model_stock(tensors)
    if method == "passthrough":
        return tensors[0] * p["scale"][0]
    raise ValueError(method)


# --- timing ----------------------------------------------------------------------

def inputs_by_shape(shapes, n_inputs: int) -> dict[torch.Size, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return {shape: [torch.randn(shape, generator=g) * 0.01 for _ in range(n_inputs)]
            for shape in {s for _, s in shapes}}


def run(method, shapes, inputs, use_reference: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) to merge every tensor once."""
    op = OPERATORS.get(method)
    start, cpu = time.perf_counter(), time.process_time()
    for name, shape in shapes:
        tensors = inputs[shape][:op.max_models or 3]
        params = op.resolve_params(PARAMS[method], len(tensors))
        generator = tensor_generator(0, name) if op.random else None
        if use_reference:
            reference(method, tensors, params, generator)
        else:
            op(tensors, params, generator=generator)
    return time.perf_counter() - start, time.process_time() - cpu


def check_agreement(method, inputs) -> str:
    """Reference and operator agree on one mid-sized tensor."""
    op = OPERATORS.get(method)
    shape = max((s for s in inputs if len(s) == 2 and s.numel() < 4_000_000),
                key=lambda s: s.numel())
    tensors = inputs[shape][:op.max_models or 3]
    params = op.resolve_params(PARAMS[method], len(tensors))
    fast = op(tensors, params, generator=tensor_generator(0, "check"))
    ref = reference(method, tensors, params, tensor_generator(0, "check"))
    if op.random:  # different draws: compare the kept fraction
        kept_fast, kept_ref = (fast != 0).float().mean(), (ref != 0).float().mean()
        return f"kept {kept_fast:.3f} vs {kept_ref:.3f}"
    err = (fast - ref).abs().max().item() / max(ref.abs().max().item(), 1e-30)
    if not err < 1e-5:
        raise AssertionError(f"{method}: operator and reference differ (rel. {err:.2e})")
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
    print(f"{'method':<18}{'fast wall':>10}{'naive wall':>11}{'ratio':>7}"
          f"{'fast cpu':>10}{'naive cpu':>10}{'ratio':>7}  check")
    for method in args.methods:
        agreement = check_agreement(method, inputs)
        fast = [run(method, shapes, inputs, False) for _ in range(args.repeats)]
        naive = [run(method, shapes, inputs, True) for _ in range(args.repeats)]
        (fw, fc), (nw, nc) = min(fast), min(naive)
        print(f"{method:<18}{fw:>10.2f}{nw:>11.2f}{nw / fw:>6.1f}x"
              f"{fc:>10.2f}{nc:>10.2f}{nc / fc:>6.1f}x  {agreement}", flush=True)


if __name__ == "__main__":
    main()
