"""From a recipe and the source models' tensor names to one task per output tensor.

The layout rules are mergekit's, so a mergekit config builds the same tensors here:
``models`` is one slice over every layer of every model (the base model is added as a
source when it is not listed); layer tensors of each slice are renumbered consecutively in
the output; gradients interpolate over a slice's layers (``t = i / (n - 1)``); tensors
outside the layers take ``t = 0`` and come from the first slice (embeddings) or the last
slice (final norm and head).

Parameter precedence for one tensor and one model: the slice source's own parameters,
then the slice's, then the module's, then the recipe's top-level ones.

A ``modules`` recipe plans each module on its own, over the module's own tensors
(:mod:`evomerge.checkpoint.modules`), as mergekit does: its layers are numbered from 0
and its gradients run over its own slices. Every module of the models must be given
(mergekit writes nothing for a module left out: a checkpoint without it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from evomerge.checkpoint.architecture import layer_stack, rename_layer, tensor_info
from evomerge.checkpoint.modules import (
    DEFAULT_MODULE,
    MODULAR_ARCHITECTURES,
    Module,
    module_facts,
    split_modules,
)
from evomerge.errors import ConfigError
from evomerge.merge.params import resolve_setting
from evomerge.merge.recipe import ModuleEntry, OutputSlice, Recipe, SliceSource
from evomerge.merge.validate import operator_of


@dataclass(frozen=True)
class TensorTask:
    """How to make one output tensor: operator inputs, base, resolved parameters."""

    out_name: str
    inputs: tuple[tuple[str, str], ...]  # (model, tensor name) per operator input, in order
    base: tuple[str, str] | None  # (model, tensor name) of the base, for delta methods
    params: dict[str, Any] = field(default_factory=dict)
    layer: int | None = None  # output layer index (for LiNeS)
    num_layers: int = 0  # output layer count
    module: str = DEFAULT_MODULE  # the module whose layers ``layer`` counts


def normalized_slices(recipe: Recipe, num_layers: Callable[[str], int],
                      part: ModuleEntry | None = None) -> list[OutputSlice]:
    """``models`` (of the recipe, or of one module ``part``) as one slice over all layers,
    with the base added if unlisted."""
    part = part or recipe.input_parts()[0][2]
    if part.slices:
        return list(part.slices)
    # built without validation: a model whose tensors sit in no numbered block has the
    # empty range (0, 0), which a slice in a file may not have
    sources = [SliceSource.model_construct(model=m.model, layer_range=(0, num_layers(m.model)),
                                           parameters=m.parameters) for m in part.models]
    if recipe.base_model and recipe.base_model not in [m.model for m in part.models]:
        sources.append(SliceSource.model_construct(
            model=recipe.base_model, layer_range=(0, num_layers(recipe.base_model)),
            parameters=None))
    return [OutputSlice.model_construct(sources=sources, base_model=None, parameters=None)]


def plan_merge(recipe: Recipe, tensor_names: Callable[[str], Sequence[str]],
               file: Any = None,
               architecture: Callable[[str], str | None] = lambda model: None,
               ) -> list[TensorTask]:
    """One :class:`TensorTask` per output tensor, in output order.

    ``tensor_names(model)`` lists a source model's tensors (from its checkpoint index);
    ``architecture(model)`` names its architecture (config.json's), which says how a
    ``modules`` recipe splits it.
    """
    parts = recipe.input_parts()
    modular = MODULAR_ARCHITECTURES.get(architecture(recipe.source_models()[0]) or "")
    if recipe.modules is None and modular and recipe.models:
        # mergekit gives every module of a modular architecture the recipe's models
        parts = [(name, "", parts[0][2]) for name in modular]
    elif recipe.modules is None:
        return _plan_part(recipe, "", parts[0][2], DEFAULT_MODULE, tensor_names, file)
    field, value = (("modules", sorted(recipe.modules)) if recipe.modules is not None
                    else ("models", [m.model for m in recipe.models or []]))
    split = {}
    for model in recipe.source_models():
        try:
            split[model] = split_modules(architecture(model), tensor_names(model))
        except ValueError as exc:
            raise ConfigError(file, field, value, f"model {model!r}: {exc}") from None
    for model, modules in split.items():
        if set(modules) != {name for name, _, _ in parts}:
            raise ConfigError(file, field, value,
                              f"model {model!r} has the modules {sorted(modules)}: give "
                              "each of them and no other (mergekit writes no tensor of a "
                              "module left out)")
    tasks: list[TensorTask] = []
    for name, at, part in parts:
        tasks += _plan_part(recipe, at, part, name,
                            lambda model, name=name: split[model][name], file,
                            module_facts(architecture(recipe.source_models()[0]), name))
    return tasks


def _part_models(recipe: Recipe, part: ModuleEntry) -> list[str]:
    names = [recipe.base_model] if recipe.base_model else []
    names += [m.model for m in part.models or []]
    for s in part.slices or []:
        names += [src.model for src in s.sources] + ([s.base_model] if s.base_model else [])
    return list(dict.fromkeys(names))


def _plan_part(recipe: Recipe, at: str, part: ModuleEntry, module: str,
               tensor_names: Callable[[str], Sequence[str]], file: Any,
               facts: Module | None = None) -> list[TensorTask]:
    """The tasks of one part of the merge (the recipe's models or slices, or one module
    of a modular architecture, ``facts``): ``at`` prefixes its field paths in messages.

    Outside the layers, a module's tensors come from the first slice but for its ``late``
    ones (from the last); without ``facts``, only embeddings come from the first. A
    module without layers (a projector) takes ``slices`` as mergekit does: their layer
    ranges cut nothing, the first slice gives the tensors.
    """
    op = operator_of(recipe)
    by_layer: dict[str, dict[int, list[str]]] = {}
    outside: dict[str, list[str]] = {}
    stacks: dict[str, dict[str, int]] = {}  # model -> container of blocks -> its layers
    for model in _part_models(recipe, part):
        layers: dict[int, list[str]] = {}
        rest = []
        counts = stacks[model] = {}
        for name in tensor_names(model):
            layer = tensor_info(name).layer
            (layers.setdefault(layer, []) if layer is not None else rest).append(name)
            if layer is not None:
                stack = layer_stack(name)
                counts[stack] = max(counts.get(stack, 0), layer + 1)
        by_layer[model], outside[model] = layers, rest

    def count_layers(model: str) -> int:
        return max(by_layer[model], default=-1) + 1

    several = next((m for m, counts in stacks.items() if len(counts) > 1), None)
    if part.slices and several:
        raise ConfigError(file, f"{at}slices", f"<{len(part.slices)} slices>",
                          f"model {several!r} has several stacks of layers "
                          f"({', '.join(stacks[several])}): a layer range cannot say which "
                          "one it cuts; merge such models with 'models', or give each "
                          "stack's slices under 'modules' where its architecture has "
                          "module names")
    slices = normalized_slices(recipe, count_layers, part)
    # a module without layers (a projector, T5's shared embedding); Qwen3-VL's projector
    # has numbered ones, a stack like any other
    layerless = facts is not None and not any(by_layer.values())
    total_layers = 0 if layerless else sum(
        s.sources[0].layer_range[1] - s.sources[0].layer_range[0] for s in slices)
    tasks: list[TensorTask] = []

    def add(out_name: str, in_names: list[str], sl: OutputSlice, t: float,
            layer: int | None, num_layers: int = total_layers) -> None:
        models = [s.model for s in sl.sources]
        base_model = sl.base_model or recipe.base_model
        params = _resolve(op, recipe, part, sl, models, out_name, t, file)
        pairs = list(zip(models, in_names))
        base = None
        if op.kind == "delta" or op.needs_base:
            base = next(((m, n) for m, n in pairs if m == base_model), None)
        if op.kind == "delta":
            keep = [i for i, (m, _) in enumerate(pairs) if m != base_model]
            pairs = [pairs[i] for i in keep]
            params = {k: ([v[i] for i in keep] if isinstance(v, list) else v)
                      for k, v in params.items()}
        elif op.needs_base and base is not None:
            # weight methods with a base (slerp) take the base first
            order = [pairs.index(base)] + [i for i, p in enumerate(pairs) if p != base]
            pairs = [pairs[i] for i in order]
            params = {k: ([v[i] for i in order] if isinstance(v, list) else v)
                      for k, v in params.items()}
        try:
            resolved = op.resolve_params(params, len(pairs))
        except ConfigError as exc:  # a rule across parameters, met only on this tensor
            raise ConfigError(file, f"{at}parameters.{exc.field}", exc.value,
                              f"{exc.rule} (tensor {out_name!r}, models "
                              f"{[m for m, _ in pairs]})") from None
        tasks.append(TensorTask(out_name, tuple(pairs), base, resolved, layer, num_layers,
                                module))

    first, last = slices[0], slices[-1]
    head_model = first.sources[0].model
    if facts is None:
        pre = [n for n in outside[head_model] if tensor_info(n).group == "embedding"]
        post, again = [n for n in outside[head_model] if n not in pre], []
    else:
        again = [n for n in outside[head_model] if n.startswith(facts.last_layer)]
        post = [n for n in outside[head_model] if n.startswith(facts.late)]
        pre = [n for n in outside[head_model] if n not in again and n not in post]
    for name in pre:
        add(name, [name] * len(first.sources), first, 0.0, None)
    for i, sl in enumerate(slices):
        for j, src in enumerate(sl.sources):
            if not layerless and src.layer_range[1] > count_layers(src.model):
                field = (f"{at}slices[{i}].sources[{j}].layer_range" if part.slices
                         else f"{at}models")
                raise ConfigError(file, field, list(src.layer_range),
                                  f"model {src.model!r} has only "
                                  f"{count_layers(src.model)} layers")
    for name in again:
        add(name, [name] * len(last.sources), last, 1.0, None)
    out_layer = 0
    held: dict[str, set[str]] = {}  # model -> its tensor names, read when first needed
    for k, sl in enumerate(slices if not layerless else []):
        length = sl.sources[0].layer_range[1] - sl.sources[0].layer_range[0]
        for i in range(length):
            t = i / (length - 1) if length > 1 else 1.0
            src0 = sl.sources[0]
            template = by_layer[src0.model][src0.layer_range[0] + i]
            for name in template:
                out_name = rename_layer(name, out_layer)
                ins = [rename_layer(name, s.layer_range[0] + i) for s in sl.sources]
                if several:  # a models merge: each stack interpolates over its own layers
                    n = stacks[src0.model][layer_stack(name)]
                    add(out_name, ins, sl, i / (n - 1) if n > 1 else 1.0, out_layer, n)
                else:
                    _check_paired(file, f"{at}slices[{k}]", sl, ins, name, held, tensor_names)
                    add(out_name, ins, sl, t, out_layer)
            out_layer += 1
    # mergekit pairs the last slice's models with as many inputs as the first slice has
    # (a zip): with fewer sources in the first slice, the last slice's first ones only
    tail = OutputSlice.model_construct(sources=last.sources[:len(first.sources)],
                                       base_model=last.base_model, parameters=last.parameters)
    for name in post:
        add(name, [name] * len(tail.sources), tail, 0.0, None)
    return tasks


def _check_paired(file: Any, at: str, sl: OutputSlice, ins: list[str], name: str,
                  held: dict[str, set[str]], tensor_names: Callable[[str], Sequence[str]]
                  ) -> None:
    """Every source of a slice holds the tensor its first source's layer holds (T5 keeps
    its relative attention bias in block 0 only: pairing block 0 with another block
    would merge a tensor some inputs lack)."""
    for j, (src, tensor) in enumerate(zip(sl.sources, ins)):
        if src.model not in held:
            held[src.model] = set(tensor_names(src.model))
        if tensor not in held[src.model]:
            raise ConfigError(file, f"{at}.sources[{j}].layer_range", list(src.layer_range),
                              f"model {src.model!r} has no {tensor!r}, which the first "
                              f"source's layer holds ({name!r}): a slice pairs layers "
                              "that hold the same tensors")


def defined_tensors(recipe: Recipe, tensor_names: Callable[[str], Sequence[str]]) -> list[str]:
    """The output tensors ``recipe`` defines, in order: what a builder must write, and
    all it writes."""
    return [task.out_name for task in plan_merge(recipe, tensor_names)]


def _resolve(op, recipe: Recipe, part: ModuleEntry, sl: OutputSlice, models: list[str],
             tensor: str, t: float, file: Any) -> dict[str, Any]:
    """Per-tensor parameter values: per-model ones as a list aligned with ``models``."""
    out: dict[str, Any] = {}
    for spec in op.params:
        if spec.per_model:
            values = []
            for src in sl.sources:
                levels = [src.parameters, sl.parameters, part.parameters, recipe.parameters]
                values.append(_first(levels, spec.name, tensor, t))
            if all(v is None for v in values):
                continue
            for model, v in zip(models, values):
                if v is None and spec.default is None and not (
                        op.kind == "delta" and model == (sl.base_model or recipe.base_model)):
                    raise ConfigError(file, f"parameters.{spec.name}", None,
                                      f"method {op.name!r} needs {spec.name!r} for model "
                                      f"{model!r} (tensor {tensor!r})")
            out[spec.name] = [spec.default if v is None else v for v in values]
        else:
            v = _first([sl.parameters, part.parameters, recipe.parameters], spec.name,
                       tensor, t)
            if v is not None:
                out[spec.name] = v
    return out


def _first(levels, name: str, tensor: str, t: float) -> Any:
    for level in levels:
        if level and name in level:
            v = resolve_setting(level[name], tensor, t)
            if v is not None:
                return v
    return None
