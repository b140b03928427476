"""The campaign loop: ask, decode, submit, tell as results arrive, record every trial.

The optimizer only proposes and learns; the space decodes points into recipes; the
executor builds and scores them; the study records each candidate as a trial. The loop
stops when the budget of evaluations or hours is spent, or on Ctrl-C (the trials in
flight stay RUNNING; a resume runs them again). After the search, the best candidates
(chosen on the search split, :mod:`~evomerge.campaign.choice`) are scored on the report
tasks, once each.

A recipe evaluated before (same content hash) is not evaluated again: its recorded
result is told for the new candidate, whose trial says ``reused_from``. Reused results
do not count against the budget of evaluations.

Resuming (``resume=True``) rebuilds the optimizer from its saved state (saved with each
ask) and tells it every finished trial of the study again, in the order they finished
(a no-op for those it knew); trials left RUNNING
by an interrupted run are evaluated again under their own trial numbers; nothing
finished is evaluated again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from evomerge.campaign.choice import best_trials
from evomerge.campaign.fidelity import Promotion
from evomerge.campaign.folder import CampaignFolder
from evomerge.campaign.study import StudyRecord
from evomerge.evaluate.fidelity import LevelJob
from evomerge.execute.base import Executor
from evomerge.execute.batch import evaluate_all
from evomerge.optim.base import Optimizer
from evomerge.records import Candidate, Fitness

#: consecutive reused recipes after which the loop decides the optimizer has converged
REUSE_LIMIT = 200


@dataclass
class LoopStatus:
    """What the progress display shows, updated after every result."""

    evaluations: int = 0
    budget: int | None = None
    hours: float | None = None
    running: int = 0
    failures: int = 0
    reused: int = 0
    elapsed_s: float = 0.0
    best_value: float | None = None
    best_uid: str | None = None
    objective: str = ""
    run_evaluations: int = 0
    run_s: float = 0.0
    reported: int = 0
    #: seconds the loop itself spent asking, decoding, recording and telling
    driver_s: float = 0.0
    #: candidates a fidelity rule stopped before the last level, and documents scored
    pruned: int = 0
    documents: int = 0
    stopped: str | None = None

    @property
    def per_hour(self) -> float:
        return 3600.0 * self.run_evaluations / self.run_s if self.run_s > 0 else 0.0


@dataclass
class _InFlight:
    candidate: Candidate
    number: int
    recipe_hash: str
    waiting: list[tuple[Candidate, int]] = field(default_factory=list)
    #: the fidelity level being scored, the scores of the levels before it, and the
    #: seconds and documents those levels took
    level: int = 0
    prior: dict[str, dict[str, float]] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)


@dataclass
class _Queued:
    """A candidate to dispatch: a resumed trial has its number, and its last finished
    fidelity level with that level's scores."""

    candidate: Candidate
    number: int | None = None
    level: int | None = None
    level_fitness: Fitness | None = None


