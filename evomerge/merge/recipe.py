"""The Recipe: a merge plan, validated before any model is loaded.

The schema follows mergekit's config (``merge_method``, ``base_model``, ``models``,
``slices`` or ``modules``, ``parameters``, ``dtype``, ``tokenizer_source``) so that a
mergekit file means the same thing here, and adds what search needs: a ``seed`` for
random methods, LiNeS scaling, and a ``format`` marker that tells a native recipe from a
mergekit file.

>>> r = Recipe.model_validate({"merge_method": "linear",
...     "models": [{"model": "a", "parameters": {"weight": 0.3}},
...                {"model": "b", "parameters": {"weight": 0.7}}]})
>>> [m.model for m in r.models]
['a', 'b']
>>> len(r.content_hash())
16
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from evomerge.checkpoint.modules import DEFAULT_MODULE
from evomerge.config_io import read_yaml, validate_config
from evomerge.merge.dtypes import DTYPE_NAMES
from evomerge.merge.operators import LINES_PARAMS
from evomerge.merge.params import Setting, Settings, plain_setting
from evomerge.merge.routing import Routing, check_merged_use
from evomerge.merge.tokenizer_settings import TokenizerSettings, check_chat_template
from evomerge.merge.validate import check_recipe

NATIVE_FORMAT = "evomerge/recipe-v1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelEntry(_Strict):
    model: str
    parameters: Settings | None = None


class SliceSource(_Strict):
    model: str
    layer_range: tuple[int, int]
    parameters: Settings | None = None

    @field_validator("layer_range")
    @classmethod
    def _ordered(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= v[0] < v[1]:
            raise ValueError(f"must be [start, end) with 0 <= start < end, got {list(v)}")
        return v


class OutputSlice(_Strict):
    sources: list[SliceSource] = Field(min_length=1)
    base_model: str | None = None
    parameters: Settings | None = None

    @model_validator(mode="after")
    def _same_length(self) -> OutputSlice:
        lengths = {s.layer_range[1] - s.layer_range[0] for s in self.sources}
        if len(lengths) > 1:
            ranges = [list(s.layer_range) for s in self.sources]
            raise ValueError(f"all sources of a slice must span the same number of layers, "
                             f"got layer ranges {ranges}")
        return self


class ModuleEntry(_Strict):
    """One module's inputs (mergekit's ``modules.<name>``): its own ``models`` or
    ``slices`` (layer ranges over the module's own stack) and parameters, which rank below
    a slice's and above the recipe's."""

    models: list[ModelEntry] | None = None
    slices: list[OutputSlice] | None = None
    parameters: Settings | None = None

    @model_validator(mode="after")
    def _one_input(self) -> ModuleEntry:
        if bool(self.models) == bool(self.slices):
            raise ValueError("give a module either 'models' or 'slices' (one, not empty)")
        return self


#: LiNeS (Wang et al. 2025): scale block l's merged task vector by alpha + beta*l/(L-1).
#: Its fields are LINES_PARAMS, the one table of its parameters and their rules.
Lines = create_model("Lines", __base__=_Strict,
                     **{p.name: (float, p.default) for p in LINES_PARAMS})


class Recipe(_Strict):
    """A merge plan. Building one checks it completely (fields, the method's parameters
    and their bounds, model counts), whether it comes from a file or from code.

    What it makes is one output tensor per task of :func:`evomerge.merge.plan.plan_merge`
    (:func:`~evomerge.merge.plan.defined_tensors` lists them); a later way of composing
    layers, such as a layer routing, extends that plan, not the builders.
    """

    format: Literal["evomerge/recipe-v1"] | None = None
    name: str | None = None
    #: None only in a routing-only recipe (``routing`` given, nothing merged)
    merge_method: str | None = None
    base_model: str | None = None
    models: list[ModelEntry] | None = None
    slices: list[OutputSlice] | None = None
    #: per-module inputs of a model with several modules (see evomerge.checkpoint.modules)
    modules: dict[str, ModuleEntry] | None = None
    parameters: Settings | None = None
    dtype: Literal[DTYPE_NAMES] | None = None
    out_dtype: Literal[DTYPE_NAMES] | None = None
    tokenizer_source: str | None = None
    #: mergekit's tokenizer block (source, per-token embeddings, padding)
    tokenizer: TokenizerSettings | None = None
    #: a Jinja chat template written into the merged tokenizer
    chat_template: str | None = None
    seed: int = 0
    lines: Lines | None = None
    #: a layer path through the sources (and the merge, as ``<merged>``); see routing.py
    routing: Routing | None = None

    @model_validator(mode="after")
    def _inputs(self) -> Recipe:
        if self.routing is not None:
            check_merged_use(self.routing, self.merge_method is not None)
        if self.merge_method is None:
            return self._routing_only()
        given = [f for f in ("models", "slices", "modules") if getattr(self, f) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of 'models', 'slices' and 'modules', not {given}")
        if self.tokenizer_source is not None and self.tokenizer is not None:
            raise ValueError("give either 'tokenizer_source' or a 'tokenizer' block, not both")
        if self.chat_template is not None:
            check_chat_template(self.chat_template)
        if not self.models and not self.slices and not self.modules:
            raise ValueError("the model list is empty: give 'models' (or 'slices' or "
                             "'modules') with at least one model")
        check_recipe(self)
        return self

    def _routing_only(self) -> Recipe:
        if self.routing is None:
            raise ValueError("give 'merge_method' (a weight merge), 'routing' (a layer "
                             "path), or both")
        merge_fields = [f for f in ("base_model", "models", "slices", "modules", "parameters",
                                    "lines")
                        if getattr(self, f) is not None]
        if merge_fields:
            raise ValueError(f"{merge_fields[0]!r} belongs to a weight merge: give "
                             "'merge_method' too, or leave it out of a routing-only recipe")
        return self

    # -- derived facts ---------------------------------------------------------------

    def input_parts(self) -> list[tuple[str, str, ModuleEntry]]:
        """(module, field path prefix, inputs) of each part merged on its own: each
        module, or the recipe's own ``models`` or ``slices`` as the one module
        ``default`` (prefix ``""``)."""
        if self.modules is not None:
            return [(name, f"modules.{name}.", m) for name, m in self.modules.items()]
        return [(DEFAULT_MODULE, "", ModuleEntry.model_construct(
            models=self.models, slices=self.slices, parameters=None))]

    def has_slices(self) -> bool:
        """Whether some part of the merge is given as layer slices."""
        return any(part.slices for _, _, part in self.input_parts())

    def source_models(self) -> list[str]:
        """Every model the weight merge reads, base first, without repeats, in order
        (a routing's models are ``routing.models()``)."""
        names: list[str] = [self.base_model] if self.base_model else []
        for _, _, part in self.input_parts():
            for m in part.models or []:
                names.append(m.model)
            for s in part.slices or []:
                names.extend(src.model for src in s.sources)
                if s.base_model:
                    names.append(s.base_model)
        return list(dict.fromkeys(names))

    def all_settings(self) -> list[tuple[str, str, Setting]]:
        """(field path, parameter name, setting) for every parameter in the recipe."""
        out = [(f"parameters.{k}", k, v) for k, v in (self.parameters or {}).items()]
        for _, at, part in self.input_parts():
            out += [(f"{at}parameters.{k}", k, v) for k, v in (part.parameters or {}).items()]
            for i, m in enumerate(part.models or []):
                out += [(f"{at}models[{i}].parameters.{k}", k, v)
                        for k, v in (m.parameters or {}).items()]
            for i, s in enumerate(part.slices or []):
                out += [(f"{at}slices[{i}].parameters.{k}", k, v)
                        for k, v in (s.parameters or {}).items()]
                for j, src in enumerate(s.sources):
                    out += [(f"{at}slices[{i}].sources[{j}].parameters.{k}", k, v)
                            for k, v in (src.parameters or {}).items()]
        return out

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="python", exclude_none=True)
        return _plain(data)

    def content_hash(self) -> str:
        """A short stable hash of everything that changes the merged weights."""
        data = self.to_dict()
        data.pop("name", None)
        data.pop("format", None)
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_yaml(self) -> str:
        data = {k: v for k, v in self.to_dict().items() if k != "format"}
        return yaml.safe_dump({"format": NATIVE_FORMAT, **data}, sort_keys=False)


def _plain(data: Any) -> Any:
    """Dumped recipe data as plain YAML-ready values at every depth."""
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items() if v is not None}
    if isinstance(data, (list, tuple)):
        return [_plain(plain_setting(v)) for v in data]
    return plain_setting(data)


def load_recipe_dict(data: dict[str, Any], file: Path | str | None = None) -> Recipe:
    """Validate a recipe mapping (native or mergekit); errors name file, field, value, rule."""
    return validate_config(Recipe, data, file)


def load_recipe(path: Path | str) -> Recipe:
    """Read a native recipe or a mergekit YAML file; errors name file, field, value, rule."""
    return load_recipe_dict(read_yaml(path), path)
