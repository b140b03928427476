"""Quadratic surrogates of a metric as a function of merge coefficients (MAP's model).

MAP (Li et al. 2024, "MAP: Low-compute Model Merging with Amortized Pareto Fronts via
Quadratic Approximation", arXiv:2406.07529) models each task metric M(c) of the merged
model θ_base + Σ c_t τ_t by a second-order expansion in c: a full quadratic with
``1 + T + T(T+1)/2`` terms. A link keeps predictions in the metric's range:

- ``identity``: y = q(c), plain linear least squares.
- ``sigmoid`` (accuracies in [0, 1]): y = sigmoid(q(c)).
- ``softplus`` (losses >= 0): y = softplus(q(c)) = log(1 + e^q).

With a non-identity link we minimise the squared error *in the metric's own units*,
Σ (y_i − g(q(c_i)))², by nonlinear least squares, started from the linear fit of the
transformed targets g⁻¹(y) (clipped into the link's open range). Why not just fit
logit(y): accuracies of exactly 0 or 1 are common (tiny eval sets, collapsed merges) and
their logits are infinite; clipping them makes the fit depend on the clip, and even away
from the edges the logit inflates the noise of values near 0 or 1 by 1/(y(1−y)). On
noise-free data from the model both fits agree, because the start is already exact.

>>> import numpy as np
>>> c = np.array([[0, 0], [1, 0], [0, 1], [.5, .5], [.2, .7], [.9, .3], [.4, .1]])
>>> y = 1 + c[:, 0] - 2 * c[:, 1] ** 2 + c[:, 0] * c[:, 1]
>>> s = fit_quadratic(c, y)
>>> np.allclose(s.predict(c), y)
True
>>> s.coef.round(6).tolist()  # 1, c1, c2, c1², c1·c2, c2²
[1.0, 1.0, 0.0, 0.0, 1.0, -2.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from evomerge.optim.options import option_error

LINKS = ("identity", "sigmoid", "softplus")

# Targets are clipped this far inside a link's open range before inverting it for the
# starting point; the nonlinear fit then works on the unclipped values.
_CLIP = 1e-4


def n_quadratic_terms(dim: int) -> int:
    """Number of coefficients of a full quadratic in ``dim`` variables.

    >>> [n_quadratic_terms(t) for t in (1, 2, 3, 8)]
    [3, 6, 10, 45]
    """
    return 1 + dim + dim * (dim + 1) // 2


def quadratic_features(c: np.ndarray) -> np.ndarray:
    """Design matrix ``[1, c_1..c_T, c_i c_j for i <= j]`` of shape ``(n, terms)``.

    >>> quadratic_features(np.array([[2.0, 3.0]])).tolist()
    [[1.0, 2.0, 3.0, 4.0, 6.0, 9.0]]
    """
    c = np.atleast_2d(np.asarray(c, dtype=float))
    n, dim = c.shape
    rows, cols = np.triu_indices(dim)
    return np.hstack([np.ones((n, 1)), c, c[:, rows] * c[:, cols]])


def _link(name: str, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The link's value g(q) and derivative g'(q)."""
    if name == "identity":
        return q, np.ones_like(q)
    if name == "sigmoid":
        s = 0.5 * (1.0 + np.tanh(0.5 * q))  # overflow-free sigmoid
        return s, s * (1.0 - s)
    if name == "softplus":
        return np.logaddexp(0.0, q), 0.5 * (1.0 + np.tanh(0.5 * q))
    raise option_error("links", name, f"must be one of {', '.join(LINKS)}")


def _link_inverse(name: str, y: np.ndarray) -> np.ndarray:
    if name == "identity":
        return y
    if name == "sigmoid":
        p = np.clip(y, _CLIP, 1.0 - _CLIP)
        return np.log(p) - np.log1p(-p)
    p = np.maximum(y, _CLIP)  # softplus: log(e^y - 1)
    return p + np.log(-np.expm1(-p))


def link_accepts(name: str, y: np.ndarray) -> bool:
    """Whether every value of ``y`` lies in the link's range (closed, edges allowed).

    >>> link_accepts("sigmoid", np.array([0.0, 0.5, 1.0]))
    True
    >>> link_accepts("softplus", np.array([-1.0]))
    False
    """
    y = np.asarray(y, dtype=float)
    if name == "sigmoid":
        return bool(np.all((y >= 0.0) & (y <= 1.0)))
    if name == "softplus":
        return bool(np.all(y >= 0.0))
    _link(name, y)  # validates the name
    return True


