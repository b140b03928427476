"""The optimizer registry: each optimizer registers where it is defined, options are
validated, library imports stay lazy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from evomerge.errors import ConfigError, UnknownNameError
from evomerge.optim.base import Optimizer, register_optimizer
from evomerge.optim.random_search import RandomSearch
from evomerge.optim.registry import OPTIMIZERS, build_optimizer

EXPECTED = {"cma", "m2n2", "map", "nested_map", "nevergrad", "optuna", "random", "sobol"}


def test_every_optimizer_is_registered_under_its_name_by_its_own_module():
    assert set(OPTIMIZERS.names()) == EXPECTED
    for name in OPTIMIZERS.names():
        cls = OPTIMIZERS.get(name)
        assert issubclass(cls, Optimizer) and cls.name == name
        assert cls.__module__ != "evomerge.optim.registry"


def test_the_registry_is_complete_whichever_optimizer_module_is_imported_first():
    code = ("import evomerge.optim.sobol; from evomerge.optim.base import OPTIMIZERS; "
            "print(sorted(OPTIMIZERS.names()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == str(sorted(EXPECTED))


def test_registering_a_taken_name_raises_and_keeps_the_first():
    class Impostor(RandomSearch):
        name = "random"

    with pytest.raises(ValueError, match="optimizer 'random' is already registered"):
        register_optimizer(Impostor)
    assert OPTIMIZERS.get("random") is RandomSearch


def test_an_optimizer_without_a_name_is_refused():
    class Nameless(RandomSearch):
        name = ""

    with pytest.raises(ValueError, match="Nameless sets no registry name"):
        register_optimizer(Nameless)


def test_unknown_optimizer_suggests_the_nearest_name():
    with pytest.raises(UnknownNameError, match="did you mean 'cma'"):
        build_optimizer("cmaa", 2)


def test_unknown_option_suggests_the_nearest_one():
    with pytest.raises(ConfigError, match="did you mean 'popsize'") as error:
        build_optimizer("cma", 2, None, 0, pop_size=8)
    assert (error.value.field, error.value.value) == ("optimizer.options.pop_size", 8)


@pytest.mark.parametrize("key", ["dim", "seed", "objectives"])
def test_arguments_are_not_options(key):
    with pytest.raises(ConfigError, match=f"{key} is set by the campaign") as error:
        build_optimizer("random", 2, None, 0, **{key: 1})
    assert error.value.field == f"optimizer.options.{key}"


def test_options_reach_the_optimizer():
    opt = build_optimizer("cma", 4, None, 0, popsize=12, sigma0=0.1)
    assert opt.popsize == 12 and len(opt.ask(12)) == 12


def test_importing_the_registry_loads_no_optimizer_library():
    code = ("import sys, evomerge.optim.registry; "
            "print(sorted(m for m in ('cma', 'nevergrad', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
