"""Toy problems and a small ask/tell driver shared by the optimizer tests.

Every problem lives in ``[0, 1]^dim`` with its optimum away from the centre (CMA-ES and
nevergrad start at the centre, so a centred optimum would be found for free).
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics

import numpy as np

from evomerge.optim.base import ObjectiveSpec, Optimizer
from evomerge.records import Candidate, Fitness

MINIMIZE = ObjectiveSpec(("loss",), ("minimize",))
MAXIMIZE = ObjectiveSpec(("score",), ("maximize",))
TWO_OBJECTIVES = ObjectiveSpec(("near_a", "near_b"), ("minimize", "minimize"))


def optimum(dim: int, shift: float = 0.0) -> np.ndarray:
    """An off-centre point: coordinates spread over [0.25, 0.75] by the golden ratio."""
    return 0.25 + 0.5 * ((0.6180339887 * (np.arange(dim) + 1) + shift) % 1.0)


def sphere(x: np.ndarray) -> float:
    return float(np.sum((x - optimum(len(x))) ** 2))


def rastrigin(x: np.ndarray) -> float:
    """Rastrigin on the box mapped to about [-5.12, 5.12]^dim around the optimum."""
    z = 10.24 * (x - optimum(len(x)))
    return float(10 * len(z) + np.sum(z * z - 10 * np.cos(2 * math.pi * z)))


PROBLEMS = {"sphere": sphere, "rastrigin": rastrigin}


def point_of(candidate: Candidate, dim: int) -> np.ndarray:
    """The candidate's box point; for candidates without one (structured params), a
    deterministic point derived from the params so any optimizer can be scored."""
    if candidate.x is not None:
        return np.asarray(candidate.x, dtype=float)
    digest = hashlib.sha256(json.dumps(candidate.params, sort_keys=True,
                                       default=str).encode()).digest()
    return np.frombuffer(digest * (1 + dim // 32), dtype=np.uint8)[:dim] / 255.0


def evaluate(candidate: Candidate, spec: ObjectiveSpec, dim: int,
             problem=sphere) -> Fitness:
    """An ok Fitness for ``spec``: one objective -> ``problem`` (negated when the spec
    maximises); two objectives -> squared distances to two points. Per-sample scores
    (one per coordinate) come along for optimizers that learn from them."""
    x = point_of(candidate, dim)
    if spec.multi:
        a, b = optimum(dim), optimum(dim, shift=0.5)
        values = [float(np.sum((x - a) ** 2)), float(np.sum((x - b) ** 2))]
    else:
        value = problem(x)
        values = [value if spec.directions[0] == "minimize" else -value]
    per_sample = {f"doc{i}": float(1.0 - (v - c) ** 2)
                  for i, (v, c) in enumerate(zip(x, optimum(dim)))}
    return Fitness.ok(dict(zip(spec.names, values)),
                      directions=dict(zip(spec.names, spec.directions)),
                      sample_scores={"toy": per_sample})


def run(opt: Optimizer, budget: int, problem=sphere, batch: int = 4) -> Optimizer:
    """Ask/evaluate/tell in batches (like ``batch`` workers) until ``budget`` results."""
    done = 0
    while done < budget:
        candidates = opt.ask(min(batch, budget - done))
        opt.tell([(c, evaluate(c, opt.objectives, opt.dim, problem)) for c in candidates])
        done += len(candidates)
    return opt


def best_loss(opt: Optimizer) -> float:
    return opt.objectives.losses(opt.best().fitness)[0]


def hypervolume_2d(points: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by ``points`` (both minimised) and bounded by ``reference``.

    >>> hypervolume_2d([(1.0, 2.0), (2.0, 1.0)], (3.0, 3.0))
    3.0
    """
    front = sorted(p for p in points if p[0] < reference[0] and p[1] < reference[1])
    area, best_second = 0.0, reference[1]
    for first, second in front:
        if second < best_second:
            area += (reference[0] - first) * (best_second - second)
            best_second = second
    return area


def median(values) -> float:
    return statistics.median(values)