class CampaignLoop:
    """Runs one campaign folder with one executor until the budget is spent."""

    def __init__(self, folder: CampaignFolder, executor: Executor,
                 progress: Callable[[LoopStatus], None] | None = None,
                 reuse_limit: int = REUSE_LIMIT, close_executor: bool = True):
        self.folder, self.executor, self.progress = folder, executor, progress
        #: False: the caller goes on using the executor (and closes it)
        self.close_executor = close_executor
        self.reuse_limit = reuse_limit
        self.campaign = folder.campaign
        self.space = self.campaign.space
        self.genes = [g.name for g in self.space.genes]
        self.budget = self.campaign.config.budget
        self.status = LoopStatus(budget=self.budget.evaluations, hours=self.budget.hours,
                                 objective=self.campaign.objectives.names[0])
        fidelity = self.campaign.evaluation.fidelity
        self.promotion = (None if fidelity is None
                          else Promotion(fidelity, self.campaign.objectives.names[0]))

    def run(self, resume: bool = False) -> LoopStatus:
        record = self.folder.open_record(create=True)
        optimizer = self._optimizer(record, resume)
        self.record, self.optimizer = record, optimizer
        self._done: dict[str, tuple[str, Fitness]] = {}
        self._inflight: dict[str, _InFlight] = {}
        self._by_hash: dict[str, _InFlight] = {}
        self._queue: deque[_Queued] = deque()
        self._restore(record.trials())
        prior_s = float(record.user_attrs.get("elapsed_s", 0.0))
        start = time.monotonic()
        self._clock = lambda: prior_s + time.monotonic() - start
        self._run_start = start
        try:
            self._search()
            self._score_report()
        except KeyboardInterrupt:
            self.status.stopped = "interrupted"
            for flight in self._inflight.values():
                record.mark_interrupted(flight.number)
        finally:
            if self.close_executor:
                self.executor.close()
            record.set_attr("elapsed_s", self._clock())
            self.folder.save_optimizer(optimizer.state_dict())
        self._report()
        return self.status

    def _search(self) -> None:
        reuse_streak = 0
        while True:
            began = time.perf_counter()
            while (self.executor.pending < self.executor.workers
                   and self._may_submit(reuse_streak)):
                reuse_streak = 0 if self._next() else reuse_streak + 1
            self.status.driver_s += time.perf_counter() - began
            if self.executor.pending == 0 and not self._inflight:
                self.status.stopped = self._stop_reason(reuse_streak)
                return
            results = self.executor.results(timeout=1.0)
            began = time.perf_counter()
            for uid, fitness in results:
                self._finish(uid, fitness)
            self.status.driver_s += time.perf_counter() - began
            self._report()

    def _score_report(self) -> None:
        """Score the chosen candidates (chosen on the search split only) on the report
        tasks; those scored before, in an earlier run, are not scored again."""
        if not self.campaign.has_report_tasks:
            return
        chosen = best_trials(self.record.trials(), self.campaign.objectives,
                             self.campaign.config.report.best)
        todo = {t.candidate.uid: t for t in chosen if t.report is None}

        def record(uid: str, fitness: Fitness) -> None:
            self.record.set_report(uid, fitness)
            self.status.reported += 1
            self._report()

        evaluate_all(self.executor, {uid: self.folder.trial_recipe(t).to_dict()
                                     for uid, t in todo.items()}, "report", record)

    # -- restoring -------------------------------------------------------------------

    def _optimizer(self, record: StudyRecord, resume: bool) -> Optimizer:
        optimizer = self.campaign.build_optimizer(for_run=True)
        state, self._asked = self.folder.load_optimizer() if resume else (None, None)
        if state is not None:
            optimizer.load_state_dict(state)
        return optimizer

    def _restore(self, trials) -> None:
        finished = [t for t in trials if t.done and t.fitness is not None]
        # in the order the results came, as the optimizer was told them
        finished.sort(key=lambda t: t.finished)
        self.optimizer.tell([(t.candidate, t.fitness) for t in finished])
        for t in finished:
            if t.reused_from:
                self.status.reused += 1
            else:
                self.status.evaluations += 1
                self.status.failures += t.fitness.status == "failed"
                self.status.pruned += t.fitness.status == "pruned"
                self.status.documents += _documents(t.fitness)
                if t.recipe_hash:
                    self._done[t.recipe_hash] = (t.candidate.uid, t.fitness)
        for t in trials:
            if t.state == "RUNNING" and t.level_fitness is not None:
                self.status.documents += _documents(t.level_fitness)
            if t.state == "RUNNING":
                self._queue.append(_Queued(t.candidate, t.number, t.level, t.level_fitness))
        if self._asked is not None and self._asked.uid not in {t.candidate.uid for t in trials}:
            # proposed, then killed before its trial was recorded
            self._queue.append(_Queued(self._asked))
        self._update_best()

    # -- submitting ------------------------------------------------------------------

    def _may_submit(self, reuse_streak: int) -> bool:
        return self._stop_reason(reuse_streak) is None

    def _stop_reason(self, reuse_streak: int) -> str | None:
        if self.budget.evaluations is not None and (
                self.status.evaluations + len(self._inflight) >= self.budget.evaluations):
            return "budget"
        if self.budget.hours is not None and self._clock() >= 3600.0 * self.budget.hours:
            return "hours"
        if self.budget.documents is not None and self.status.documents >= self.budget.documents:
            return "documents"
        if reuse_streak >= self.reuse_limit:
            return "converged"
        return None

    def _next(self) -> bool:
        """Dispatch one candidate; False when its result was reused."""
        queued = self._queue.popleft() if self._queue else None
        if queued is not None:
            candidate, number = queued.candidate, queued.number
        else:
            candidate, number = self.optimizer.ask(1)[0], None
            self.folder.save_optimizer(self.optimizer.state_dict(), asked=candidate)
        try:
            recipe, clipped = self.campaign.decode(candidate)
        except Exception as exc:  # a point the space cannot decode is a failed trial
            number = self._start(candidate, None, number)
            self.status.evaluations += 1
            self.status.failures += 1
            self._close(candidate, number, Fitness.failed(f"decode failed: {exc}"))
            return True
        meta = dict(candidate.meta)
        if clipped:
            meta["clipped"] = [c.to_dict() for c in clipped]
        candidate = replace(candidate, recipe=recipe.to_dict(), meta=meta)
        digest = recipe.content_hash()
        if digest in self._done:
            uid, fitness = self._done[digest]
            number = self._start(candidate, digest, number)
            self._close(candidate, number, fitness, reused_from=uid)
            return False
        number = self._start(candidate, digest, number)
        if digest in self._by_hash:
            self._by_hash[digest].waiting.append((candidate, number))
            return False
        flight = _InFlight(candidate, number, digest)
        self._inflight[candidate.uid] = self._by_hash[digest] = flight
        if queued is not None and queued.level is not None:
            # resumed after a finished level: decide again whether it goes on
            flight.level = queued.level
            flight.spent["documents"] = float(_documents(queued.level_fitness))
            self._after_level(flight, queued.level_fitness)
        else:
            self._submit(flight)
        return True

    def _submit(self, flight: _InFlight) -> None:
        if self.promotion is None:
            self.executor.submit(flight.candidate.uid, flight.candidate.recipe)
        else:
            self.executor.submit(flight.candidate.uid, flight.candidate.recipe,
                                 job=LevelJob(flight.level, flight.prior))

    def _start(self, candidate: Candidate, digest: str | None, number: int | None) -> int:
        if number is None:
            # the optimizer's state was saved with this candidate as ``asked``: a resume
            # finds its trial by uid, so nothing needs saving again here
            number = self.record.start(candidate, self.genes, digest)
        return number

    # -- results ---------------------------------------------------------------------

    def _finish(self, uid: str, fitness: Fitness) -> None:
        flight = self._inflight[uid]
        if self.promotion is not None:
            fitness = self._spend(flight, fitness)
            if fitness.is_ok and flight.level < self.promotion.last:
                steps = self.promotion.steps(flight.level, fitness.objectives,
                                             fitness.sample_scores, flight.prior)
                self.record.record_level(flight.number, flight.level, fitness, steps)
                self._after_level(flight, fitness)
                return
        else:
            self.status.documents += _documents(fitness)
        self._complete(flight, fitness)

    def _after_level(self, flight: _InFlight, fitness: Fitness) -> None:
        """After a recorded level below the last: the candidate goes on to the next level,
        or ends as a pruned result with that level's scores."""
        if self.promotion.goes_on(self.record.study, self.record.frozen_trial(flight.number)):
            flight.level += 1
            flight.prior = fitness.sample_scores
            self._submit(flight)
            return
        self.status.pruned += 1
        self._complete(flight, replace(fitness, status="pruned"))

    def _complete(self, flight: _InFlight, fitness: Fitness) -> None:
        """The candidate's final result: its trial and every candidate waiting on the
        same recipe are closed with it."""
        uid = flight.candidate.uid
        self._inflight.pop(uid)
        self._by_hash.pop(flight.recipe_hash, None)
        self.status.evaluations += 1
        self.status.run_evaluations += 1
        self.status.failures += fitness.status == "failed"
        self._done[flight.recipe_hash] = (uid, fitness)
        self._close(flight.candidate, flight.number, fitness)
        for candidate, number in flight.waiting:
            self._close(candidate, number, fitness, reused_from=uid)

    def _spend(self, flight: _InFlight, fitness: Fitness) -> Fitness:
        """Add a level's seconds and documents to the candidate's; the last result
        carries the totals."""
        timings = fitness.timings
        for key in ("merge_s", "eval_s", "model_s", "documents"):
            flight.spent[key] = flight.spent.get(key, 0.0) + timings.get(key, 0.0)
        if "began" in timings:  # the worker's wall time on each level, for its busy share
            flight.spent["busy_s"] = (flight.spent.get("busy_s", 0.0)
                                      + timings["ended"] - timings["began"])
        self.status.documents += int(fitness.timings.get("documents", 0))
        return replace(fitness, timings={**fitness.timings, **flight.spent})

    def _close(self, candidate: Candidate, number: int, fitness: Fitness,
               reused_from: str | None = None) -> None:
        self.record.finish(number, fitness, self.campaign.objectives, reused_from)
        if reused_from:
            self.status.reused += 1
        # not saved here: the next ask saves the state with this result in it, and a
        # resume before that tells it again from the study (in the order results came)
        self.optimizer.tell([(candidate, fitness)])
        self._update_best()

    def _update_best(self) -> None:
        best = self.optimizer.best()
        if best is not None:
            self.status.best_value = best.fitness.objectives[self.status.objective]
            self.status.best_uid = best.candidate.uid

    def _report(self) -> None:
        self.status.running = len(self._inflight)
        self.status.elapsed_s = self._clock()
        self.status.run_s = time.monotonic() - self._run_start
        if self.progress is not None:
            self.progress(self.status)


def _documents(fitness: Fitness) -> int:
    """Search documents a result scored (those with a per-document score)."""
    return sum(map(len, fitness.sample_scores.values()))
