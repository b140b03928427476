"""What an M2N2 member is: a flat weight vector, or a coefficient recipe over basis tensors.

Both forms breed children the same way (split-point SLERP with one angle) and travel
in :class:`~evomerge.records.Candidate` ``params`` as plain JSON:

- vector form: ``params = {"m2n2_vector": "<base64 of little-endian float32>"}``; the
  evaluator reads it with :func:`candidate_vector`. base64 keeps a 19,210-entry vector
  exact, about 100 kB of JSON, and fast to decode (a list of floats is 4x larger and
  costs more than evaluating a small network).
- coefficient form: ``params = {"m2n2_coefficients": [[...], ...], "groups": [names]}``:
  row g holds the coefficients of group ``groups[g]`` over the K+1 basis tensors, and
  the model to build is theta_g = sum_k C[g, k] B_k,g.

>>> form = VectorForm(dim=3, noise_std=0.0)
>>> c = Candidate(params=form.candidate_params(np.array([1.0, 2.0, 3.0], np.float32)))
>>> candidate_vector(c).tolist()
[1.0, 2.0, 3.0]
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import numpy as np

from evomerge.errors import EvomergeError
from evomerge.optim.m2n2_crossover import (
    coefficient_slerp,
    draw_split_group,
    split_point_slerp,
)
from evomerge.records import Candidate

VECTOR_KEY = "m2n2_vector"
COEFFICIENTS_KEY = "m2n2_coefficients"
GROUPS_KEY = "groups"


def encode_vector(vector: np.ndarray) -> str:
    """base64 text of a vector's little-endian float32 bytes (exact for float32).

    >>> decode_vector(encode_vector(np.array([0.1, -2.0], np.float32))).tolist() == \\
    ...     np.array([0.1, -2.0], np.float32).tolist()
    True
    """
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode()


def decode_vector(text: str) -> np.ndarray:
    """The float32 vector :func:`encode_vector` wrote (a fresh, writable array)."""
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def candidate_vector(candidate: Candidate) -> np.ndarray:
    """The flat float32 weight vector a vector-form candidate carries.

    Reads ``params["m2n2_vector"]`` (what M2N2 emits) or, for candidates made
    elsewhere, ``x``.

    >>> candidate_vector(Candidate(x=[0.5, 1.0])).tolist()
    [0.5, 1.0]
    """
    if VECTOR_KEY in candidate.params:
        return decode_vector(candidate.params[VECTOR_KEY])
    if candidate.x is not None:
        return np.asarray(candidate.x, dtype=np.float32)
    raise EvomergeError(
        f"candidate {candidate.uid} carries no weight vector: expected "
        f"params[{VECTOR_KEY!r}] (base64 float32) or x (a list of floats)")


class VectorForm:
    """Members are flat float32 vectors of length ``dim``; children may get Gaussian noise.

    >>> form = VectorForm(dim=4, noise_std=0.0)
    >>> child, info = form.crossover(np.zeros(4, np.float32), np.ones(4, np.float32),
    ...                              np.random.default_rng(0), use_split=True)
    >>> sorted(info), child.dtype.name
    (['split', 'w'], 'float32')
    """

    kind = "vector"

    def __init__(self, dim: int, noise_std: float):
        self.dim, self.noise_std = dim, noise_std

    def crossover(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
                  use_split: bool) -> tuple[np.ndarray, dict[str, Any]]:
        # draw order (split, then w, then noise) follows the released code
        split = int(rng.integers(self.dim)) if use_split else self.dim
        w = float(rng.random())
        child = split_point_slerp(a, b, split, w)
        if self.noise_std > 0:
            child += np.float32(self.noise_std) * rng.standard_normal(self.dim, np.float32)
        return child, {"split": split, "w": w}

    def candidate_params(self, genome: np.ndarray) -> dict[str, Any]:
        return {VECTOR_KEY: encode_vector(genome)}

    def genome_from_candidate(self, candidate: Candidate) -> np.ndarray:
        vector = candidate_vector(candidate)
        if vector.shape != (self.dim,):
            raise EvomergeError(
                f"candidate {candidate.uid}: weight vector has {vector.size} entries, "
                f"but this M2N2 search has dim={self.dim}")
        return vector

    def strip(self, candidate: Candidate) -> Candidate:
        """The candidate without its vector (history keeps ids, parents and meta)."""
        params = {k: v for k, v in candidate.params.items() if k != VECTOR_KEY}
        return replace(candidate, x=None, params=params)

    def to_json(self, genome: np.ndarray) -> str:
        return encode_vector(genome)

    def from_json(self, data: str) -> np.ndarray:
        return decode_vector(data)


class CoefficientForm:
    """Members are (G, K+1) coefficient matrices over per-group basis tensors.

    ``gram`` (G, K+1, K+1) holds the basis inner products per group; the worker that
    holds the sources computes it once (:func:`~evomerge.optim.m2n2_crossover.group_gram`)
    and it may arrive after construction (:meth:`M2N2.set_gram`), but before the
    first child. There is no noise: the paper mutates only when it starts from scratch.
    """

    kind = "coefficients"

    def __init__(self, groups: list[str], group_sizes: np.ndarray, n_basis: int,
                 gram: np.ndarray | None = None):
        self.groups, self.group_sizes, self.n_basis = groups, group_sizes, n_basis
        self.gram = gram

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.groups), self.n_basis

    def crossover(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
                  use_split: bool) -> tuple[np.ndarray, dict[str, Any]]:
        if self.gram is None:
            raise EvomergeError(
                "M2N2 over coefficient recipes needs the basis Gram matrices before it "
                "can make a child: pass option 'gram' or call set_gram()")
        split = draw_split_group(self.group_sizes, rng) if use_split else len(self.groups)
        w = float(rng.random())
        return coefficient_slerp(a, b, self.gram, split, w), {"split_group": split, "w": w}

    def candidate_params(self, genome: np.ndarray) -> dict[str, Any]:
        return {COEFFICIENTS_KEY: genome.tolist(), GROUPS_KEY: list(self.groups)}

    def genome_from_candidate(self, candidate: Candidate) -> np.ndarray:
        if COEFFICIENTS_KEY not in candidate.params:
            raise EvomergeError(
                f"candidate {candidate.uid} carries no params[{COEFFICIENTS_KEY!r}]; "
                "M2N2 over coefficient recipes can only learn from such candidates")
        genome = np.asarray(candidate.params[COEFFICIENTS_KEY], dtype=np.float64)
        if genome.shape != self.shape:
            raise EvomergeError(
                f"candidate {candidate.uid}: params[{COEFFICIENTS_KEY!r}] has shape "
                f"{genome.shape}, expected (groups, basis) = {self.shape}")
        return genome

    def strip(self, candidate: Candidate) -> Candidate:
        return candidate  # a few numbers per group: small enough to keep

    def to_json(self, genome: np.ndarray) -> list[list[float]]:
        return genome.tolist()

    def from_json(self, data: list[list[float]]) -> np.ndarray:
        return np.asarray(data, dtype=np.float64)
