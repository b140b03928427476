"""A search-space file: the merge method, which of its parameters are genes, how finely.

A space names models by role (a base and the sources), never by path; binding it to
models (:meth:`Space.bind`) fixes the layer count and the gene list. The fields:

``merge_method``  a method name, or ``{choice: [ties, dare_ties, ...]}`` (one gene)
``models``        ``base``: the base's role name (omit for none); ``sources``: a count,
                  a list of role names, or ``{min, max}`` (default: any number >= 1)
``genes``         one entry per searched parameter (below), or ``choose: model`` entries
                  saying which source a block of layers comes from (passthrough)
``fixed``         parameter settings that are not searched (any recipe setting);
                  ``lines.alpha`` / ``lines.beta`` fix LiNeS
``layers_from``   passthrough: the source role of the layers no ``choose`` gene covers
``seed``, ``dtype``, ``out_dtype``  copied into every recipe

A gene entry: ``param`` (an operator parameter, or ``lines.alpha`` / ``lines.beta``),
``per`` (any of ``model``, ``layer``, ``group``: one value per input model, per
``block`` layers, per tensor group of ``groups``), ``bounds`` (default: the parameter's
range in its :class:`~evomerge.merge.operators.ParamSpec`), ``transform`` (``linear``,
``log``, or ``identity`` for unbounded genes that optimizers set directly), ``name``, and
``tie`` (the name of another entry whose coordinates this one reads through its own
bounds). A flag parameter (``normalize``) is a two-way choice.

Every name and range comes from the operators' ParamSpecs; the checks here are those a
space fails without any model (see :mod:`evomerge.space.space_checks`).

>>> space = Space.from_dict({"merge_method": "task_arithmetic", "models": {"base": "base"},
...     "genes": [{"param": "weight", "per": ["model"], "bounds": [0, 1]}]})
>>> space.genes[0].per, space.methods
(['model'], ['task_arithmetic'])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from evomerge.config_io import read_yaml, validate_config
from evomerge.merge.dtypes import DTYPE_NAMES
from evomerge.merge.params import Settings
from evomerge.space.space_checks import check_space

SPACE_FORMAT = "evomerge/space-v1"
Axis = Literal["model", "layer", "group"]
#: tensor groups a gene may be split by; ``rest`` is every tensor no listed group has
GroupName = Literal["attention", "mlp", "norm", "embedding", "head", "rest"]
DEFAULT_GROUPS = ["attention", "mlp", "rest"]
Transform = Literal["linear", "log", "identity"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MethodChoice(_Strict):
    choice: list[str] = Field(min_length=2)


class SourceRange(_Strict):
    min: int = Field(1, ge=1)
    max: int | None = None


class Roles(_Strict):
    """Model roles: the base's name (None: no base) and the sources."""

    base: str | None = None
    sources: int | list[str] | SourceRange = Field(default_factory=SourceRange)

    def count_range(self) -> tuple[int, int | None]:
        """(fewest, most) sources the space accepts (most None: no limit)."""
        if isinstance(self.sources, int):
            return self.sources, self.sources
        if isinstance(self.sources, list):
            return len(self.sources), len(self.sources)
        return self.sources.min, self.sources.max

    def source_names(self, n: int) -> list[str]:
        """Role names of ``n`` sources: the named roles, else ``source_1`` ..."""
        if isinstance(self.sources, list):
            return list(self.sources)
        return [f"source_{i + 1}" for i in range(n)]


class LayerShare(_Strict):
    """The lowest (``bottom``) or highest (``top``) share of the layers, in (0, 1]."""

    bottom: float | None = Field(None, gt=0, le=1)
    top: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _one(self) -> LayerShare:
        if (self.bottom is None) == (self.top is None):
            raise ValueError("give exactly one of 'bottom' or 'top' (a share of the layers)")
        return self


class GeneEntry(_Strict):
    param: str | None = None
    choose: Literal["model"] | None = None
    name: str | None = None
    per: list[Axis] = Field(default_factory=list)
    block: int = Field(1, ge=1)
    groups: list[GroupName] | None = None
    layers: LayerShare | None = None
    bounds: tuple[float, float] | None = None
    transform: Transform = "linear"
    tie: str | None = None

    @property
    def label(self) -> str:
        """The entry's name in gene names and ties: ``name``, else the parameter."""
        return self.name or self.param or "model"

    @property
    def group_list(self) -> list[str]:
        if "group" not in self.per:
            return []
        return list(self.groups) if self.groups is not None else list(DEFAULT_GROUPS)

    def layout(self) -> tuple:
        """What a tied entry must share with the entry it reads."""
        return (tuple(self.per), self.block, tuple(self.group_list), self.layers)


class Space(_Strict):
    """A validated search-space file (no models bound yet)."""

    format: Literal["evomerge/space-v1"] | None = None
    name: str | None = None
    merge_method: str | MethodChoice
    models: Roles = Field(default_factory=Roles)
    genes: list[GeneEntry] = Field(min_length=1)
    fixed: Settings = Field(default_factory=dict)
    layers_from: str | None = None
    seed: int = 0
    dtype: Literal[DTYPE_NAMES] | None = None
    out_dtype: Literal[DTYPE_NAMES] | None = None
    _file: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _checked(self) -> Space:
        check_space(self)
        return self

    @property
    def methods(self) -> list[str]:
        """The merge methods the space can decode to (one unless a choice)."""
        if isinstance(self.merge_method, MethodChoice):
            return list(self.merge_method.choice)
        return [self.merge_method]

    @classmethod
    def from_dict(cls, data: dict[str, Any], file: Path | str | None = None) -> Space:
        """Validate a space mapping; errors name the file, field, value and rule."""
        return validate_config(cls, data, file)

    def bind(self, base: str | None = None, sources: list[str] | None = None, *,
             facts: Any = None, file: Path | str | None = None):
        """This space over concrete models: a :class:`~evomerge.space.bound.BoundSpace`.

        ``facts`` (:class:`~evomerge.space.facts.ModelFacts`) gives the tensor names;
        without it they are read from the base's folder (else the first source's).
        """
        from evomerge.space.bound import BoundSpace

        return BoundSpace(self, base, list(sources or []), facts=facts,
                          file=file if file is not None else self._file)


def load_space(path: Path | str) -> Space:
    """Read a parameter-space YAML file (``safe_load``); errors name file, field, value
    and rule. (``evomerge.space.load_space`` reads data-flow spaces too.)"""
    space = Space.from_dict(read_yaml(path), path)
    space._file = Path(path)
    return space

