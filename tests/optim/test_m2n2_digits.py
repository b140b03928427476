"""A short M2N2 run on the digits experiment's own network and data learns from scratch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from evomerge.optim.m2n2 import M2N2, candidate_vector

DIGITS = Path(__file__).resolve().parents[2] / "experiments" / "m2n2_digits" / "digits.py"


def load_digits_module():
    spec = importlib.util.spec_from_file_location("m2n2_digits", DIGITS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_short_digits_run_learns_from_scratch():
    torch.set_num_threads(1)
    digits = load_digits_module()
    (x_train, y_train), _ = digits.load_split()
    train = digits.MLP(x_train[:300], y_train[:300])      # a 300-image subset
    opt = M2N2(digits.N_PARAMS, seed=0)
    for step in range(500):
        (cand,) = opt.ask(1)
        opt.tell([(cand, train.fitness(candidate_vector(cand)))])
        if step == 1:   # both random starting members scored
            start_best = opt.archive.scores.mean(axis=1).max()
    final = train.accuracy(candidate_vector(opt.best().candidate))
    assert final == opt.archive.scores.mean(axis=1).max()  # best() is the best raw score
    assert start_best < 0.2                                # random networks: about chance
    assert final > 0.25 and final > start_best + 0.15
    assert opt.evaluations == 500 and len(opt.archive.members) == 20
    assert np.isfinite(candidate_vector(opt.best().candidate)).all()
