"""The data-flow space (Akiba et al. 2024, "Evolutionary Optimization of Model Merging
Recipes", section 3.2): which layers a token's hidden state passes through, and a scale
on each hop.

Lay the layers of the models in order (M layers in all) and repeat that list r times:
T = M r slots. One gene per slot says whether the slot is on the path (on from 0.5 up,
as the paper includes a slot whose indicator is positive); the path is the slots that
are on, in slot order. As in the paper, the first model frames the path (embeddings,
final norm, head): the path starts with its first layer (slot 0) and ends with its last
layer in the last repetition; those two slots are always on and have no gene, and no
slot after the end has one. ``anchored: false`` drops both anchors: every slot has a
gene, the path may start and end with any layer (the first model still gives the
embeddings, final norm and head), and a point with no slot on takes the one slot whose
gene is highest, so the path is never empty. ``scales`` says how the hidden state
entering each hop is scaled: ``pair``, the paper's W[i, j] for a hop into layer j from
layer i (M x M genes); ``layer``, one scale per layer entered (M genes, the compact form
for large M); or ``none`` (every scale 1, a plain layer stack). The first hop, from the
embeddings, is never scaled. The default bounds [0, 2] put scale 1 at the box's centre.

``merge`` makes the paper's parameter space + data-flow space one recipe: a parameter
space (a file relative to this one, or inline) whose merged model is the role
``merged``; its genes come first. Models bind in role order: the merge space's (base
first), then the data-flow roles other than ``merged``.

    format: evomerge/space-v1
    dataflow:
      models: [a, b]        # role names; the first frames the path
      repeats: 3
      anchored: true        # start on a's first layer, end on its last
      scales: {per: pair, bounds: [0.0, 2.0]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, model_validator

from evomerge.config_io import validate_config
from evomerge.errors import ConfigError
from evomerge.merge.recipe import Recipe, load_recipe_dict
from evomerge.merge.routing import MERGED, same_model
from evomerge.space.bound import BoundSpace, Decoded, _content, _outside, model_labels
from evomerge.space.facts import ModelFacts
from evomerge.space.layout import Gene
from evomerge.space.model import Roles, Space, _Strict
from evomerge.space.transforms import category, category_unit, to_unit, to_value

#: the role name of the merge's output in a space with ``merge``
MERGED_ROLE = "merged"
_ON, _OFF = category_unit(1, 2), category_unit(0, 2)


class ScaleGenes(_Strict):
    per: Literal["pair", "layer", "none"] = "pair"
    bounds: tuple[float, float] = (0.0, 2.0)
    transform: Literal["linear", "log"] = "linear"

    @model_validator(mode="after")
    def _ordered(self) -> ScaleGenes:
        low, high = self.bounds
        if not low < high or (self.transform == "log" and low <= 0):
            raise ValueError(f"bounds must be [low, high] with low < high (and low > 0 for "
                             f"log), got {list(self.bounds)}")
        return self


class Dataflow(_Strict):
    models: list[str] = Field(min_length=1)
    repeats: int = Field(3, ge=1)
    anchored: bool = True
    scales: ScaleGenes = Field(default_factory=ScaleGenes)
    merge: str | dict[str, Any] | None = None

    @model_validator(mode="after")
    def _roles(self) -> Dataflow:
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"role names must differ, got {self.models}")
        if (self.merge is not None) != (MERGED_ROLE in self.models):
            raise ValueError(f"the role {MERGED_ROLE!r} is the output of 'merge': give both "
                             "or neither")
        return self


class DataflowSpace(_Strict):
    """A validated data-flow space file (no models bound yet)."""

    format: Literal["evomerge/space-v1"] | None = None
    name: str | None = None
    dataflow: Dataflow
    seed: int = 0
    _file: Path | None = PrivateAttr(None)

    def merge_space(self, file: Path | str | None = None) -> Space | None:
        """The parameter space of ``merge`` (a file relative to this space's file)."""
        merge = self.dataflow.merge
        file = file if file is not None else self._file
        if merge is None:
            return None
        if isinstance(merge, str):
            from evomerge.space.model import load_space

            here = Path(file).parent if file is not None else Path(".")
            return load_space(here / merge)
        return Space.from_dict(merge, file)

    @property
    def models(self) -> Roles:
        """The base role (the merge's, if any); the sources are the merge's and then
        the data-flow roles other than ``merged``."""
        merge = self.merge_space()
        return Roles(base=merge.models.base if merge is not None else None,
                     sources=[r for r in self.dataflow.models if r != MERGED_ROLE])

    def bind(self, base: str | None = None, sources: list[str] | None = None, *,
             facts: Any = None, file: Path | str | None = None) -> BoundDataflowSpace:
        """This space over models; ``facts`` (:class:`ModelFacts`, shared by all the
        models, as in a parameter space) gives the layer count, else each model's folder."""
        return BoundDataflowSpace(self, base, list(sources or []), facts=facts,
                                  file=file if file is not None else self._file)


class BoundDataflowSpace(BoundSpace):
    """A data-flow space over concrete models: ``decode(x)`` gives a routed recipe.
    (A BoundSpace for everything that only reads ``genes``, ``dim`` and ``decode``.)"""

    def __init__(self, space: DataflowSpace, base: str | None, sources: list[str], *,
                 facts: ModelFacts | None = None, file: Path | str | None = None):
        self.space, self.file = space, file
        flow = space.dataflow
        try:
            merge = space.merge_space(file)
            own = [r for r in flow.models if r != MERGED_ROLE]
            if len(sources) < len(own):
                raise ConfigError(None, "models", sources, f"the data-flow roles {own} need "
                                  f"{len(own)} model(s) after the merge's")
            split = len(sources) - len(own)
            self.merge = None if merge is None else merge.bind(base, sources[:split],
                                                               facts=facts)
            if merge is None and (base is not None or split):
                raise ConfigError(None, "models", [base, *sources], "a data-flow space "
                                  f"without 'merge' binds exactly its roles {own}")
            named = dict(zip(own, sources[split:]))
            self.models = [MERGED if r == MERGED_ROLE else named[r] for r in flow.models]
            self.base, self.sources = base, sources
            self.layer_counts = [self.merge.num_layers if m == MERGED else
                                 (facts or ModelFacts.from_folders([m])).num_layers
                                 for m in self.models]
        except ConfigError as exc:
            raise ConfigError(file, exc.field, exc.value, exc.rule) from None
        self.num_layers = sum(self.layer_counts)  # M
        self.slots = [(i, layer) for _ in range(flow.repeats)
                      for i, n in enumerate(self.layer_counts) for layer in range(n)]
        self.end = (flow.repeats - 1) * self.num_layers + self.layer_counts[0] - 1
        # the slots with an on/off gene: those between the anchors, or every slot
        self._free = (list(range(1, self.end)) if flow.anchored
                      else list(range(len(self.slots))))
        self._offsets = [sum(self.layer_counts[:i]) for i in range(len(self.models))]
        self.genes = list(self.merge.genes) if self.merge else []
        self._merge_dim = len(self.genes)
        labels = model_labels([m for m in self.models if m != MERGED])
        self._names = [labels.get(m, MERGED_ROLE) for m in self.models]
        self.genes += [Gene(f"on[{self._slot_name(s)}]", choices=(False, True))
                       for s in self._free]
        scales = flow.scales
        low, high = scales.bounds
        self.genes += [Gene(f"scale[{name}]", low, high, scales.transform)
                       for name in self._scale_names()]

    # -- layout ----------------------------------------------------------------------

    def _slot_name(self, s: int) -> str:
        i, layer = self.slots[s]
        return f"{self._names[i]}.{layer} r{s // self.num_layers + 1}"

    def _layer_name(self, j: int) -> str:
        i = max(k for k, off in enumerate(self._offsets) if off <= j)
        return f"{self._names[i]}.{j - self._offsets[i]}"

    def _scale_names(self) -> list[str]:
        m, per = self.num_layers, self.space.dataflow.scales.per
        if per == "pair":
            return [f"{self._layer_name(i)} -> {self._layer_name(j)}"
                    for i in range(m) for j in range(m)]
        return [f"-> {self._layer_name(j)}" for j in range(m)] if per == "layer" else []

    def _scale_coord(self, prev: int, j: int) -> int | None:
        """The coordinate of the scale of a hop into layer j from layer prev."""
        per = self.space.dataflow.scales.per
        first = self._merge_dim + len(self._free)
        if per == "pair":
            return first + prev * self.num_layers + j
        return first + j if per == "layer" else None

    def _flat(self, s: int) -> int:
        """Slot s's layer among the M layers."""
        return s % self.num_layers

    # -- decode and encode -------------------------------------------------------------

    def decode(self, x) -> Decoded:
        unit, clipped = self._clipped(x)
        data: dict[str, Any] = {}
        if self.merge is not None:
            data = _content(self.merge.decode(unit[:self._merge_dim]).recipe)
        genes = unit[self._merge_dim:self._merge_dim + len(self._free)]
        on = [s for s, g in zip(self._free, genes) if category(g, 2)]
        if self.space.dataflow.anchored:
            on = [0, *on, self.end]
        elif not on:  # never an empty path: the slot closest to being on
            on = [self._free[max(range(len(genes)), key=lambda k: genes[k])]]
        scales = self.space.dataflow.scales
        hops, prev = [], None
        for s in dict.fromkeys(on):  # one slot when the path's first layer is its last
            i, layer = self.slots[s]
            coord = None if prev is None else self._scale_coord(prev, self._flat(s))
            scale = 1.0 if coord is None else to_value(unit[coord], *scales.bounds,
                                                       scales.transform)
            hops.append({"model": self.models[i], "layer": layer, "scale": scale})
            prev = self._flat(s)
        data["routing"] = {"embeddings": self.models[0], "path": hops,
                           "max_length": len(self.slots)}
        if not self.space.dataflow.anchored:
            data["routing"]["anchored"] = False
        data.setdefault("seed", self.space.seed)
        return Decoded(load_recipe_dict(data, self.file), clipped)

    def encode(self, recipe: Recipe | dict[str, Any]) -> list[float]:
        if not isinstance(recipe, Recipe):
            recipe = load_recipe_dict(recipe)
        data = _content(recipe)
        routing = data.pop("routing", None)
        if routing is None:
            raise _outside("routing", None, "this space makes a routed recipe")
        x = [0.5] * self.dim
        if self.merge is not None:
            x[:self._merge_dim] = self.merge.encode(data)
        hops = routing["path"]
        slots = self._match(hops)
        for k, s in enumerate(self._free):
            x[self._merge_dim + k] = _ON if s in slots else _OFF
        scales = self.space.dataflow.scales
        for prev, s, hop in zip(slots, slots[1:], hops[1:]):
            coord = self._scale_coord(self._flat(prev), self._flat(s))
            if coord is not None:
                x[coord] = to_unit(hop["scale"], *scales.bounds, scales.transform)
        made = _content(self.decode(x).recipe)
        if made != _content(recipe):
            raise _outside("routing.path", f"<{len(hops)} hops>", "this space cannot make "
                           "this path with these scales (a layer pair scaled two ways, a "
                           "scale outside the bounds, or hops out of slot order)")
        return x

    def _match(self, hops: list[dict[str, Any]]) -> list[int]:
        """The earliest slots, in order, that hold the path's hops (first and last on the
        anchors, if anchored)."""
        anchored = self.space.dataflow.anchored
        out, start = [], 0
        for k, hop in enumerate(hops):
            last = k == len(hops) - 1
            candidates = ([self.end] if last and anchored else
                          range(start, self.end if anchored else len(self.slots)))
            s = next((s for s in candidates if self._holds(s, hop)), None)
            if s is None or (anchored and k == 0 and s != 0):
                raise _outside(f"routing.path[{k}]", f"{hop['model']} layer {hop['layer']}",
                               "no slot of this space holds this hop in path order")
            out.append(s)
            start = s + 1
        return out

    def _holds(self, s: int, hop: dict[str, Any]) -> bool:
        i, layer = self.slots[s]
        return same_model(self.models[i], hop["model"]) and layer == hop["layer"]

    def describe(self) -> str:
        head = (f"data-flow over {', '.join(self._names)} "
                f"({' + '.join(map(str, self.layer_counts))} = {self.num_layers} layers), "
                f"{self.space.dataflow.repeats} repeats: {len(self.slots)} slots")
        rows = [f"  {i:>4}  {g.name}  {g.describe()}" for i, g in enumerate(self.genes)]
        return "\n".join([head, *rows, f"dim = {self.dim}"])


def describe_dataflow(space: DataflowSpace) -> str:
    """The gene counts of a data-flow space as formulas of the layer counts."""
    flow = space.dataflow
    counts = " + ".join(f"L_{r}" for r in flow.models)
    scales = {"pair": "M x M", "layer": "M", "none": "0"}[flow.scales.per]
    lines = [f"data-flow over {', '.join(flow.models)}; M = {counts}; r = {flow.repeats}",
             (f"  on     one per slot between the anchors  (r-1) x M + L_{flow.models[0]} - 2"
              if flow.anchored else "  on     one per slot (anchored: false)  r x M"),
             (f"  scale  per {flow.scales.per}, {list(flow.scales.bounds)} "
              f"{flow.scales.transform}  {scales}")]
    if flow.merge is not None:
        lines.append("  plus the genes of the merge space ('evomerge space show' on it)")
    return "\n".join(lines)


def load_dataflow_space(data: dict[str, Any], file: Path | str | None) -> DataflowSpace:
    """Validate a data-flow space mapping; errors name file, field, value and rule."""
    space = validate_config(DataflowSpace, data, file)
    space._file = Path(file) if file is not None else None
    return space


def is_dataflow(data: Any) -> bool:
    """Whether a space mapping is a data-flow space (it has a ``dataflow`` section)."""
    return isinstance(data, dict) and "dataflow" in data
