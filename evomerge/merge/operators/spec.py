"""What an operator is: its parameters (the config schema) and its tensor function.

A :class:`ParamSpec` list is the single source of truth for a method's parameters: recipe
validation, search spaces and mergekit export all read it, nothing repeats it.

>>> op = MergeOperator(name="demo", kind="delta", needs_base=True, random=False,
...     params=(ParamSpec("weight", per_model=True, default=None),
...             ParamSpec("density", per_model=True, default=1.0, low=0.0, high=1.0)),
...     fn=lambda tensors, params, *, base, generator, ctx, out: tensors[0])
>>> op.resolve_params({"weight": [0.5, 1]}, n_models=2)
{'weight': [0.5, 1.0], 'density': [1.0, 1.0]}
>>> op.resolve_params({"densty": 0.5, "weight": 1.0}, n_models=1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
evomerge.errors.ConfigError: field 'densty' = 0.5: ... did you mean 'density'? ...
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from evomerge.errors import ConfigError
from evomerge.merge.engine import MergeContext

#: what an operator function receives for one parameter: a flag, a number, or one number
#: per source model
ParamValue = float | bool | list[float]


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of an operator; this is the config schema.

    ``default`` None means required. A boolean default makes the parameter a flag.
    ``low`` / ``high`` are inclusive bounds (None: unbounded). ``mergekit`` False marks a
    parameter mergekit does not have (a recipe using it cannot be exported there).
    ``integer`` admits whole numbers only.
    """

    name: str
    per_model: bool
    default: float | bool | None
    low: float | None = None
    high: float | None = None
    doc: str = ""
    mergekit: bool = True
    #: only whole numbers (an iteration count)
    integer: bool = False

    @property
    def is_flag(self) -> bool:
        return isinstance(self.default, bool)

    def validate(self, value: Any, field: str | None = None) -> float | bool:
        """``value`` checked against this spec; numbers come back as float.

        >>> ParamSpec("density", True, 1.0, low=0.0, high=1.0).validate(2)
        Traceback (most recent call last):
        ...
        evomerge.errors.ConfigError: field 'density' = 2: must lie in [0.0, 1.0]
        """
        field = field or self.name
        if self.is_flag:
            if not isinstance(value, bool):
                raise ConfigError(None, field, value, "must be true or false")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(None, field, value, "must be a number")
        number = float(value)
        if math.isnan(number):
            raise ConfigError(None, field, value, "must be a number, not NaN")
        if self.integer and not number.is_integer():
            raise ConfigError(None, field, value, "must be a whole number")
        if (self.low is not None and number < self.low) or (
                self.high is not None and number > self.high):
            low = "-inf" if self.low is None else self.low
            high = "inf" if self.high is None else self.high
            raise ConfigError(None, field, value, f"must lie in [{low}, {high}]")
        return number


