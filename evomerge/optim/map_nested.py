"""Nested MAP: many task vectors merged pairwise with 2-D MAPs up a binary tree.

For ``T`` tasks a full MAP fits quadratics with ``O(T²)`` terms from ``O(T²)``
evaluations. Nested MAP (Li et al. 2024, §"Nested MAP") instead merges two groups at a
time, so every surrogate has two variables.

**Tree.** Level 0 has one group per task vector, in order. Each level pairs neighbours
(groups 0+1, 2+3, ...); with an odd count the last group moves up unchanged. The level's
pairs are searched concurrently; the next level starts when all of them are done; the
single pair at the top is the root.

**Coefficients compose by products.** A group ``G`` carries a coefficient vector
``w_G`` over all ``T`` task vectors (a single task ``t``: ``w = e_t``). The 2-D MAP of a
pair (L, R) searches ``(a, b) ∈ [0, 1]²`` and evaluates the full merge
``x = a·w_L + b·w_R``. When the pair is done it picks ``(a*, b*)`` and the merged group
carries ``w_{L∪R} = a*·w_L + b*·w_R``; so a task's final coefficient is the product of
the choices on its path to the root.

**Objectives compose by preference-weighted means.** Every evaluation measures all
``T`` task objectives (objective ``k`` belongs to task vector ``k``). A task's score is
its value, negated when minimised. A pair's two objectives, both maximised, are the
weighted means of the scores over L and over R (weights: the ``preference`` option,
one per task, default all 1). The pair's choice ``(a*, b*)`` is its *measured* point
(plan or front, evaluated for real) with the best weighted mean over L ∪ R.

**Budget.** Each pair spends ``node_plan_size`` (default 12) plan evaluations plus
``node_front_size`` (default 4) predicted-front evaluations: ``16·(T−1)`` in all, against
``(T+1)(T+2)`` for a full MAP; after the root is done, asks keep returning points of
the root's predicted front.

>>> from evomerge.records import Fitness
>>> spec = ObjectiveSpec(("t0", "t1", "t2"), ("maximize",) * 3)
>>> opt = NestedMapOptimizer(3, spec, seed=0)
>>> batch = opt.ask(8)
>>> sorted({str(c.meta["groups"]) for c in batch})
['[[0], [1]]']
>>> max(c.x[2] for c in batch)  # task 2 waits for the next level
0.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evomerge.errors import ConfigError
from evomerge.optim.base import ObjectiveSpec, Optimizer, register_optimizer
from evomerge.optim.map_opt import MapOptimizer
from evomerge.optim.options import check_known, option_error, whole_number
from evomerge.records import Candidate, Fitness

_PAIR = ObjectiveSpec(("left", "right"), ("maximize", "maximize"))


class _Pair:
    """One 2-D MAP over (a, b) for merging groups ``left`` and ``right``."""

    def __init__(self, left: list[int], right: list[int], w_left: np.ndarray,
                 w_right: np.ndarray, inner: MapOptimizer, front_size: int):
        self.left, self.right = left, right
        self.w_left, self.w_right = w_left, w_right
        self.inner, self.front_size = inner, front_size
        self.chosen: list[float] | None = None
        self.post_plan: list[str] = []  # uids asked once the plan was told, in order

    def wants(self) -> int:
        """How many required points (plan, then the first ``front_size`` asked after
        it: predicted-front points, or fill points where the front has no new ones) it
        can hand out right now."""
        if self.inner.phase() == "plan":
            return self.inner.options["plan_size"] - self.inner.plan_asked
        return max(self.front_size - len(self.post_plan), 0)

    def ask(self, n: int) -> list[Candidate]:
        after_plan = self.inner.phase() != "plan"
        out = self.inner.ask(n)
        if after_plan:
            self.post_plan.extend(c.uid for c in out)
        return out

    def required_told(self) -> bool:
        told = {t.candidate.uid for t in self.inner.history}
        plan = [i["uid"] for i in self.inner.issued if i["phase"] == "plan"]
        front = self.post_plan[: self.front_size]
        return len(front) >= self.front_size and all(uid in told for uid in plan + front)

    def full_x(self, ab: Sequence[float]) -> np.ndarray:
        return ab[0] * self.w_left + ab[1] * self.w_right

    def to_dict(self) -> dict[str, Any]:
        return {"left": self.left, "right": self.right, "w_left": self.w_left.tolist(),
                "w_right": self.w_right.tolist(), "chosen": self.chosen,
                "post_plan": self.post_plan, "inner": self.inner.state_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], inner_options: dict[str, Any], front_size: int) -> _Pair:
        inner_state = d["inner"]
        inner = MapOptimizer(2, _PAIR, seed=inner_state["seed"], **inner_options)
        inner.load_state_dict(inner_state)
        pair = cls(list(d["left"]), list(d["right"]), np.asarray(d["w_left"], dtype=float),
                   np.asarray(d["w_right"], dtype=float), inner, front_size)
        pair.chosen, pair.post_plan = d["chosen"], list(d["post_plan"])
        return pair


@register_optimizer
class NestedMapOptimizer(Optimizer):
    """Nested MAP over ``dim`` task vectors with one objective per task vector.

    Options: ``preference`` (one non-negative weight per task), ``node_plan_size``
    (>= 3), ``node_front_size``, and ``moea`` / ``pop_size`` / ``generations`` /
    ``links`` passed to every pair's :class:`MapOptimizer`.
    """

    name = "nested_map"

    def __init__(self, dim: int, objectives: ObjectiveSpec | None = None, seed: int = 0,
                 **options: Any):
        if dim < 2:
            raise ConfigError(None, "dim", dim, "nested MAP needs at least 2 task vectors")
        super().__init__(dim, objectives, seed)
        if len(self.objectives.names) != dim:
            raise ConfigError(None, "objectives", list(self.objectives.names),
                              f"nested MAP needs one objective per task vector ({dim})")
        pref = options.pop("preference", [1.0] * dim)
        try:
            weights = np.asarray(pref, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            weights = np.zeros(0)
        if len(weights) != dim or not np.all(np.isfinite(weights) & (weights >= 0)) \
                or weights.sum() <= 0:
            raise option_error("preference", pref,
                               f"must be {dim} non-negative weights, not all 0")
        self.preference = weights
        if not isinstance(options.get("links", "auto"), str):
            raise option_error("links", options["links"],
                               "nested MAP takes one link name for every pair's two objectives")
        check_known(options, ("generations", "links", "moea", "node_front_size",
                              "node_plan_size", "pop_size", "preference"),
                    f"optimizer {self.name!r}")
        self.node_plan_size = whole_number("node_plan_size",
                                           options.pop("node_plan_size", 12), 3)
        self.node_front_size = whole_number("node_front_size",
                                            options.pop("node_front_size", 4), 1)
        self.inner_options = dict(options, bayes_rounds=0, plan_size=self.node_plan_size)
        self.groups: list[tuple[list[int], np.ndarray]] = [
            ([t], np.eye(dim)[t]) for t in range(dim)]
        self.level = 0
        self.pairs: list[_Pair] = []
        self.done: list[dict[str, Any]] = []  # finished pairs, as dicts, in order
        self._start_level()

    # ----- the tree ------------------------------------------------------------------
    def _start_level(self) -> None:
        self.pairs = []
        for i in range(0, len(self.groups) - 1, 2):
            (left, w_left), (right, w_right) = self.groups[i], self.groups[i + 1]
            inner = MapOptimizer(2, _PAIR, seed=self.seed + 7919 * (self.level + 1) + i,
                                 **self.inner_options)
            self.pairs.append(_Pair(left, right, w_left, w_right, inner, self.node_front_size))

    def _group_score(self, fit: Fitness, group: list[int]) -> float:
        scores = [-fit.objectives[self.objectives.names[t]]
                  if self.objectives.directions[t] == "minimize"
                  else fit.objectives[self.objectives.names[t]] for t in group]
        weights = self.preference[group]
        total = weights.sum()
        return float(np.dot(weights, scores) / total) if total > 0 else float(np.mean(scores))

    def _finish_pair(self, pair: _Pair) -> tuple[list[int], np.ndarray]:
        """Pick the pair's best measured point by preference; return the merged group."""
        wl, wr = self.preference[pair.left].sum(), self.preference[pair.right].sum()
        best, best_value = None, -np.inf
        for told in pair.inner.history:
            if told.fitness.is_ok:
                value = wl * told.fitness.objectives["left"] + wr * told.fitness.objectives["right"]
                if value > best_value:
                    best, best_value = told.candidate.x, value
        pair.chosen = [0.0, 0.0] if best is None else [float(v) for v in best]
        self.done.append({k: v for k, v in pair.to_dict().items()
                          if k not in ("inner", "post_plan")})
        return pair.left + pair.right, pair.full_x(pair.chosen)

    def _advance(self) -> None:
        while len(self.groups) > 1 and all(p.required_told() for p in self.pairs):
            merged = [self._finish_pair(p) for p in self.pairs]
            carried = [self.groups[-1]] if len(self.groups) % 2 else []
            self.groups = merged + carried
            if len(self.groups) > 1:
                self.level += 1
                self._start_level()

    @property
    def finished(self) -> bool:
        """True once the root pair has made its choice."""
        return len(self.groups) == 1

    def final_coefficients(self) -> list[float] | None:
        """The composed coefficient vector of the root's choice (None until finished)."""
        return self.groups[0][1].tolist() if self.finished else None

    # ----- ask / tell ----------------------------------------------------------------
    def _wrap(self, pair_index: int, inner: Candidate) -> Candidate:
        pair = self.pairs[pair_index]
        meta = {"phase": "nested", "level": self.level, "pair": pair_index,
                "groups": [pair.left, pair.right], "coefficients": inner.x,
                "inner": inner.meta}
        return Candidate(uid=inner.uid, x=pair.full_x(inner.x).tolist(), meta=meta)

    def _ask(self, n: int) -> list[Candidate]:
        """Required points of the current level's pairs first, round-robin; then extra
        points from the pairs (their fill or front points); after the root: its front."""
        self._advance()
        wants = [p.wants() for p in self.pairs]
        quota, remaining = [0] * len(self.pairs), n
        while remaining and any(q < w for q, w in zip(quota, wants)):
            for i in range(len(self.pairs)):
                if remaining and quota[i] < wants[i]:
                    quota[i] += 1
                    remaining -= 1
        # nothing required left to hand out: extra points from the pairs still open
        extra = [i for i, p in enumerate(self.pairs)
                 if self.finished or not p.required_told()] or list(range(len(self.pairs)))
        for slot in range(remaining):
            quota[extra[slot % len(extra)]] += 1
        out = []
        for i, k in enumerate(quota):
            if k:
                out.extend(self._wrap(i, c) for c in self.pairs[i].ask(k))
        return out

    def _tell(self, results: list[tuple[Candidate, Fitness]]) -> None:
        for cand, fit in results:
            meta = cand.meta or {}
            if meta.get("phase") != "nested" or meta.get("level") != self.level:
                continue  # kept in history only: never asked, or a finished level's extra
            pair = self.pairs[meta["pair"]]
            inner_fit = (Fitness.ok({"left": self._group_score(fit, pair.left),
                                     "right": self._group_score(fit, pair.right)})
                         if fit.is_ok else Fitness(status=fit.status, error=fit.error))
            inner_cand = Candidate(uid=cand.uid, x=list(meta["coefficients"]),
                                   meta=meta["inner"])
            pair.inner.tell([(inner_cand, inner_fit)])

    # ----- state ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["nested"] = {
            "preference": self.preference.tolist(), "level": self.level, "done": self.done,
            "groups": [[g, w.tolist()] for g, w in self.groups],
            "pairs": [p.to_dict() for p in self.pairs],
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        saved = state["nested"]
        if saved["preference"] != self.preference.tolist():
            raise option_error("preference", self.preference.tolist(),
                               f"differs from the saved state's {saved['preference']}")
        self.level, self.done = saved["level"], list(saved["done"])
        self.groups = [(list(g), np.asarray(w, dtype=float)) for g, w in saved["groups"]]
        self.pairs = [_Pair.from_dict(d, self.inner_options, self.node_front_size)
                      for d in saved["pairs"]]
