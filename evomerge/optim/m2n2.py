"""M2N2, Model Merging with Natural Niches, behind the ask/tell protocol.

Abrantes, Lange, Tang (2025), "Competition and Attraction Improve Model Fusion"
(GECCO 2025, arXiv:2508.16204); details checked against the authors' released code.

An archive of P members keeps a score matrix S (members x training datapoints), built
from ``Fitness.sample_scores`` (task -> {doc_id: score >= 0}). One step:

1. parent A ∝ shared fitness f_i = sum_j S_ij / z_j^alpha, z_j = sum_k S_kj
   (:mod:`~evomerge.optim.m2n2_selection`);
2. parent B ∝ attraction g(A, B) = sum_j max(S_Bj - S_Aj, 0) / z_j^alpha, or ∝ f when
   every g is 0;
3. child = split-point SLERP of A and B (:mod:`~evomerge.optim.m2n2_crossover`), plus
   N(0, 0.01^2) noise when the search starts from scratch;
4. once evaluated, the child's scores join S and the member with the lowest shared
   fitness over all P+1 is dropped, possibly the child (:mod:`~evomerge.optim.m2n2_archive`).

:meth:`M2N2.best` is the member with the best raw training score.

Members are flat weight vectors (vector form) or coefficient recipes over basis
tensors (coefficient form, for LLMs: the archive never holds whole models); see
:mod:`~evomerge.optim.m2n2_forms` for how each travels in ``Candidate.params`` and
:mod:`~evomerge.optim.m2n2_options` for the options.

Asking: the starting members come first (they must be scored like any child); after
them every candidate is a child of the current archive. ``ask(n)`` draws all n
children's parents before any of them returns (one batch, numbered in
``meta["m2n2"]["batch"]``); ``tell`` inserts each result as it arrives, in any order.
``meta["m2n2"]`` also says what the candidate is (``role``: ``start`` or ``child``) and,
for a child, its draws: ``w`` and ``split`` (an index into the flat vector) or
``split_group`` (the first group on the 1 - w side).
Before any result is back, parents are drawn uniformly from the starting members.
Failed or pruned results are dropped; a never-asked candidate joins like a child if it
carries a genome.

``history`` keeps every result without its weight vector and per-sample scores: 50,000
full records of a small network would not fit in memory, and the archive keeps both
for its members.

>>> import numpy as np
>>> target = np.array([1.0, -1.0, 0.5, 0.0], np.float32)
>>> def evaluate(v):     # per-coordinate closeness to a target, in (0, 1]
...     return Fitness.ok({"score": 0.0}, sample_scores={
...         "toy": {str(i): float(np.exp(-abs(v[i] - target[i]))) for i in range(4)}})
>>> opt = M2N2(4, seed=0, population=6, noise_std=0.1)
>>> for _ in range(300):
...     (cand,) = opt.ask(1)
...     opt.tell([(cand, evaluate(candidate_vector(cand)))])
>>> bool(np.abs(candidate_vector(opt.best().candidate) - target).max() < 0.3)
True
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from evomerge.optim.base import ObjectiveSpec, Optimizer, Told, register_optimizer
from evomerge.optim.m2n2_archive import Archive, Member, ScoreColumns
from evomerge.optim.m2n2_forms import CoefficientForm, VectorForm, candidate_vector
from evomerge.optim.m2n2_options import M2N2Options
from evomerge.optim.m2n2_selection import choose_parents
from evomerge.records import Candidate, Fitness

__all__ = ["M2N2", "candidate_vector"]

# a second stream for candidate ids, so that ids never shift the algorithm's draws
_UID_STREAM = 0x6D326E32


@dataclass
class _Pending:
    genome: Any
    parents: list[str]
    batch: int


@register_optimizer
class M2N2(Optimizer):
    """Model Merging with Natural Niches; options in :mod:`~evomerge.optim.m2n2_options`.

    >>> opt = M2N2(3, seed=1, random_init=2)
    >>> [c.meta["m2n2"]["role"] for c in opt.ask(3)]   # two starting members, one child
    ['start', 'start', 'child']
    """

    name = "m2n2"

    def __init__(self, dim: int, objectives: ObjectiveSpec | None = None, seed: int = 0,
                 **options: Any):
        super().__init__(dim, objectives, seed)
        self.options = M2N2Options.parse(dim, options)
        self._build()
        self.rng = np.random.default_rng(seed)
        self._uid_rng = np.random.default_rng([seed, _UID_STREAM])
        self._starting: dict[str, Any] = {}
        for genome in self._starting_genomes():
            self._starting[self._new_uid()] = genome
        self._queue: list[str] = list(self._starting)
        self._pending: dict[str, _Pending] = {}
        self._columns: ScoreColumns | None = None
        self.batches = 0
        self.evaluations = 0

    def _build(self) -> None:
        o = self.options
        if o.coefficient_form:
            self.form: VectorForm | CoefficientForm = CoefficientForm(
                o.groups, np.asarray(o.group_sizes), self.dim // len(o.groups), o.gram)
        else:
            self.form = VectorForm(self.dim, o.noise_std)
        self.archive = Archive(o.population, o.alpha)

    def _starting_genomes(self) -> list[Any]:
        o = self.options
        if o.initial is not None:
            return [m.copy() for m in o.initial]
        if o.coefficient_form:
            # each basis tensor on its own: with K+1 source models, the sources themselves
            groups, n_basis = self.form.shape
            return [np.tile(np.eye(n_basis)[k], (groups, 1)) for k in range(n_basis)]
        return [np.float32(o.init_std) * self.rng.standard_normal(self.dim, np.float32)
                for _ in range(o.random_init)]

    def _new_uid(self) -> str:
        return f"{int(self._uid_rng.integers(2**48)):012x}"

    def set_gram(self, gram: Any) -> None:
        """Give the coefficient form its (G, K+1, K+1) basis Gram matrices."""
        self.options.gram = self.options.check_gram(gram, self.dim)
        self.form.gram = self.options.gram

    # ----------------------------------------------------------------- ask / tell

    def _ask(self, n: int) -> list[Candidate]:
        batch, self.batches = self.batches, self.batches + 1
        out = []
        for _ in range(n):
            if self._queue:
                uid = self._queue.pop(0)
                genome, parents, info = self._starting[uid], [], {"role": "start"}
            else:
                genome, parents, info = self._breed()
                uid = self._new_uid()
            self._pending[uid] = _Pending(genome, parents, batch)
            out.append(Candidate(uid=uid, params=self.form.candidate_params(genome),
                                 parents=parents, meta={"m2n2": {**info, "batch": batch}}))
        return out

    def _breed(self) -> tuple[Any, list[str], dict[str, Any]]:
        o = self.options
        if self.archive.members:
            a, b = choose_parents(self.archive.scores, self.rng, o.alpha, o.attraction)
            pa, pb = self.archive.members[a], self.archive.members[b]
            (uid_a, genome_a), (uid_b, genome_b) = (pa.uid, pa.genome), (pb.uid, pb.genome)
        else:
            uids = list(self._starting)
            uid_a = uids[int(self.rng.integers(len(uids)))]
            uid_b = uids[int(self.rng.integers(len(uids)))]
            genome_a, genome_b = self._starting[uid_a], self._starting[uid_b]
        child, info = self.form.crossover(genome_a, genome_b, self.rng, o.split_point)
        return child, [uid_a, uid_b], {"role": "child", **info}

    def _history_entry(self, candidate: Candidate, fitness: Fitness) -> Told:
        """A slim copy: the archive keeps weights and per-sample scores for its members."""
        return Told(self.form.strip(candidate), replace(fitness, sample_scores={}))

    def _tell(self, results: list[tuple[Candidate, Fitness]]) -> None:
        """Insert each ok result into the archive. Every result is checked first (score
        row, genome), so a bad one raises before anything changes."""
        columns, members = self._columns, []
        for cand, fit in results:
            if not fit.is_ok:
                continue
            columns = columns or ScoreColumns.from_fitness(fit, cand.uid)
            row = columns.row(fit, cand.uid)
            pending = self._pending.get(cand.uid)
            if pending is not None:
                genome, parents = pending.genome, pending.parents
            else:
                genome, parents = self.form.genome_from_candidate(cand), list(cand.parents)
            members.append((Member(cand.uid, genome, parents, replace(fit, sample_scores={})),
                            row))
        self._columns = columns
        for cand, _ in results:
            self._pending.pop(cand.uid, None)
            if cand.uid in self._queue:  # a starting member told before it was asked
                self._queue.remove(cand.uid)
        for member, row in members:
            self.archive.insert(member, row)
            self.evaluations += 1
        if self.archive.members and not self._queue:
            self._starting.clear()  # only needed while there is no archive to breed from

    def best(self) -> Told | None:
        """The archive member with the best raw training score (sum over datapoints)."""
        if not self.archive.members:
            return None
        member = self.archive.members[self.archive.best_index()]
        cand = Candidate(uid=member.uid, params=self.form.candidate_params(member.genome),
                         parents=list(member.parents))
        return Told(cand, member.fitness)

    # ---------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        to_json = self.form.to_json
        state = super().state_dict()
        state.update({
            "options": self.options.to_json(),
            "gram": None if self.options.gram is None else self.options.gram.tolist(),
            "rng": self.rng.bit_generator.state,
            "uid_rng": self._uid_rng.bit_generator.state,
            "archive": self.archive.to_json(to_json),
            "columns": None if self._columns is None else self._columns.to_json(),
            "starting": {uid: to_json(g) for uid, g in self._starting.items()},
            "queue": list(self._queue),
            "pending": {uid: {"genome": to_json(p.genome), "parents": p.parents,
                              "batch": p.batch} for uid, p in self._pending.items()},
            "batches": self.batches,
            "evaluations": self.evaluations,
        })
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.dim, self.seed = state["dim"], state["seed"]
        self.objectives = ObjectiveSpec(tuple(state["objectives"]["names"]),
                                        tuple(state["objectives"]["directions"]))
        self.options = M2N2Options.from_json(state["options"])
        if state["gram"] is not None:
            self.options.gram = self.options.check_gram(state["gram"], self.dim)
        self._build()
        from_json = self.form.from_json
        self.rng.bit_generator.state = state["rng"]
        self._uid_rng.bit_generator.state = state["uid_rng"]
        self.archive = Archive.from_json(state["archive"], from_json)
        self._columns = None if state["columns"] is None else ScoreColumns(state["columns"])
        self._starting = {uid: from_json(g) for uid, g in state["starting"].items()}
        self._queue = list(state["queue"])
        self._pending = {uid: _Pending(from_json(p["genome"]), list(p["parents"]), p["batch"])
                         for uid, p in state["pending"].items()}
        self.batches, self.evaluations = state["batches"], state["evaluations"]

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> M2N2:
        """A new optimizer that continues exactly where ``state`` left off.

        >>> import json
        >>> opt = M2N2(3, seed=2)
        >>> copy = M2N2.from_state_dict(json.loads(json.dumps(opt.state_dict())))
        >>> [c.uid for c in copy.ask(2)] == [c.uid for c in opt.ask(2)]
        True
        """
        opt = cls(state["dim"], seed=state["seed"], **state["options"])
        opt.load_state_dict(state)
        return opt