@dataclass
class QuadraticSurrogate:
    """A fitted quadratic ``q(c) = coef · quadratic_features(c)`` seen through ``link``."""

    dim: int
    link: str
    coef: np.ndarray

    def predict(self, c: np.ndarray) -> np.ndarray:
        """Predicted metric at each row of ``c`` (shape ``(n,)``)."""
        return _link(self.link, quadratic_features(c) @ self.coef)[0]

    def to_dict(self) -> dict[str, Any]:
        return {"dim": self.dim, "link": self.link, "coef": self.coef.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QuadraticSurrogate:
        return cls(int(d["dim"]), str(d["link"]), np.asarray(d["coef"], dtype=float))


def fit_quadratic(
    c: np.ndarray, y: np.ndarray, link: str = "identity", start: np.ndarray | None = None
) -> QuadraticSurrogate:
    """Least-squares quadratic surrogate of ``y`` over coefficient vectors ``c``.

    With fewer points than terms the minimum-norm solution is returned (the fit then
    interpolates). ``start`` overrides the starting coefficients of a nonlinear fit.

    >>> c = np.array([[0.0], [0.5], [1.0], [0.25]])
    >>> y = 1 / (1 + np.exp(-(2 - 6 * c[:, 0] ** 2)))
    >>> fit_quadratic(c, y, "sigmoid").coef.round(6).tolist()
    [2.0, 0.0, -6.0]
    """
    c = np.atleast_2d(np.asarray(c, dtype=float))
    y = np.asarray(y, dtype=float).reshape(-1)
    if len(c) != len(y):
        raise ValueError(f"{len(c)} coefficient vectors but {len(y)} values")
    if not link_accepts(link, y):
        raise option_error(
            "links", link,
            f"needs values in its range (sigmoid: [0, 1], softplus: >= 0), but the "
            f"measured values span [{y.min():g}, {y.max():g}]",
        )
    features = quadratic_features(c)
    linear = np.linalg.lstsq(features, _link_inverse(link, y), rcond=None)[0]
    if link == "identity":
        return QuadraticSurrogate(c.shape[1], link, linear)
    coef = _levenberg_marquardt(features, y, link, linear if start is None else start)
    return QuadraticSurrogate(c.shape[1], link, coef)


def _levenberg_marquardt(
    features: np.ndarray, y: np.ndarray, link: str, coef: np.ndarray, iterations: int = 200
) -> np.ndarray:
    """Minimise Σ (y − g(features · coef))² from ``coef`` by damped Gauss-Newton steps.

    Written out (rather than scipy.optimize.least_squares) because the problem may be
    underdetermined (fewer points than terms), which scipy's "lm" refuses; the damping
    (scaled by the Gram diagonal, as in Marquardt's variant) keeps every step solvable.
    """

    def sse(w: np.ndarray) -> float:
        return float(np.sum((y - _link(link, features @ w)[0]) ** 2))

    current, damping = sse(coef), 1e-3
    for _ in range(iterations):
        value, slope = _link(link, features @ coef)
        jac = features * slope[:, None]
        gram, rhs = jac.T @ jac, jac.T @ (y - value)
        scale = np.where(np.diag(gram) > 0, np.diag(gram), 1.0)
        while True:
            step = np.linalg.lstsq(gram + damping * np.diag(scale), rhs, rcond=None)[0]
            trial = sse(coef + step)
            if trial < current:
                break
            damping *= 10.0
            if damping > 1e10:  # no descent left: at a minimum to working precision
                return coef
        coef, gain, current = coef + step, current - trial, trial
        damping = max(damping / 10.0, 1e-12)
        if gain <= 1e-14 * (1.0 + current):
            break
    return coef


def loo_residuals(c: np.ndarray, y: np.ndarray, link: str = "identity") -> np.ndarray:
    """Leave-one-out residuals: ``y_i`` minus the prediction of a fit without point ``i``.

    Each refit starts from the full fit, so the nonlinear links stay cheap.

    >>> c = np.array([[0.0], [0.25], [0.5], [0.75], [1.0]])
    >>> bool(np.abs(loo_residuals(c, 1 + c[:, 0] ** 2)).max() < 1e-9)  # the model itself: 0
    True
    """
    c = np.atleast_2d(np.asarray(c, dtype=float))
    y = np.asarray(y, dtype=float).reshape(-1)
    full = fit_quadratic(c, y, link)
    out = np.empty(len(y))
    keep = np.ones(len(y), dtype=bool)
    for i in range(len(y)):
        keep[i] = False
        start = full.coef if link != "identity" else None
        out[i] = y[i] - fit_quadratic(c[keep], y[keep], link, start).predict(c[i : i + 1])[0]
        keep[i] = True
    return out
