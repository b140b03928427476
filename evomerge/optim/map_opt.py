"""MAP behind the ask/tell protocol (Li et al. 2024, arXiv:2406.07529).

The box is ``c ∈ [0, 1]^T``: one scaling coefficient per task vector. Phases:

1. **plan** — ``ask`` hands out the initial plan (origin, one-hot corners, Sobol; see
   :mod:`evomerge.optim.map_plan`). Asked beyond the plan while results are pending,
   it continues the Sobol sequence ("fill" points); those are fitted too.
2. **front** — once every plan point is told (failures count as told and are left out
   of the fits), one quadratic surrogate per objective is fitted
   (:mod:`evomerge.optim.map_surrogate`) and a multi-objective search runs on them
   inside the bounding box of the evaluated points (NSGA-II, or NSGA-III for four or
   more objectives). The next ``ask(n)`` returns ``n`` points of the predicted front,
   thinned by crowding, for real evaluation.
3. **bayes** (``bayes_rounds`` times) — the next ``ask(n)`` returns ``n`` points where the
   leave-one-out error of the surrogates is largest (:mod:`evomerge.optim.map_bayes`).
   While they are pending, asks return further predicted-front points; once they are
   told the surrogates are refitted and phase 2 repeats.
4. **final** — asks keep returning predicted-front points not handed out before, from a
   fit on everything told so far (front results included).

Every told ``ok`` candidate with an ``x`` feeds the fits, asked or not. Links per
objective (``links`` option): ``"auto"`` picks ``sigmoid`` for a maximised objective
whose values all lie in [0, 1] (an accuracy), ``softplus`` for a minimised one whose
values are all >= 0 (a loss), ``identity`` otherwise. Each asked candidate carries
``meta["phase"]`` and, from phase 2 on, ``meta["predicted"]`` (surrogate values).

>>> from evomerge.records import Fitness
>>> from evomerge.optim.base import ObjectiveSpec
>>> spec = ObjectiveSpec(("a", "b"), ("maximize", "maximize"))
>>> opt = MapOptimizer(2, spec, seed=0)
>>> plan = opt.ask(12)
>>> def score(x):  # each task wants its own coefficient high and the other low
...     return Fitness.ok({"a": 1 - (1 - x[0]) ** 2 - x[1] ** 2 / 2,
...                        "b": 1 - (1 - x[1]) ** 2 - x[0] ** 2 / 2})
>>> opt.tell([(c, score(c.x)) for c in plan])
>>> front = opt.ask(4)
>>> [c.meta["phase"] for c in front]
['front', 'front', 'front', 'front']
>>> opt.tell([(c, score(c.x)) for c in front])
>>> row = opt.front_report()[0]  # the surrogates are exact here: quadratic truth
>>> abs(row["predicted"]["a"] - row["measured"]["a"]) < 1e-9, row["on_front"]
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evomerge.optim.base import ObjectiveSpec, Optimizer, register_optimizer
from evomerge.optim.map_bayes import error_scores, resample_points
from evomerge.optim.map_nsga import nsga2, select_spread
from evomerge.optim.map_nsga3 import nsga3
from evomerge.optim.map_plan import initial_plan
from evomerge.optim.options import check_known, choice, option_error, whole_number
from evomerge.optim.map_surrogate import (
    LINKS, QuadraticSurrogate, fit_quadratic, link_accepts, loo_residuals,
)
from evomerge.optim.sobol import sobol_points
from evomerge.pareto import non_dominated_mask
from evomerge.records import Candidate, Fitness

# Merges whose coefficients differ by less than this (Euclidean, in coefficient units)
# count as the same merge: asking both would spend an evaluation on nothing new.
_SAME_MERGE = 1e-3

#: the multi-objective searches MAP runs on its surrogates ("auto": NSGA-III from four
#: objectives on, NSGA-II below)
MOEAS = ("auto", "nsga2", "nsga3")


def _new_points(points: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """Indices of ``points`` farther than ``_SAME_MERGE`` from ``taken`` and from each
    other (greedy, in order)."""
    kept: list[int] = []
    seen = [row for row in taken]
    for i, point in enumerate(points):
        if not seen or np.min(np.linalg.norm(np.asarray(seen) - point, axis=1)) > _SAME_MERGE:
            kept.append(i)
            seen.append(point)
    return np.asarray(kept, dtype=int)


@register_optimizer
class MapOptimizer(Optimizer):
    """MAP: quadratic surrogates per objective, an evolutionary front on them, real
    evaluation of that front, and optional Bayesian resampling rounds.

    Options: ``plan_size`` (default ``(T+1)(T+2)``), ``links`` (``"auto"``, one link
    name, or ``{objective: link}``), ``bayes_rounds`` (default 2), ``moea``
    (``"auto"``, ``"nsga2"``, ``"nsga3"``), ``pop_size`` / ``generations`` of the
    surrogate search (default 100 / 100), ``pool_size`` of Bayesian candidates (1024).
    """

    name = "map"

    def __init__(self, dim: int, objectives: ObjectiveSpec | None = None, seed: int = 0,
                 **options: Any):
        super().__init__(dim, objectives, seed)
        check_known(options, ("plan_size", "links", "bayes_rounds", "moea", "pop_size",
                              "generations", "pool_size"), f"optimizer {self.name!r}")
        self._plan = initial_plan(dim, options.get("plan_size"), seed)
        self.options = {
            "plan_size": len(self._plan),
            "links": self._check_links(options.get("links", "auto")),
            "bayes_rounds": whole_number("bayes_rounds", options.get("bayes_rounds", 2), 0),
            "moea": choice("moea", options.get("moea", "auto"), MOEAS),
            "pop_size": whole_number("pop_size", options.get("pop_size", 100), 4),
            "generations": whole_number("generations", options.get("generations", 100), 0),
            "pool_size": whole_number("pool_size", options.get("pool_size", 1024), 1),
        }
        self.stage = "plan"
        self.plan_asked = 0
        self.fill_asked = 0
        self.bayes_done = 0
        self.batch_uids: list[str] = []
        self.issued: list[dict[str, Any]] = []  # every asked candidate: uid, x, phase, predicted
        self._cache: dict[str, Any] = {}

    # ----- option checks -------------------------------------------------------------
    def _check_links(self, links: Any) -> str | dict[str, str]:
        if isinstance(links, str):
            return choice("links", links, ("auto", *LINKS))
        if not isinstance(links, dict):
            raise option_error("links", links,
                               "must be a link name or a mapping objective -> link name")
        for name, link in links.items():
            if name not in self.objectives.names:
                raise option_error(f"links.{name}", link,
                                   f"names no objective; objectives: {list(self.objectives.names)}")
            choice(f"links.{name}", link, ("auto", *LINKS))
        return dict(links)

    # ----- data and fits -------------------------------------------------------------
    def fit_data(self) -> tuple[np.ndarray, np.ndarray]:
        """Every told ok point with an ``x``: coefficients (k, T), measured values (k, m)."""
        xs, ys = [], []
        for told in self.history:
            if not told.fitness.is_ok or told.candidate.x is None:
                continue
            xs.append(told.candidate.x)
            ys.append([told.fitness.objectives[name] for name in self.objectives.names])
        return np.asarray(xs, dtype=float).reshape(-1, self.dim), np.asarray(
            ys, dtype=float).reshape(-1, len(self.objectives.names))

    def _link_for(self, index: int, values: np.ndarray) -> str:
        name = self.objectives.names[index]
        links = self.options["links"]
        link = links if isinstance(links, str) else links.get(name, "auto")
        if link != "auto":
            return link
        direction = self.objectives.directions[index]
        if direction == "maximize" and link_accepts("sigmoid", values):
            return "sigmoid"
        if direction == "minimize" and link_accepts("softplus", values):
            return "softplus"
        return "identity"

    def _derived_seed(self, tag: int) -> int:
        """A seed fixed by (seed, amount of data, purpose): the same history, the same asks."""
        n = len(self.fit_data()[0])
        return int(np.random.SeedSequence([self.seed, n, tag]).generate_state(1)[0])

    def surrogates(self) -> dict[str, QuadraticSurrogate]:
        """One fitted surrogate per objective, on every ok point told so far."""
        x, y = self.fit_data()
        key = ("fit", len(x))
        if self._cache.get("fit_key") != key:
            if len(x) == 0:
                raise ValueError("MAP has no successful evaluation to fit yet")
            self._cache = {"fit_key": key, "fit": {
                name: fit_quadratic(x, y[:, k], self._link_for(k, y[:, k]))
                for k, name in enumerate(self.objectives.names)
            }}
        return self._cache["fit"]

    def predict(self, x: Sequence[Sequence[float]]) -> np.ndarray:
        """Surrogate predictions (objectives' own units), shape (len(x), objectives)."""
        fits = self.surrogates()
        c = np.atleast_2d(np.asarray(x, dtype=float))
        return np.stack([fits[name].predict(c) for name in self.objectives.names], axis=1)

    def _predicted_losses(self, x: np.ndarray) -> np.ndarray:
        signs = np.array([-1.0 if d == "maximize" else 1.0 for d in self.objectives.directions])
        return self.predict(x) * signs

    def sampled_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounding box of the successfully evaluated points: the surrogate search's box."""
        x, _ = self.fit_data()
        return x.min(axis=0), x.max(axis=0)

    def surrogate_front(self) -> tuple[np.ndarray, np.ndarray]:
        """Points of the predicted Pareto front and their predicted losses (cached per fit)."""
        self.surrogates()
        if "front" not in self._cache:
            lower, upper = self.sampled_box()
            moea = self.options["moea"]
            if moea == "auto":
                moea = "nsga3" if len(self.objectives.names) > 3 else "nsga2"
            search = nsga3 if moea == "nsga3" else nsga2
            self._cache["front"] = search(
                self._predicted_losses, lower, upper, pop_size=self.options["pop_size"],
                generations=self.options["generations"], seed=self._derived_seed(1),
                initial=self.fit_data()[0],
            )
        return self._cache["front"]

    # ----- asking --------------------------------------------------------------------
    def _resolved(self) -> bool:
        told = {t.candidate.uid for t in self.history}
        return all(uid in told for uid in self.batch_uids)

    def _advance(self) -> None:
        waiting = self.stage == "bayes_wait" or (
            self.stage == "plan" and self.plan_asked == len(self._plan))
        if waiting and self._resolved():
            self.stage = "front"

    def phase(self) -> str:
        """What the next ask returns: "plan", "front", "bayes", "bayes_wait" (front points
        while Bayesian points are pending) or "final" (more front points).

        In "plan" with the plan fully asked, asks return Sobol fill points until every
        plan point is told.
        """
        self._advance()
        return self.stage

    def _emit(self, points: np.ndarray, phase: str, predicted: bool) -> list[Candidate]:
        preds = self.predict(points) if predicted and len(points) else None
        out = []
        for i, point in enumerate(points):
            meta: dict[str, Any] = {"phase": phase}
            if preds is not None:
                meta["predicted"] = dict(zip(self.objectives.names, map(float, preds[i])))
            cand = Candidate(x=[float(v) for v in point], meta=meta)
            self.issued.append({"uid": cand.uid, "x": cand.x, **meta})
            out.append(cand)
        return out

    def _fill(self, n: int) -> list[Candidate]:
        """Continue the plan's Sobol sequence (used while nothing better can be asked)."""
        skip = len(self._plan) - (self.dim + 1) + self.fill_asked
        points = sobol_points(self.dim, n, self.seed, skip=skip)
        self.fill_asked += n
        return self._emit(points, "fill", predicted=False)

    def _front_points(self, n: int) -> list[Candidate]:
        if len(self.fit_data()[0]) == 0:
            return self._fill(n)
        x, losses = self.surrogate_front()
        taken = np.asarray([item["x"] for item in self.issued] or np.zeros((0, self.dim)))
        taken = np.vstack([taken.reshape(-1, self.dim), self.fit_data()[0]])
        fresh = _new_points(x, taken)
        x, losses = x[fresh], losses[fresh]
        chosen = select_spread(losses, n)
        out = self._emit(x[chosen], "front", predicted=True)
        # a front with fewer new points than asked (e.g. one objective) is topped up
        return out + (self._fill(n - len(out)) if len(out) < n else [])

    def _bayes_points(self, n: int) -> list[Candidate]:
        x, y = self.fit_data()
        if len(x) < 2:
            return self._fill(n)
        residuals = np.stack([
            loo_residuals(x, y[:, k], self._link_for(k, y[:, k]))
            for k in range(y.shape[1])
        ], axis=1)
        scores = error_scores(residuals, np.ptp(y, axis=0))
        lower, upper = self.sampled_box()
        points = resample_points(x, scores, n, lower, upper, self._derived_seed(2),
                                 self.options["pool_size"])
        return self._emit(points, "bayes", predicted=True)

    def _ask(self, n: int) -> list[Candidate]:
        """``n`` candidates from the current phase (see the module docstring)."""
        if self.phase() == "plan":
            take = min(n, len(self._plan) - self.plan_asked)
            points = self._plan[self.plan_asked:self.plan_asked + take]
            self.plan_asked += take
            out = self._emit(points, "plan", predicted=False)
            self.batch_uids.extend(c.uid for c in out)
            return out + (self._fill(n - take) if take < n else [])
        if self.stage == "front":
            self.stage = "bayes" if self.bayes_done < self.options["bayes_rounds"] else "final"
            return self._front_points(n)
        if self.stage == "bayes":
            out = self._bayes_points(n)
            self.batch_uids = [c.uid for c in out]
            self.bayes_done += 1
            self.stage = "bayes_wait"
            return out
        return self._front_points(n)  # "bayes_wait" and "final"

    def tell(self, results: Sequence[tuple[Candidate, Fitness]]) -> None:
        """Check every result first, so a bad one leaves the history untouched."""
        for cand, fit in results:
            if cand.x is not None and len(cand.x) != self.dim:
                raise ValueError(f"candidate {cand.uid} has {len(cand.x)} coordinates, "
                                 f"MAP works in {self.dim}")
            missing = [n for n in self.objectives.names if fit.is_ok and n not in fit.objectives]
            if missing:
                raise ValueError(f"candidate {cand.uid}: ok fitness lacks objective(s) {missing}")
        super().tell(results)

    def _tell(self, results: list[tuple[Candidate, Fitness]]) -> None:
        """Nothing to update eagerly: fits are recomputed from the history when needed."""

    # ----- reporting and state -------------------------------------------------------
    def front_report(self) -> list[dict[str, Any]]:
        """Every predicted-front point asked so far: x, surrogate-predicted values at ask
        time, measured values (None until told), status, and whether it is on the
        measured front (non-dominated among the measured front points)."""
        by_uid = {t.candidate.uid: t.fitness for t in self.history}
        rows = []
        for item in self.issued:
            if item["phase"] != "front":
                continue
            fit = by_uid.get(item["uid"])
            rows.append({
                "uid": item["uid"], "x": item["x"], "predicted": item["predicted"],
                "measured": dict(fit.objectives) if fit is not None and fit.is_ok else None,
                "status": fit.status if fit is not None else "pending", "on_front": False,
            })
        measured = [r for r in rows if r["measured"] is not None]
        if measured:
            values = [[r["measured"][n] for n in self.objectives.names] for r in measured]
            for row, keep in zip(measured, non_dominated_mask(values, self.objectives.directions)):
                row["on_front"] = bool(keep)
        return rows

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["map"] = {
            "options": self.options, "stage": self.stage, "plan_asked": self.plan_asked,
            "fill_asked": self.fill_asked, "bayes_done": self.bayes_done,
            "batch_uids": list(self.batch_uids), "issued": self.issued,
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        saved = state["map"]
        if saved["options"] != self.options:
            raise option_error(None, self.options,
                               f"differ from the options the state was saved with: "
                               f"{saved['options']}")
        self.stage, self.plan_asked = saved["stage"], saved["plan_asked"]
        self.fill_asked, self.bayes_done = saved["fill_asked"], saved["bayes_done"]
        self.batch_uids = list(saved["batch_uids"])
        self.issued = [dict(item) for item in saved["issued"]]
        self._cache = {}
