"""The optimizer registry: one explicit list, validated options, lazy library imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from evomerge.errors import ConfigError, UnknownNameError
from evomerge.optim.base import OPTIMIZERS
from evomerge.optim.registry import BACKENDS, CAPABILITIES, build_optimizer


def test_every_backend_is_registered_under_its_name():
    for cls, capabilities in BACKENDS:
        assert OPTIMIZERS.get(cls.name) is cls
        assert CAPABILITIES[cls.name] is capabilities
    assert {"cma", "nevergrad", "optuna", "random", "sobol"} <= set(OPTIMIZERS.names())


def test_unknown_optimizer_suggests_the_nearest_name():
    with pytest.raises(UnknownNameError, match="did you mean 'cma'"):
        build_optimizer("cmaa", 2)


def test_unknown_option_suggests_the_nearest_one():
    with pytest.raises(ConfigError, match="did you mean 'popsize'") as error:
        build_optimizer("cma", 2, None, 0, pop_size=8)
    assert (error.value.field, error.value.value) == ("options.pop_size", 8)


@pytest.mark.parametrize("key", ["dim", "seed", "objectives"])
def test_arguments_are_not_options(key):
    with pytest.raises(ConfigError, match=f"{key} is set by the campaign"):
        build_optimizer("random", 2, None, 0, **{key: 1})


def test_options_reach_the_optimizer():
    opt = build_optimizer("cma", 4, None, 0, popsize=12, sigma0=0.1)
    assert opt.popsize == 12 and len(opt.ask(12)) == 12


def test_importing_the_registry_loads_no_optimizer_library():
    code = ("import sys, evomerge.optim.registry; "
            "print(sorted(m for m in ('cma', 'nevergrad', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
