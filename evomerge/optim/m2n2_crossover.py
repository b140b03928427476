"""M2N2 crossover: split-point SLERP, on flat vectors and on coefficient recipes.

Abrantes, Lange, Tang (2025). A child is a SLERP of parents A and B with one angle
between the two whole (canonically flattened) parameter vectors, but with two mixing
weights: t = w before the split point and t = 1 - w after it, so each part of the child
leans towards a different parent. SLERP(t) = a(t) A + b(t) B with

    a(t) = sin((1 - t) omega) / sin(omega),  b(t) = sin(t omega) / sin(omega),

falling back to the linear weights a = 1 - t, b = t when the vectors are (anti)parallel
(sin(omega) <= 1e-6, the released code's threshold) or one of them is zero.

For LLMs a member is a coefficient matrix C (groups x basis tensors) whose weights are
theta_g = sum_k C[g, k] B_k,g. Since a(t) and b(t) are scalars per group, the SLERP of
two such members is again one, and the angle needs only inner products, which the
per-group Gram matrices G_g = [<B_k,g, B_l,g>] give without touching any tensor:
<theta_A, theta_B> = sum_g C_A[g] @ G_g @ C_B[g].

>>> x, y = np.array([1.0, 0.0]), np.array([0.0, 1.0])
>>> split_point_slerp(x, y, split=2, w=0.5).round(4).tolist()   # no split: plain SLERP
[0.7071, 0.7071]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evomerge.optim.m2n2_selection import draw_index

#: below this sin(omega) the parents count as parallel and the weights become linear
PARALLEL_SIN = 1e-6


def slerp_weights(t: Any, cos_angle: float | None) -> tuple[Any, Any]:
    """(a(t), b(t)) for SLERP = a A + b B; ``t`` may be a scalar or an array.

    ``cos_angle`` None means the angle is undefined (a zero vector): linear weights.

    >>> a, b = slerp_weights(0.5, 0.0)     # orthogonal unit vectors: 45 degrees each
    >>> round(float(a), 4), round(float(b), 4)
    (0.7071, 0.7071)
    >>> slerp_weights(0.25, 1.0)           # parallel: linear
    (0.75, 0.25)
    """
    if cos_angle is None:
        return 1.0 - t, t
    omega = float(np.arccos(np.clip(cos_angle, -1.0, 1.0)))
    sin_omega = np.sin(omega)
    if sin_omega <= PARALLEL_SIN:
        return 1.0 - t, t
    return np.sin((1.0 - t) * omega) / sin_omega, np.sin(t * omega) / sin_omega


def _cosine(inner: float, sq_norm_a: float, sq_norm_b: float) -> float | None:
    if sq_norm_a <= 0 or sq_norm_b <= 0:
        return None
    return float(inner / np.sqrt(sq_norm_a * sq_norm_b))


def split_point_slerp(x: np.ndarray, y: np.ndarray, split: int, w: float) -> np.ndarray:
    """Child of flat vectors ``x`` (parent A) and ``y`` (parent B), dtype of ``x``.

    Entries before index ``split`` use t = w, entries from ``split`` on use t = 1 - w
    (``split = len(x)`` is a plain SLERP at w: the "no split point" ablation).

    >>> x, y = np.array([1.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0])
    >>> split_point_slerp(x, y, split=1, w=1.0).tolist()   # y before, x after
    [0.0, 0.0, 1.0]
    >>> split_point_slerp(x, y, split=0, w=1.0).tolist()   # t = 0 everywhere: x
    [1.0, 0.0, 1.0]
    """
    x64, y64 = x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)
    # einsum, not BLAS: a threaded BLAS dot waits milliseconds for its threads on a
    # busy machine, a hundred times the cost of the sum itself
    cos = _cosine(*(float(np.einsum("i,i->", u, v)) for u, v in
                    ((x64, y64), (x64, x64), (y64, y64))))
    a_before, b_before = slerp_weights(w, cos)
    a_after, b_after = slerp_weights(1.0 - w, cos)
    child = np.empty_like(x)
    child[:split] = float(a_before) * x[:split] + float(b_before) * y[:split]
    child[split:] = float(a_after) * x[split:] + float(b_after) * y[split:]
    return child


def coefficient_inner(c_a: np.ndarray, c_b: np.ndarray, gram: np.ndarray) -> float:
    """<theta_A, theta_B> from coefficient matrices (G, K+1) and Gram matrices (G, K+1, K+1).

    >>> gram = np.array([[[1.0, 0.0], [0.0, 4.0]]])     # one group, basis norms 1 and 2
    >>> coefficient_inner(np.array([[1.0, 1.0]]), np.array([[0.0, 1.0]]), gram)
    4.0
    """
    return float(np.einsum("gk,gkl,gl->", c_a, gram, c_b))


def coefficient_slerp(c_a: np.ndarray, c_b: np.ndarray, gram: np.ndarray,
                      split_group: int, w: float) -> np.ndarray:
    """Child coefficients: groups before ``split_group`` use t = w, the rest 1 - w.

    Gives exactly the weights :func:`split_point_slerp` gives on the expanded vectors
    when the vector split falls on the first entry of group ``split_group``
    (``split_group = G`` is a plain SLERP at w).

    >>> gram = np.array([[[1.0, 0.0], [0.0, 1.0]]] * 2)   # two groups, orthonormal basis
    >>> coefficient_slerp(np.array([[1.0, 0.0]] * 2), np.array([[0.0, 1.0]] * 2),
    ...                   gram, split_group=1, w=1.0).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    cos = _cosine(coefficient_inner(c_a, c_b, gram), coefficient_inner(c_a, c_a, gram),
                  coefficient_inner(c_b, c_b, gram))
    t = np.where(np.arange(c_a.shape[0]) < split_group, w, 1.0 - w)
    a, b = slerp_weights(t, cos)
    return np.asarray(a)[:, None] * c_a + np.asarray(b)[:, None] * c_b


def draw_split_group(group_sizes: np.ndarray, rng: np.random.Generator) -> int:
    """The group whose first entry is the split, drawn with probability ∝ its size.

    A uniform split over all parameters lands in group g with probability
    size_g / D; moving it to the start of that group is the only approximation the
    coefficient form makes (the within-group position is lost, since a group's
    tensors share one coefficient row).

    >>> draw_split_group(np.array([0, 5, 0]), np.random.default_rng(0))
    1
    """
    return draw_index(np.asarray(group_sizes, dtype=np.float64), rng)


def group_gram(basis_by_group: Sequence[Sequence[Any]]) -> np.ndarray:
    """Gram matrices (G, K+1, K+1) of float64 inner products, from tensors per group.

    ``basis_by_group[g][k]`` is basis tensor k of group g (numpy or torch, any device;
    a group made of several tensors is passed as their concatenated flat view). Only
    two basis tensors are converted to float64 at a time.

    >>> group_gram([[np.array([1.0, 0.0]), np.array([3.0, 4.0])]]).tolist()
    [[[1.0, 3.0], [3.0, 25.0]]]
    """
    import torch  # here, not at the top: the search driver never needs torch

    n_basis = len(basis_by_group[0])
    gram = np.empty((len(basis_by_group), n_basis, n_basis))
    for g, tensors in enumerate(basis_by_group):
        for k in range(n_basis):
            left = torch.as_tensor(tensors[k]).reshape(-1).double()
            for m in range(k, n_basis):
                right = torch.as_tensor(tensors[m]).reshape(-1).to(left.device).double()
                gram[g, k, m] = gram[g, m, k] = float(torch.dot(left, right))
    return gram
