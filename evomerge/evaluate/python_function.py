"""A user's Python function as an evaluator: ``fn(model, tokenizer) -> {metric: number}``.

The function is named ``module:function`` (an importable module) or
``path/to/file.py:function`` (a file, loaded by path); it is resolved when the config is
checked, so a typo fails before any model is built. The config declares the metrics to
use as objectives and their directions; they are reported as ``<name>/<metric>``. A
call that raises, omits a declared metric or returns something that is not a finite
number fails that candidate only.

>>> ev = PythonFunctionEvaluator("size", "evomerge.evaluate.python_function:parameter_count",
...                              {"params": "minimize"})
>>> import torch
>>> ev.evaluate(torch.nn.Linear(3, 2), None).objectives
{'size/params': 8.0}
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import math
import numbers
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from evomerge.errors import ConfigError
from evomerge.evaluate.base import Evaluator, Scores
from evomerge.records import Direction


def parameter_count(model: Any, tokenizer: Any) -> dict[str, float]:
    """Number of parameters of a torch model: a tiny example of a metric function.

    >>> import torch
    >>> parameter_count(torch.nn.Linear(3, 2), None)
    {'params': 8.0}
    """
    return {"params": float(sum(p.numel() for p in model.parameters()))}


def _load_module(module: str, source: Any, field: str) -> Any:
    if module.endswith(".py"):
        path = Path(module)
        if not path.is_file():
            raise ConfigError(source, field, module, "file does not exist")
        name = "evomerge_user_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, path)
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        return loaded
    return importlib.import_module(module)


def resolve_function(spec: str, source: Any = "<config>",
                     field: str = "function") -> Callable[[Any, Any], Mapping[str, Any]]:
    """Import ``module:function`` and check that it can be called as ``fn(model, tokenizer)``.

    >>> resolve_function("math:nope")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    evomerge.errors.ConfigError: <config>: field 'function' = 'math:nope': module 'math' has ...
    """
    module, sep, name = spec.rpartition(":")
    if not sep or not module or not name:
        raise ConfigError(source, field, spec, "must be 'module:function' or 'file.py:function'")
    try:
        loaded = _load_module(module, source, field)
    except ConfigError:
        raise
    except Exception as err:  # any import-time failure is the user's module's
        raise ConfigError(source, field, spec,
                          f"cannot import {module!r}: {type(err).__name__}: {err}") from None
    fn = getattr(loaded, name, None)
    if fn is None:
        raise ConfigError(source, field, spec, f"module {module!r} has no attribute {name!r}")
    if not callable(fn):
        raise ConfigError(source, field, spec, f"{name!r} is not callable")
    try:
        inspect.signature(fn).bind(None, None)
    except TypeError:
        raise ConfigError(source, field, spec,
                          "must accept two positional arguments (model, tokenizer)") from None
    except ValueError:  # builtins without a signature: trust them
        pass
    return fn


def checked_metrics(result: Any, declared: Mapping[str, Direction], spec: str) -> dict[str, float]:
    """The declared metrics of a function's result as floats; ValueError says what is wrong.

    >>> checked_metrics({"a": 1, "b": 2.5}, {"a": "maximize"}, "m:f")
    {'a': 1.0}
    >>> checked_metrics({"a": "high"}, {"a": "maximize"}, "m:f")
    Traceback (most recent call last):
    ...
    ValueError: m:f returned 'high' for metric 'a'; metrics must be finite numbers
    """
    if not isinstance(result, Mapping):
        raise ValueError(f"{spec} must return a dict of metrics, but returned "
                         f"{type(result).__name__}")
    missing = [name for name in declared if name not in result]
    if missing:
        raise ValueError(f"{spec} returned {sorted(result)}, without the declared {missing}")
    out = {}
    for name in declared:
        value = result[name]
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()  # numpy / torch scalars
        if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                or not math.isfinite(value)):
            raise ValueError(f"{spec} returned {value!r} for metric {name!r}; "
                             "metrics must be finite numbers")
        out[name] = float(value)
    return out


class PythonFunctionEvaluator(Evaluator):
    """See the module docstring."""

    kind = "python"

    def __init__(self, name: str, function: str, objectives: Mapping[str, Direction],
                 source: Any = "<config>", field: str = "function"):
        self.name, self.function = name, function
        self.declared = dict(objectives)
        self._fn = resolve_function(function, source, field)

    def objectives(self) -> dict[str, Direction]:
        return {f"{self.name}/{metric}": d for metric, d in self.declared.items()}

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "function": self.function,
                "objectives": self.declared}

    def score(self, model: Any, tokenizer: Any) -> Scores:
        start = time.perf_counter()
        result = self._fn(model, tokenizer)
        model_s = time.perf_counter() - start
        metrics = checked_metrics(result, self.declared, self.function)
        return Scores({f"{self.name}/{k}": v for k, v in metrics.items()}, model_s=model_s)
