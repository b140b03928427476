"""A recipe's coefficients per layer: what each source contributes to each block.

The recipe is planned as the merge engine plans it (:func:`~evomerge.merge.plan.plan_merge`
over the models' tensor names), so gradients, filters and slices resolve exactly as they
do in a build. For every numeric parameter the result holds one row per (source, tensor
group) -- or per group, for a parameter of the whole merge such as SLERP's ``t`` -- and
one column per output layer, the mean over that layer's tensors of the group. A recipe
without numeric per-source parameters (layer slices) gets the parameter ``from``: 1
where the layer comes from the source.

>>> # grid = layer_coefficients(recipe); grid.values["weight"][("expert_add", "mlp")]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from evomerge.checkpoint.architecture import tensor_info
from evomerge.merge.plan import plan_merge
from evomerge.merge.recipe import Recipe
from evomerge.space.bound import model_labels

#: the rows of a parameter of the whole merge
ALL_SOURCES = "all"
SOURCE_PARAM = "from"


@dataclass
class LayerGrid:
    """``values[param][(source label, group)] -> [value per layer]`` (None: not an input)."""

    layers: int
    values: dict[str, dict[tuple[str, str], list[float | None]]] = field(default_factory=dict)

    def constant(self) -> dict[str, float]:
        """Parameters of the whole merge with one value everywhere (such as task
        arithmetic's ``lambda``): a heat map would show nothing about the sources."""
        out = {}
        for name, rows in self.values.items():
            seen = {v for (source, _), values in rows.items() for v in values
                    if v is not None and source == ALL_SOURCES}
            if len(seen) == 1 and all(source == ALL_SOURCES for source, _ in rows):
                out[name] = seen.pop()
        return out


def layer_coefficients(recipe: Recipe, tensor_names: Callable[[str], Sequence[str]] | None = None
                       ) -> LayerGrid:
    """The recipe's per-layer coefficients; ``tensor_names(model)`` defaults to reading
    the names from each model's checkpoint index (no weights are loaded)."""
    if tensor_names is None:
        tensor_names = _checkpoint_names()
    tasks = [t for t in plan_merge(recipe, tensor_names) if t.layer is not None]
    labels = model_labels(recipe.source_models())
    layers = max((t.layer for t in tasks), default=-1) + 1
    sums: dict[tuple[str, tuple[str, str], int], list[float]] = defaultdict(list)
    for task in tasks:
        group = tensor_info(task.out_name).group
        models = [labels[m] for m, _ in task.inputs]
        numeric = False
        for name, value in task.params.items():
            if isinstance(value, list) and len(value) == len(models):
                for model, v in zip(models, value):
                    if _is_number(v):
                        sums[(name, (model, group), task.layer)].append(float(v))
                        numeric = True
            elif _is_number(value):
                sums[(name, (ALL_SOURCES, group), task.layer)].append(float(value))
                numeric = True
        if not numeric:
            for model in models:
                sums[(SOURCE_PARAM, (model, group), task.layer)].append(1.0)
    grid = LayerGrid(layers)
    for (name, row, layer), values in sorted(sums.items()):
        rows = grid.values.setdefault(name, {})
        rows.setdefault(row, [None] * layers)[layer] = sum(values) / len(values)
    return grid


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _checkpoint_names() -> Callable[[str], Sequence[str]]:
    from evomerge.checkpoint import CheckpointReader

    cache: dict[str, list[str]] = {}

    def names(model: str) -> list[str]:
        if model not in cache:
            reader = CheckpointReader(model)
            cache[model] = reader.tensor_names()
            reader.close()
        return cache[model]

    return names
