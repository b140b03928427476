"""What the Optimizer base class does for every algorithm: the Pareto front of what was
told, the rule for results told again, and the one set of option checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evomerge.errors import ConfigError, EvomergeError
from evomerge.optim.base import ConflictingResultError, ObjectiveSpec, same_outcome
from evomerge.optim.options import (
    check_known,
    choice,
    flag,
    is_whole_number,
    number,
    option_error,
    whole_number,
)
from evomerge.optim.random_search import RandomSearch
from evomerge.records import Candidate, Fitness

ACC_LOSS = ObjectiveSpec(("acc", "loss"), ("maximize", "minimize"))


def told(opt, values: dict[str, tuple[float, float] | None]) -> dict[str, Candidate]:
    """Tell ``opt`` one result per name: (acc, loss), or None for a failure."""
    candidates = {name: Candidate(uid=name, x=[0.5]) for name in values}
    opt.tell([(candidates[name], Fitness.failed("oom") if v is None
               else Fitness.ok({"acc": v[0], "loss": v[1]}))
              for name, v in values.items()])
    return candidates


def test_pareto_front_of_mixed_directions_keeps_ties_and_drops_failures():
    opt = RandomSearch(1, ACC_LOSS)
    told(opt, {"a": (0.9, 0.5), "twin": (0.9, 0.5), "c": (0.8, 0.3), "d": (0.8, 0.5),
               "e": (0.95, 0.6), "failed": None, "g": (0.7, 0.3)})
    assert [t.candidate.uid for t in opt.pareto_front()] == ["a", "twin", "c", "e"]


def test_pareto_front_of_one_objective_is_every_result_tied_for_the_best():
    opt = RandomSearch(1, ObjectiveSpec(("loss",), ("minimize",)))
    opt.tell([(Candidate(uid=uid, x=[0.5]), Fitness.ok({"loss": v}))
              for uid, v in [("a", 2.0), ("b", 1.0), ("c", 1.0), ("d", 3.0)]])
    assert [t.candidate.uid for t in opt.pareto_front()] == ["b", "c"]
    assert RandomSearch(1).pareto_front() == []


def test_a_result_told_again_is_the_same_when_status_and_objectives_are():
    base = Fitness.ok({"acc": 0.5, "loss": float("nan")}, timings={"eval": 3.0}, worker="w1",
                      sample_scores={"t": {"0": 1.0}})
    same = Fitness.ok({"loss": float("nan"), "acc": 0.5}, worker="w2")
    assert same_outcome(base, same)
    assert not same_outcome(base, Fitness.ok({"acc": 0.5, "loss": 0.0}))
    assert not same_outcome(base, Fitness.ok({"acc": 0.5}))
    assert not same_outcome(Fitness.failed("oom"), Fitness(status="pruned"))
    assert same_outcome(Fitness.failed("oom"), Fitness.failed("out of memory at step 3"))


def test_the_conflict_error_names_the_uid_and_both_outcomes():
    opt = RandomSearch(1, ACC_LOSS)
    told(opt, {"c0ffee": (0.9, 0.5)})
    with pytest.raises(ConflictingResultError) as error:
        told(opt, {"c0ffee": (0.8, 0.5)})
    message = str(error.value)
    assert "candidate c0ffee" in message
    assert "'acc': 0.9" in message and "'acc': 0.8" in message
    assert isinstance(error.value, EvomergeError) and error.value.uid == "c0ffee"
    assert [t.fitness.objectives["acc"] for t in opt.history] == [0.9]


def test_history_restored_from_a_state_still_knows_what_was_told():
    opt = RandomSearch(1, ACC_LOSS)
    told(opt, {"a": (0.9, 0.5), "b": None})
    restored = RandomSearch(1, ACC_LOSS)
    restored.load_state_dict(json.loads(json.dumps(opt.state_dict())))
    told(restored, {"a": (0.9, 0.5), "b": None})  # the same again: nothing happens
    assert len(restored.history) == 2
    with pytest.raises(ConflictingResultError, match="candidate b"):
        told(restored, {"b": (0.1, 0.1)})


# ----- option checks -------------------------------------------------------------------

@pytest.mark.parametrize("check,value,rule", [
    (lambda v: whole_number("n", v, 2), 1, "must be an integer >= 2"),
    (lambda v: whole_number("n", v, 2), 2.0, "must be an integer >= 2"),
    (lambda v: whole_number("n", v, 0), True, "must be an integer >= 0"),
    (lambda v: number("x", v, 0), -0.5, "must be a number >= 0"),
    (lambda v: number("x", v, 0, strict=True), 0, "must be a number > 0"),
    (lambda v: number("x", v, 0, maximum=1), 1.5, "must be a number in [0, 1]"),
    (lambda v: number("x", v, 0, maximum=1, strict=True), 0.0, "must be a number in (0, 1]"),
    (lambda v: number("x", v, 0), float("nan"), "must be a number >= 0"),
    (lambda v: number("x", v, 0), "1", "must be a number >= 0"),
    (lambda v: flag("f", v), 1, "must be true or false"),
    (lambda v: choice("c", v, ("a", "b")), "z", "must be one of a, b"),
    (lambda v: choice("c", v, ("a", "b")), ["a"], "must be one of a, b"),
])
def test_a_rejected_option_names_its_field_value_and_rule(check, value, rule):
    with pytest.raises(ConfigError) as error:
        check(value)
    assert error.value.field.startswith("optimizer.options.")
    assert error.value.value is value and error.value.rule == rule


def test_accepted_options_come_back_in_their_type():
    assert whole_number("n", np.int64(3), 1) == 3 and type(whole_number("n", 3, 1)) is int
    assert number("x", 1, 0) == 1.0 and type(number("x", 1, 0)) is float
    assert flag("f", False) is False and choice("c", "b", ("a", "b")) == "b"
    assert not is_whole_number(np.bool_(True))


def test_option_errors_never_print_a_whole_array():
    error = option_error("initial[0]", np.zeros(1000), "must be finite")
    assert error.field == "optimizer.options.initial[0]"
    assert error.value == "<array of shape (1000,)>"
    assert option_error(None, {"a": 1}, "bad").field == "optimizer.options"


def test_unknown_options_are_refused_with_the_nearest_known_name():
    check_known({"popsize": 4}, ["popsize", "sigma0"], "cma")
    with pytest.raises(ConfigError, match="did you mean 'sigma0'.*popsize, sigma0") as error:
        check_known({"popsize": 4, "sigma": 0.1}, ["sigma0", "popsize"], "cma")
    assert error.value.field == "optimizer.options.sigma"
    with pytest.raises(ConfigError, match=r"no such option; Its options: \(none\)"):
        check_known({"zzz": 1}, [], "random")
