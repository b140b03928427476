"""The Ray executor: a pool of actors, one per GPU (one per CPU slot where there is none).

Each actor is a :class:`~evomerge.execute.worker.Worker`: it loads the sources once,
allocates one model and builds every candidate into it in place. The pool gives a
candidate to the first free actor and hands results back as they finish, so a worker
never waits for another one.

Faults never stop a campaign:

- an actor process that dies (killed, crashed, out of host memory) is replaced, and its
  candidate runs again on the new actor, up to ``max_attempts`` times in all; after that
  the candidate is a failed result saying so;
- a candidate that runs past ``candidate_timeout_s`` is a failed result; its actor is
  killed (the only way to stop a running Ray call) and replaced;
- everything a candidate itself raises, GPU out-of-memory included, comes back from the
  worker as a failed Fitness (:meth:`Worker.evaluate`).

Ray is imported in this module only. Without an address the executor starts a local Ray
and stops it on :meth:`close`; with one it joins that cluster (``host:port`` of a head
started with ``ray start --head``) after checking within ``CONNECT_TIMEOUT_S`` that a
head answers there.

>>> # with RayExecutor(spec, workers=2) as pool:
>>> #     pool.submit("a", recipe); pool.results(timeout=None)
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from evomerge.errors import ConfigError, EvomergeError
from evomerge.evaluate.fidelity import LevelJob
from evomerge.execute.base import Executor, WorkerSpec
from evomerge.records import Fitness

#: seconds to find and join a Ray head given with --address
CONNECT_TIMEOUT_S = 30.0
#: a candidate is run at most this many times when its worker dies under it
MAX_ATTEMPTS = 3


class _RemoteWorker:
    """The actor body: a Worker named after its slot, host and process."""

    def __init__(self, spec: WorkerSpec, slot: int):
        from evomerge.execute.worker import Worker

        self.worker = Worker(spec, worker_id=f"ray{slot}:{socket.gethostname()}:{os.getpid()}")

    def ready(self) -> dict[str, Any]:
        return {"id": self.worker.id, "pid": os.getpid(), "load_s": self.worker.load_s,
                "device": self.worker.device}

    def evaluate(self, recipe: dict[str, Any], split: str, job: LevelJob | None) -> Fitness:
        return self.worker.evaluate(recipe, split, job)


@dataclass
class _Job:
    uid: str
    recipe: dict[str, Any]
    split: str
    level: LevelJob | None = None
    attempts: int = 0
    slot: int = -1
    started: float = 0.0


class RayExecutor(Executor):
    """Candidates on a pool of Ray actors (see the module docstring)."""

    def __init__(self, spec: WorkerSpec, workers: int = 1, address: str | None = None,
                 candidate_timeout_s: float | None = None, max_attempts: int = MAX_ATTEMPTS):
        import ray

        self._ray = ray
        self.spec, self.workers = spec, workers
        self.timeout_s, self.max_attempts = candidate_timeout_s, max_attempts
        self._owns_ray = connect(address)
        try:
            self._device, resources = self._placement(spec.device, workers)
            self._actor_class = ray.remote(**resources, max_restarts=0)(_RemoteWorker)
            self._actors: dict[int, Any] = {}
            self._ready: dict[int, Any] = {}
            for slot in range(workers):
                self._start(slot)
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        self._free: deque[int] = deque(range(workers))
        self._last_uid: dict[int, str] = {}  # slot -> the candidate it scored last
        self._backlog: deque[_Job] = deque()
        self._running: dict[Any, _Job] = {}
        #: actors started to replace dead or stuck ones
        self.replaced = 0

    # -- the pool --------------------------------------------------------------------

    def _placement(self, device: str, workers: int) -> tuple[str, dict[str, float]]:
        """The device the actors use and the resources each one takes; refuses a pool
        the cluster cannot hold, which would otherwise wait forever."""
        available = self._ray.cluster_resources()
        gpus, cpus = available.get("GPU", 0.0), available.get("CPU", 0.0)
        if device == "auto":
            device = "cuda" if gpus >= 1 else "cpu"
        kind, have = ("GPU", gpus) if device == "cuda" else ("CPU", cpus)
        if have < workers:
            raise ConfigError(None, "executor.workers", workers,
                              f"the Ray cluster has {have:g} {kind}s and each {device} "
                              f"worker takes one")
        return device, ({"num_gpus": 1, "num_cpus": 0} if device == "cuda"
                        else {"num_cpus": 1})

    def _start(self, slot: int) -> None:
        spec = replace(self.spec, device=self._device)
        actor = self._actor_class.remote(spec, slot)
        self._actors[slot] = actor
        self._ready[slot] = actor.ready.remote()

    def _wait_ready(self) -> None:
        """Block until every first actor has loaded its sources; a worker that cannot
        start (a model that does not load, too little memory) stops the run here."""
        try:
            self._ray.get(list(self._ready.values()))
        except self._ray.exceptions.RayError as exc:
            raise EvomergeError(f"a Ray worker could not start: {_short(exc)}") from None

    def _replace(self, slot: int) -> None:
        self._ray.kill(self._actors[slot], no_restart=True)
        self.replaced += 1
        self._start(slot)

    def worker_info(self) -> dict[int, dict[str, Any]]:
        """Slot -> id, pid, load time and device of its current actor."""
        slots = sorted(self._ready)
        return dict(zip(slots, self._ray.get([self._ready[s] for s in slots])))

    # -- the Executor protocol -------------------------------------------------------

    def submit(self, uid: str, recipe: dict[str, Any], split: str = "search",
               job: LevelJob | None = None) -> None:
        self._backlog.append(_Job(uid, recipe, split, job))
        self._dispatch()

    @property
    def pending(self) -> int:
        return len(self._backlog) + len(self._running)

    def _dispatch(self) -> None:
        while self._free and self._backlog:
            job = self._backlog.popleft()
            job.slot, job.started = self._free_slot_for(job.uid), time.monotonic()
            job.attempts += 1
            self._last_uid[job.slot] = job.uid
            ref = self._actors[job.slot].evaluate.remote(job.recipe, job.split, job.level)
            self._running[ref] = job

    def _free_slot_for(self, uid: str) -> int:
        """A free slot, the one that last scored ``uid`` if it is free: the next fidelity
        level of a candidate finds it built there."""
        for slot in self._free:
            if self._last_uid.get(slot) == uid:
                self._free.remove(slot)
                return slot
        return self._free.popleft()

    def results(self, timeout: float | None = None) -> list[tuple[str, Fitness]]:
        if not self._running:
            return []
        ray = self._ray
        wait = timeout
        if self.timeout_s is not None:
            first_deadline = min(j.started for j in self._running.values()) + self.timeout_s
            left = max(first_deadline - time.monotonic(), 0.0)
            wait = left if wait is None else min(wait, left)
        ready, _ = ray.wait(list(self._running), num_returns=1, timeout=wait)
        if ready:  # collect everything else that is done too
            ready, _ = ray.wait(list(self._running), num_returns=len(self._running),
                                timeout=0)
        out = [r for ref in ready if (r := self._collect(ref)) is not None]
        out += self._expire()
        self._dispatch()
        return out

    def _collect(self, ref: Any) -> tuple[str, Fitness] | None:
        job = self._running.pop(ref)
        ray = self._ray
        try:
            fitness = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the worker's own code raised
            fitness = Fitness.failed(_short(exc))
        except ray.exceptions.RayError as exc:  # the actor process is gone
            self._replace(job.slot)
            self._free.append(job.slot)
            if job.attempts < self.max_attempts:
                self._backlog.appendleft(job)
                return None
            return job.uid, Fitness.failed(
                f"its worker died {job.attempts} times while evaluating it; "
                f"last: {_short(exc)}")
        self._free.append(job.slot)
        return job.uid, fitness

    def _expire(self) -> list[tuple[str, Fitness]]:
        """Candidates past their time: failed, their actors replaced."""
        if self.timeout_s is None:
            return []
        now, out = time.monotonic(), []
        for ref, job in list(self._running.items()):
            if now - job.started >= self.timeout_s:
                del self._running[ref]
                self._replace(job.slot)
                self._free.append(job.slot)
                out.append((job.uid, Fitness.failed(
                    f"timed out after {self.timeout_s:g} s (executor.candidate_timeout_s)",
                    timings={"total_s": now - job.started})))
        return out

    def close(self) -> None:
        ray = self._ray
        for actor in getattr(self, "_actors", {}).values():
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone with its node
                pass
        self._actors = {}
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
            self._owns_ray = False


def connect(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S) -> bool:
    """Start a local Ray (``address`` None) or join the head at ``address``; True when
    this call connected (so :meth:`RayExecutor.close` stops the local Ray, or leaves the
    cluster, which goes on running)."""
    import ray

    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    if address is None:
        ray.init(**quiet)
        return True
    _probe(address, timeout_s)
    done: list[BaseException | None] = []

    def join() -> None:
        try:
            ray.init(address=address, **quiet)
            done.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            done.append(exc)

    thread = threading.Thread(target=join, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not done:
        raise ConfigError(None, "--address", address,
                          f"the Ray head there did not accept this driver within "
                          f"{timeout_s:g} s")
    if done[0] is not None:
        reason = _short(done[0])
        if "InvalidAuthToken" in _chain(done[0]):
            reason = ("the head wants token authentication: set RAY_AUTH_MODE=token and "
                      "give its token (RAY_AUTH_TOKEN, or the file ~/.ray/auth_token)")
        raise ConfigError(None, "--address", address,
                          f"could not join the Ray cluster: {reason}")
    return True


def _probe(address: str, timeout_s: float) -> None:
    """Fail fast, with a clear message, where nothing listens at ``host:port``."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(None, "--address", address,
                          "must be HOST:PORT of a Ray head (`ray start --head` prints it)")
    try:
        socket.create_connection((host, int(port)), timeout=min(timeout_s, 10.0)).close()
    except OSError as exc:
        raise ConfigError(None, "--address", address,
                          f"no Ray head answers there ({exc.strerror or exc}); start one "
                          "with `ray start --head`, or leave --address out to run a "
                          "local Ray") from None


def _chain(exc: BaseException | None) -> str:
    """The text of an exception and of every exception that caused it."""
    parts = []
    while exc is not None:
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def _short(exc: BaseException, limit: int = 2000) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + " ..."
