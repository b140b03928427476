"""The M2N2 paper's digits problem: sklearn's 8x8 digits and a 64-256-10 ReLU MLP.

As in the authors' released code: the first 80% of ``load_digits`` (no shuffle) is the
training split, the last 20% the test split, pixels stay raw (0..16), and a network is
one flat vector of 19,210 parameters laid out as W1 (64 x 256, row-major), b1, W2
(256 x 10), b2. Fitness is per-sample correctness (1 if the arg-max class is right):
the released code scores exactly that, and so does this module.

Evaluation is two matmuls over the whole split (torch, float32, one thread), about
0.7 ms of CPU per network (``timing.py``).

>>> (x_train, y_train), (x_test, y_test) = load_split()
>>> x_train.shape[0], x_test.shape[0], N_PARAMS
(1437, 360, 19210)
>>> MLP(x_train, y_train).accuracy(np.zeros(N_PARAMS, np.float32)) < 0.2
True
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits

from evomerge.records import Fitness

INPUTS, HIDDEN, CLASSES = 64, 256, 10
N_PARAMS = (INPUTS + 1) * HIDDEN + (HIDDEN + 1) * CLASSES
TASK = "digits_train"

_B1 = slice(INPUTS * HIDDEN, (INPUTS + 1) * HIDDEN)
_W2 = slice(_B1.stop, _B1.stop + HIDDEN * CLASSES)
_B2 = slice(_W2.stop, N_PARAMS)


def load_split(train_fraction: float = 0.8) -> tuple[tuple[torch.Tensor, torch.Tensor],
                                                        tuple[torch.Tensor, torch.Tensor]]:
    """((x_train, y_train), (x_test, y_test)) as float32 / int64 tensors, unshuffled."""
    images, labels = load_digits(return_X_y=True)
    cut = int(len(images) * train_fraction)
    x = torch.tensor(images, dtype=torch.float32)
    y = torch.tensor(labels, dtype=torch.int64)
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


class MLP:
    """Scores flat parameter vectors on one fixed data split.

    W1 and b1 are adjacent in the flat vector, so ``vector[:16640]`` viewed as 65 x 256
    is [W1; b1]; with a column of ones appended to the images the first layer is one
    matmul with its bias folded in. One network at a time (the steady-state path)
    writes into preallocated buffers: fresh 1.5 MB results cost a page-faulting
    allocation per call, a third of the matmul's own time.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x1 = torch.cat([x, torch.ones(len(x), 1)], dim=1).contiguous()
        self.y = y
        self.doc_ids = [str(i) for i in range(len(y))]
        self._hidden = torch.empty(len(x), HIDDEN)
        self._logits = torch.empty(len(x), CLASSES)

    def logits(self, vectors: torch.Tensor) -> torch.Tensor:
        """(n, samples, 10) logits for (n, N_PARAMS) parameter vectors."""
        n = vectors.shape[0]
        layer1 = vectors[:, : _B1.stop].reshape(n, INPUTS + 1, HIDDEN)
        w2, b2 = vectors[:, _W2].reshape(n, HIDDEN, CLASSES), vectors[:, None, _B2]
        if n == 1 and not vectors.requires_grad:
            torch.mm(self.x1, layer1[0], out=self._hidden).relu_()
            return torch.addmm(b2[0], self._hidden, w2[0], out=self._logits)[None]
        hidden = torch.relu(torch.matmul(self.x1, layer1))
        return torch.baddbmm(b2, hidden, w2)

    def correct(self, vectors: np.ndarray | torch.Tensor) -> np.ndarray:
        """(n, samples) booleans: is each sample classified right by each network."""
        v = torch.as_tensor(np.asarray(vectors, dtype=np.float32)).reshape(-1, N_PARAMS)
        with torch.no_grad():
            return (self.logits(v).argmax(dim=2) == self.y).numpy()

    def accuracy(self, vector: np.ndarray) -> float:
        return float(self.correct(vector).mean())

    def accuracies(self, vectors: np.ndarray, chunk: int = 100) -> np.ndarray:
        """Accuracy per row of ``vectors``, evaluated ``chunk`` networks at a time."""
        return np.concatenate([self.correct(vectors[i:i + chunk]).mean(axis=1)
                               for i in range(0, len(vectors), chunk)])

    def fitness(self, vector: np.ndarray) -> Fitness:
        """A Fitness record with per-sample correctness, the scores M2N2 learns from."""
        correct = self.correct(vector)[0]
        return Fitness.ok({"train_accuracy": float(correct.mean())},
                          sample_scores={TASK: dict(zip(self.doc_ids,
                                                        correct.astype(float).tolist()))})


def train_expert(x: torch.Tensor, y: torch.Tensor, seed: int, steps: int = 10,
                 lr: float = 0.003) -> np.ndarray:
    """A quickly pre-trained network: N(0, 0.01^2) init, ``steps`` full-batch Adam steps.

    The released code trains its two experts this way (10 Adam steps, lr 0.003, on the
    training images of digits 0-4 and 5-9), which leaves them good at their own digits
    and blind to the others.
    """
    gen = torch.Generator().manual_seed(seed)
    params = (torch.randn(N_PARAMS, generator=gen) * 0.01).requires_grad_()
    opt = torch.optim.Adam([params], lr=lr)
    mlp = MLP(x, y)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(mlp.logits(params[None])[0], y)
        loss.backward()
        opt.step()
    return params.detach().numpy().copy()