def resolve_params(specs: Sequence[ParamSpec], user_params: Mapping[str, Any],
                   n_models: int, owner: str) -> dict[str, ParamValue]:
    """Complete, validated parameters: defaults filled, per-model values as lists.

    A per-model parameter given as one number applies to every model. ``owner`` names the
    method in error messages.

    >>> specs = (ParamSpec("t", per_model=False, default=None, low=0.0, high=1.0),)
    >>> resolve_params(specs, {"t": 0.25}, n_models=2, owner="slerp")
    {'t': 0.25}
    >>> resolve_params(specs, {}, n_models=2, owner="slerp")
    Traceback (most recent call last):
    ...
    evomerge.errors.ConfigError: field 't' = None: merge method 'slerp' requires this parameter
    """
    by_name = {spec.name: spec for spec in specs}
    for name, value in user_params.items():
        if name not in by_name:
            close = difflib.get_close_matches(str(name), list(by_name), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ";"
            known = ", ".join(sorted(by_name)) or "none"
            raise ConfigError(None, str(name), value, f"merge method {owner!r} has no "
                              f"parameter {name!r}{hint} Its parameters: {known}")
    resolved: dict[str, ParamValue] = {}
    for spec in specs:
        value = user_params.get(spec.name, spec.default)
        if value is None:
            raise ConfigError(None, spec.name, None,
                              f"merge method {owner!r} requires this parameter")
        if not spec.per_model:
            resolved[spec.name] = spec.validate(value)
            continue
        if isinstance(value, (list, tuple)):
            if len(value) != n_models:
                raise ConfigError(None, spec.name, list(value),
                                  f"needs one value per model ({n_models}), "
                                  f"got {len(value)}")
            values = list(value)
        else:
            values = [value] * n_models
        checked = []
        for i, v in enumerate(values):
            v = spec.default if v is None else v
            if v is None:
                raise ConfigError(None, f"{spec.name}[{i}]", None,
                                  f"merge method {owner!r} needs a value for every model")
            checked.append(spec.validate(v, f"{spec.name}[{i}]"))
        resolved[spec.name] = checked
    return resolved


OperatorFn = Callable[..., torch.Tensor]


@dataclass(frozen=True, kw_only=True)
class MergeOperator:
    """A registered merge method.

    ``fn(tensors, params, *, base, generator, ctx, out) -> Tensor``. For
    ``kind == "delta"``, ``tensors`` are task vectors (``theta_m - base``, the base
    excluded) and the result is the merged delta, which the caller adds to the base. For
    ``kind == "weight"`` they are the raw tensors and the result is the merged tensor.
    Per-model parameters arrive as one value per tensor, already resolved for this tensor
    (gradients, filters). ``ctx`` is the builder's
    :class:`~evomerge.merge.engine.MergeContext` (working buffers, thread pool,
    remembered values); it changes how fast the result comes, never the result. The
    result is float32 (float64 when the inputs are float64); it is written into ``out``
    when given (same shape and dtype), else it is a new tensor or, for passthrough, the
    input itself, so callers treat it as read-only. Inputs are never written to.
    """

    name: str
    params: tuple[ParamSpec, ...]
    kind: Literal["delta", "weight"]
    needs_base: bool
    random: bool
    min_models: int = 1
    max_models: int | None = None
    fn: OperatorFn
    #: checks across parameters (e.g. DELLA's density +/- epsilon), on resolved values
    check: Callable[[dict[str, ParamValue]], None] | None = None
    #: for methods whose result is a linear combination of their inputs (linear, task
    #: arithmetic, SLERP): ``coefficients(tensors, params) -> [c_m]`` with
    #: ``fn(...) == sum_m c_m * tensors[m]``. The engine then writes that sum straight
    #: into its destination in as few passes over memory as it can.
    coefficients: Callable[[list[torch.Tensor], dict[str, ParamValue]], list[float]] \
        | None = None
    #: for methods written only as their formula on whole tensors:
    #: ``formula(tensors, params) -> Tensor``, evaluated op by op in the tensors' own
    #: dtype (``fn`` is :func:`whole_tensor` of it); a 16-bit merge runs it in 16 bits,
    #: as mergekit does
    formula: Callable[[list[torch.Tensor], dict[str, ParamValue]], torch.Tensor] \
        | None = None
    doc: str = ""

    def param(self, name: str) -> ParamSpec:
        for spec in self.params:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def check_model_count(self, n_models: int, field: str = "models",
                          value: Any = None) -> None:
        """The rule on how many inputs the method takes (for delta methods: models
        besides the base); ``field`` and ``value`` say where the count came from."""
        if n_models >= self.min_models and (
                self.max_models is None or n_models <= self.max_models):
            return
        if self.max_models == self.min_models:
            rule = f"exactly {self.min_models}"
        elif self.max_models is None:
            rule = f"at least {self.min_models}"
        else:
            rule = f"between {self.min_models} and {self.max_models}"
        inputs = "models besides the base" if self.kind == "delta" else "models"
        raise ConfigError(None, field, n_models if value is None else value,
                          f"merge method {self.name!r} takes {rule} {inputs}, "
                          f"got {n_models}")

    def resolve_params(self, user_params: Mapping[str, Any],
                       n_models: int) -> dict[str, ParamValue]:
        """Validated parameters with defaults filled; raises :class:`ConfigError`."""
        self.check_model_count(n_models)
        resolved = resolve_params(self.params, user_params, n_models, self.name)
        if self.check is not None:
            self.check(resolved)
        return resolved

    def __call__(self, tensors: Sequence[torch.Tensor], params: Mapping[str, ParamValue],
                 *, base: torch.Tensor | None = None,
                 generator: torch.Generator | None = None,
                 ctx: MergeContext | None = None,
                 out: torch.Tensor | None = None) -> torch.Tensor:
        """The merged tensor; without ``ctx``, a fresh context serves this call alone."""
        if ctx is None:
            with MergeContext(tensors[0].device if tensors else "cpu") as fresh:
                return self.fn(list(tensors), dict(params), base=base, generator=generator,
                               ctx=fresh, out=out)
        return self.fn(list(tensors), dict(params), base=base, generator=generator, ctx=ctx,
                       out=out)


def compute_dtype(tensor: torch.Tensor) -> torch.dtype:
    """float64 stays float64; everything else is computed in float32."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def in_compute_dtype(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in its compute dtype; the input itself when it already is (read-only)."""
    return tensor.to(compute_dtype(tensor))


def whole_tensor(formula: Callable[[list[torch.Tensor], dict[str, ParamValue]],
                                   torch.Tensor]) -> OperatorFn:
    """An operator function from a formula on whole tensors: inputs in their compute
    dtype, the result copied into ``out`` when given."""
    def fn(tensors: list[torch.Tensor], params: dict[str, ParamValue], *,
           base: torch.Tensor | None, generator: torch.Generator | None,
           ctx: MergeContext, out: torch.Tensor | None) -> torch.Tensor:
        value = formula([in_compute_dtype(t) for t in tensors], params)
        return value if out is None else out.copy_(value)
    return fn
