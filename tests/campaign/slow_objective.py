"""A stand-in objective that takes long enough to kill a worker in the middle of it."""

import time


def score(model, tokenizer):
    time.sleep(2.0)
    return {"mean": float(next(model.parameters()).float().mean())}
