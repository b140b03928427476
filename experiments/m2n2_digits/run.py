"""M2N2 on sklearn's 8x8 digits: from scratch (vs. diagonal CMA-ES) and from two experts.

Reproduces the small-scale experiments of Abrantes, Lange, Tang (2025), "Competition
and Attraction Improve Model Fusion", through evomerge's M2N2 optimizer and its
ask/tell protocol (one child per step, per-sample correctness as Fitness.sample_scores).

    python experiments/m2n2_digits/run.py --mode scratch --evals 50000 --seeds 0 1 2
    python experiments/m2n2_digits/run.py --mode scratch --method cmaes --seeds 0 1 2
    python experiments/m2n2_digits/run.py --mode scratch --method cmaes --cma-sigma tpa
    python experiments/m2n2_digits/run.py --mode experts --evals 10000 --ablation ga
    python experiments/m2n2_digits/run.py --mode experts --method slerp-grid

Every run reports the test accuracy of the network with the best training accuracy
(M2N2: the archive member with the best raw training score; CMA-ES: the best point it
evaluated; SLERP grid: the best of 10,000 evenly spaced weights). Seeds run one after
the other on one thread: the machine this was written on is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

# one thread per library, set before numpy and torch load them: the machine is shared,
# and threaded BLAS calls on 19,210-entry vectors spend more time waking threads than working
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits import MLP, N_PARAMS, load_split, train_expert  # noqa: E402

from evomerge.optim.m2n2 import M2N2, candidate_vector  # noqa: E402
from evomerge.optim.m2n2_crossover import split_point_slerp  # noqa: E402

ABLATIONS: dict[str, dict[str, Any]] = {
    "none": {},
    "no-attraction": {"attraction": False},
    "no-split-point": {"split_point": False},
    # the released code's GA: no resource sharing, and no attraction either (with
    # alpha = 0 there is no scarcity for attraction to weigh)
    "ga": {"alpha": 0.0, "attraction": False},
}
DEFAULT_EVALS = {"scratch": 50_000, "experts": 10_000}


def experts(x: torch.Tensor, y: torch.Tensor, seed: int, lr: float) -> list[np.ndarray]:
    """Two networks pre-trained on the training images of digits 0-4 and 5-9."""
    low = y < 5
    return [train_expert(x[low], y[low], seed, lr=lr),
            train_expert(x[~low], y[~low], seed + 1, lr=lr)]


def run_m2n2(train: MLP, test: MLP, evals: int, seed: int, options: dict[str, Any],
             log_every: int) -> dict[str, Any]:
    opt = M2N2(N_PARAMS, seed=seed, **options)
    curve = []
    for i in range(1, evals + 1):
        (cand,) = opt.ask(1)
        opt.tell([(cand, train.fitness(candidate_vector(cand)))])
        if i % log_every == 0 or i == evals:
            best = candidate_vector(opt.best().candidate)
            curve.append({"evals": i, "train_accuracy": train.accuracy(best),
                          "test_accuracy": test.accuracy(best)})
            print(f"  seed {seed} evals {i}: train {curve[-1]['train_accuracy']:.4f} "
                  f"test {curve[-1]['test_accuracy']:.4f}", flush=True)
    return {"train_accuracy": curve[-1]["train_accuracy"],
            "test_accuracy": curve[-1]["test_accuracy"], "curve": curve}


def run_cmaes(train: MLP, test: MLP, evals: int, seed: int, popsize: int,
              log_every: int, sigma_rule: str) -> dict[str, Any]:
    """pycma in separable (diagonal) mode: a full 19,210^2 covariance does not fit here.

    ``sigma_rule`` picks the step-size adaptation: pycma's own choice at this dimension
    is TPA ("tpa"), whose step size collapses on the plateaus of an accuracy fitness;
    "csa" is cumulative step-size adaptation, pycma's rule below 300 dimensions.
    """
    import cma  # only this baseline needs it

    rules = {"tpa": cma.sigma_adaptation.CMAAdaptSigmaTPA,
             "csa": cma.sigma_adaptation.CMAAdaptSigmaCSA}
    x0 = np.random.default_rng(seed).standard_normal(N_PARAMS) * 0.01
    es = cma.CMAEvolutionStrategy(x0, 0.01, {
        "popsize": popsize, "seed": seed + 1,  # pycma treats seed 0 as "from the clock"
        "CMA_diagonal": True, "AdaptSigma": rules[sigma_rule], "verbose": -9})
    curve, done = [], 0
    # like the released baseline, run the whole budget whatever pycma's stop rules say
    while done + popsize <= evals:
        solutions = es.ask()
        # pycma checks its mirrored samples on tell: give back exactly what it asked
        losses = -train.accuracies(np.asarray(solutions, dtype=np.float32))
        es.tell(solutions, losses.tolist())
        done += popsize
        if done % log_every < popsize or done + popsize > evals:
            best = np.asarray(es.result.xbest, dtype=np.float32)
            curve.append({"evals": done, "train_accuracy": -float(es.result.fbest),
                          "test_accuracy": test.accuracy(best)})
            print(f"  seed {seed} evals {done}: train {curve[-1]['train_accuracy']:.4f} "
                  f"test {curve[-1]['test_accuracy']:.4f}", flush=True)
    return {"train_accuracy": curve[-1]["train_accuracy"],
            "test_accuracy": curve[-1]["test_accuracy"], "curve": curve}


def run_slerp_grid(train: MLP, test: MLP, pair: list[np.ndarray],
                   points: int = 10_000) -> dict[str, Any]:
    """The best single SLERP weight between the two experts, chosen on training data."""
    weights = np.linspace(0.0, 1.0, points)
    merged = np.stack([split_point_slerp(pair[0], pair[1], N_PARAMS, float(w))
                       for w in weights])
    train_acc = train.accuracies(merged)
    best = int(np.argmax(train_acc))
    return {"w": float(weights[best]), "train_accuracy": float(train_acc[best]),
            "test_accuracy": test.accuracy(merged[best])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["scratch", "experts"], default="scratch")
    parser.add_argument("--method", choices=["m2n2", "cmaes", "slerp-grid"], default="m2n2")
    parser.add_argument("--ablation", choices=sorted(ABLATIONS), default="none")
    parser.add_argument("--evals", type=int, help="evaluation budget per seed "
                        "(default 50,000 from scratch, 10,000 from experts)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--population", type=int, default=20, help="M2N2 archive size, "
                        "CMA-ES population")
    parser.add_argument("--cma-sigma", choices=["csa", "tpa"], default="csa",
                        help="CMA-ES step-size rule (tpa: pycma's default at this size)")
    parser.add_argument("--expert-seeds", type=int, nargs="+", default=[42],
                        help="one expert pair per seed (each pair is searched with every "
                        "--seeds seed)")
    parser.add_argument("--expert-lr", type=float, default=0.003,
                        help="Adam learning rate of the experts' 10 steps (released: 0.003)")
    parser.add_argument("--log-every", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("results.json"))
    args = parser.parse_args(argv)
    if args.method == "cmaes" and args.mode != "scratch":
        parser.error("--method cmaes runs from scratch only (as in the paper)")
    if args.method == "slerp-grid" and args.mode != "experts":
        parser.error("--method slerp-grid needs --mode experts")
    evals = args.evals or DEFAULT_EVALS[args.mode]

    torch.set_num_threads(1)
    (x_train, y_train), (x_test, y_test) = load_split()
    train, test = MLP(x_train, y_train), MLP(x_test, y_test)
    options = {"population": args.population, **ABLATIONS[args.ablation]}
    pairs = {None: None} if args.mode == "scratch" else {
        e: experts(x_train, y_train, e, args.expert_lr) for e in args.expert_seeds}

    runs = []
    for expert_seed, pair in pairs.items():
        if pair is not None:
            options["initial"] = pair
            for name, e in zip(("digits 0-4", "digits 5-9"), pair):
                print(f"expert {name} (seed {expert_seed}): train {train.accuracy(e):.4f} "
                      f"test {test.accuracy(e):.4f}")
        for seed in args.seeds if args.method != "slerp-grid" else [expert_seed]:
            print(f"{args.method} {args.mode} ablation={args.ablation} seed={seed}", flush=True)
            start, cpu_start = time.perf_counter(), time.process_time()
            if args.method == "m2n2":
                result = run_m2n2(train, test, evals, seed, options, args.log_every)
            elif args.method == "cmaes":
                result = run_cmaes(train, test, evals, seed, args.population, args.log_every,
                                   args.cma_sigma)
            else:
                result = run_slerp_grid(train, test, pair)
            result.update(seed=seed, expert_seed=expert_seed,
                          wall_s=round(time.perf_counter() - start, 1),
                          cpu_s=round(time.process_time() - cpu_start, 1))
            if pair is not None:
                result["experts"] = [{"train_accuracy": train.accuracy(e),
                                      "test_accuracy": test.accuracy(e)} for e in pair]
            print(f"  -> test {result['test_accuracy']:.4f} in {result['wall_s']} s "
                  f"({result['cpu_s']} s CPU)", flush=True)
            runs.append(result)

    tests = np.array([r["test_accuracy"] for r in runs])
    report = {
        "config": {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                   "evals": evals},
        "runs": runs,
        "test_accuracy_mean": float(tests.mean()),
        "test_accuracy_std": float(tests.std()),
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "torch": torch.__version__, "threads": torch.get_num_threads(),
                     "cpus": os.cpu_count()},
    }
    args.out.write_text(json.dumps(report, indent=1))
    print(f"test accuracy {tests.mean():.4f} ± {tests.std():.4f} over {len(runs)} run(s) "
          f"-> {args.out}")


if __name__ == "__main__":
    main()
