"""Cost of one evaluation and of one whole M2N2 step on the digits problem, in CPU time.

    python experiments/m2n2_digits/timing.py

CPU time (``time.process_time``), not wall time, because the machine is shared: wall
time there measures the neighbours as much as this code. One thread throughout.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits import MLP, N_PARAMS, load_split  # noqa: E402

from evomerge.optim.m2n2 import M2N2, candidate_vector  # noqa: E402


def cpu_ms(step, repeats: int, rounds: int = 5) -> float:
    """Best-of-``rounds`` CPU milliseconds per call of ``step``."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(repeats):
            step()
        best = min(best, (time.process_time() - start) / repeats * 1e3)
    return best


def main() -> None:
    torch.set_num_threads(1)
    (x_train, y_train), _ = load_split()
    train = MLP(x_train, y_train)
    vector = np.random.default_rng(0).standard_normal(N_PARAMS).astype(np.float32) * 0.01
    opt = M2N2(N_PARAMS, seed=0)

    def step() -> None:
        (cand,) = opt.ask(1)
        opt.tell([(cand, train.fitness(candidate_vector(cand)))])

    for _ in range(100):   # fill the archive first: steady state is what a run costs
        step()
    calls = [("forward pass, 1437 images (MLP.correct): ", lambda: train.correct(vector)),
             ("Fitness record with per-sample scores:   ", lambda: train.fitness(vector)),
             ("whole M2N2 step (ask, decode, eval, tell):", step)]
    for label, call in calls:
        print(f"{label} {cpu_ms(call, 500):.3f} ms CPU")


if __name__ == "__main__":
    main()
