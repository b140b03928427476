"""State by replay: what a checkpoint refuses to load, and what it keeps."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from optim_toys import MINIMIZE, evaluate, run

from evomerge.errors import CheckpointError, ConfigError
from evomerge.optim.base import ObjectiveSpec
from evomerge.optim.cmaes import CMAES
from evomerge.optim.registry import build_optimizer
from evomerge.optim.replayed import failure_loss, ok_losses
from evomerge.records import Candidate, Fitness


def checkpoint(opt) -> dict:
    return json.loads(json.dumps(opt.state_dict()))


def test_pending_candidates_keep_their_uids_across_a_round_trip():
    opt = CMAES(3, MINIMIZE, 0)
    pending = opt.ask(5)
    restored = CMAES(3, MINIMIZE, 0)
    restored.load_state_dict(checkpoint(opt))
    restored.tell([(c, evaluate(c, MINIMIZE, 3)) for c in pending])
    assert {t.candidate.uid for t in restored.history} == {c.uid for c in pending}
    # the restored optimizer knew them as its own: a full generation is told and learnt
    opt.tell([(c, evaluate(c, MINIMIZE, 3)) for c in pending])
    assert [c.x for c in restored.ask(9)] == [c.x for c in opt.ask(9)]


def test_loading_into_a_used_optimizer_is_refused():
    state = checkpoint(run(CMAES(2, MINIMIZE, 0), 12))
    used = CMAES(2, MINIMIZE, 0)
    used.ask(1)
    with pytest.raises(CheckpointError, match="fresh"):
        used.load_state_dict(state)


@pytest.mark.parametrize("other", [
    CMAES(2, MINIMIZE, 0, popsize=10),
    CMAES(2, MINIMIZE, 1),
    CMAES(2, ObjectiveSpec(("loss",), ("maximize",)), 0),
], ids=["options", "seed", "objectives"])
def test_loading_into_a_differently_built_optimizer_names_the_difference(other):
    state = checkpoint(run(CMAES(2, MINIMIZE, 0), 12))
    with pytest.raises(CheckpointError, match="was saved with"):
        other.load_state_dict(state)


def test_a_replay_that_draws_other_points_is_refused():
    state = checkpoint(run(CMAES(2, MINIMIZE, 0), 12))
    state["log"][0]["x"][0][0] += 1e-9
    with pytest.raises(CheckpointError, match="diverged at call 0"):
        CMAES(2, MINIMIZE, 0).load_state_dict(state)


def test_a_log_that_disagrees_with_the_history_is_refused():
    state = checkpoint(run(CMAES(2, MINIMIZE, 0), 12))
    state["history"].pop()
    with pytest.raises(CheckpointError, match="history holds 11"):
        CMAES(2, MINIMIZE, 0).load_state_dict(state)


def test_a_refused_tell_leaves_the_state_as_it_was():
    opt = run(CMAES(2, MINIMIZE, 0), 6)
    saved = checkpoint(opt)
    wrong_space = Candidate(x=[0.5, 0.5, 0.5], origin="enqueued")
    with pytest.raises(ConfigError, match="must hold 2 numbers"):
        opt.tell([(wrong_space, Fitness.ok({"loss": 1.0}))])
    assert checkpoint(opt) == saved
    restored = CMAES(2, MINIMIZE, 0)
    restored.load_state_dict(checkpoint(opt))
    assert [c.x for c in restored.ask(3)] == [c.x for c in opt.ask(3)]


def test_a_result_told_again_adds_nothing_to_the_log():
    opt = CMAES(2, MINIMIZE, 0)
    batch = opt.ask(3)
    results = [(c, evaluate(c, MINIMIZE, 2)) for c in batch]
    opt.tell(results[:2])
    opt.tell(results)
    opt.tell(results[1:])
    assert [e for e in opt.state_dict()["log"] if "tell" in e] == [{"tell": 2}, {"tell": 1}]


def test_failure_loss_is_worse_than_every_ok_loss_at_any_scale():
    for losses in ([0.0], [-5.0, -1.0], [1e12, 3.0], [-1e12]):
        assert failure_loss(losses) > max(losses)
    with pytest.raises(ValueError):
        failure_loss([math.inf])


def test_ok_losses_refuses_numbers_that_cannot_be_learnt():
    spec = ObjectiveSpec(("a", "b"), ("minimize", "maximize"))
    assert ok_losses(spec, Fitness.ok({"a": 1.0, "b": 2.0})) == [1.0, -2.0]
    assert ok_losses(spec, Fitness.ok({"a": math.nan, "b": 2.0})) is None
    assert ok_losses(spec, Fitness(status="pruned")) is None


SAVE_IN_ANOTHER_PROCESS = """
import json, sys
sys.path.insert(0, {toys!r})
from optim_toys import MINIMIZE, run
from evomerge.optim.registry import build_optimizer
out = {{}}
for name in ("cma", "nevergrad", "optuna"):
    opt = run(build_optimizer(name, 3, MINIMIZE, 4), 30)
    out[name] = {{"state": opt.state_dict(), "next": [c.x for c in opt.ask(4)]}}
print(json.dumps(out))
"""


def test_a_state_saved_by_another_process_replays_to_the_same_asks():
    """Resume happens in a new process: nothing may depend on hash order or globals."""
    code = SAVE_IN_ANOTHER_PROCESS.format(toys=str(Path(__file__).parent))
    saved = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": "12345"})
    for name, entry in json.loads(saved.stdout.strip().splitlines()[-1]).items():
        restored = build_optimizer(name, 3, MINIMIZE, 4)
        restored.load_state_dict(entry["state"])
        assert [c.x for c in restored.ask(4)] == entry["next"], name
