"""M2N2's coefficient members as recipes, through a coefficient space.

M2N2 over language models (Abrantes, Lange, Tang 2025) keeps members as matrices C of
shape (groups, basis models): the weights of group g are ``sum_k C[g, k] theta_k,g``.
A coefficient space (``search_spaces/m2n2_coefficients.yaml``: a ``linear`` merge without
normalisation whose one gene, ``weight``, is per model and per layer and/or tensor
group, set directly) makes that a recipe: group g is a cell (a block of layers, a
tensor group), basis model k the k-th model of the space's model axis (the base, then
the sources). The optimizer never sees a recipe: it gets the group names and sizes
from :meth:`CoefficientForm.optimizer_options` and hands back matrices.

MAP needs no form of its own: its coefficients c in [0, 1]^T are the points of
``search_spaces/task_arithmetic.yaml``, which decode to ``theta_base + sum_t c_t tau_t``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from evomerge.errors import ConfigError
from evomerge.merge.plan import plan_merge
from evomerge.merge.recipe import Recipe
from evomerge.optim.m2n2_crossover import group_gram
from evomerge.optim.m2n2_forms import COEFFICIENTS_KEY, GROUPS_KEY
from evomerge.records import Candidate
from evomerge.space.bound import BoundSpace
from evomerge.space.layout import cell_name


class CoefficientForm:
    """Coefficient matrices (groups x basis models) to and from a coefficient space.

    >>> # form = CoefficientForm(load_space("search_spaces/m2n2_coefficients.yaml")
    >>> #                        .bind(base, sources)); form.recipe(C) -> Recipe
    """

    def __init__(self, bound: BoundSpace):
        space = bound.space
        layouts = [e for e in bound.layouts if not e.entry.tie]
        entry = layouts[0].entry if len(layouts) == 1 else None
        if space.methods != ["linear"] or entry is None or entry.param != "weight" \
                or "model" not in entry.per or entry.transform != "identity" \
                or space.fixed.get("normalize") is not False or bound.method_coord is not None:
            raise ConfigError(bound.file, "genes", None,
                              "a coefficient space is a 'linear' merge with normalize "
                              "fixed to false and one gene entry: weight per model "
                              "(and layer and/or group), transform identity")
        self.bound = bound
        layout = layouts[0]
        self.n_basis = len(bound.inputs)
        cells = [(p.layers, p.group) for p in layout.placements if p.model == 0]
        self.groups = [cell_name(layers, group) or "all" for layers, group in cells]
        where = {(p.model, (p.layers, p.group)): c
                 for p, c in zip(layout.placements, layout.coords)}
        #: coordinate of C[g, k] in the space's points
        self.coords = np.array([[where[(k, cell)] for k in range(self.n_basis)]
                                for cell in cells])

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.groups), self.n_basis

    def recipe(self, coefficients: Any) -> Recipe:
        """The recipe that weights group g of basis model k by ``coefficients[g][k]``."""
        matrix = np.asarray(coefficients, dtype=np.float64)
        if matrix.shape != self.shape or not np.all(np.isfinite(matrix)):
            raise ConfigError(None, COEFFICIENTS_KEY, f"<array of shape {matrix.shape}>",
                              f"must be finite with shape (groups, basis models) = {self.shape}")
        x = [0.0] * self.bound.dim
        for (g, k), coord in np.ndenumerate(self.coords):
            x[coord] = float(matrix[g, k])
        return self.bound.decode(x).recipe

    def coefficients(self, recipe: Recipe) -> np.ndarray:
        """The matrix :meth:`recipe` turns into ``recipe``."""
        x = self.bound.encode(recipe)
        return np.array([[x[c] for c in row] for row in self.coords])

    def decode_candidate(self, candidate: Candidate) -> Candidate:
        """An M2N2 coefficient candidate with its ``recipe`` filled."""
        if COEFFICIENTS_KEY not in candidate.params:
            raise ConfigError(None, f"params.{COEFFICIENTS_KEY}", None,
                              f"candidate {candidate.uid} carries no coefficient matrix")
        groups = candidate.params.get(GROUPS_KEY)
        if groups is not None and list(groups) != self.groups:
            raise ConfigError(None, f"params.{GROUPS_KEY}", groups,
                              f"this space's groups are {self.groups}")
        recipe = self.recipe(candidate.params[COEFFICIENTS_KEY])
        return replace(candidate, recipe=recipe.to_dict())

    def tensor_groups(self) -> dict[str, int]:
        """Output tensor name -> the group its coefficients come from, by the engine's
        own reading of the recipe (a probe whose every weight says its group)."""
        groups, n_basis = self.shape
        probe = self.recipe(np.repeat(np.arange(groups, dtype=np.float64)[:, None],
                                      n_basis, axis=1))
        names = list(self.bound.facts.tensor_names)
        return {task.inputs[0][1]: int(task.params["weight"][0])
                for task in plan_merge(probe, lambda model: names)}

    def group_sizes(self) -> list[int]:
        """Parameters per group, from the models' tensor sizes."""
        numel = self.bound.facts.numel
        if numel is None:
            raise ConfigError(None, "facts", None, "group sizes need the tensors' sizes; "
                              "bind to model folders or give ModelFacts.numel")
        sizes = [0] * self.shape[0]
        for name, group in self.tensor_groups().items():
            sizes[group] += numel[name]
        return sizes

    def gram(self, read: Callable[[str, str], Any]) -> np.ndarray:
        """Per group, the inner products of the basis models' weights (G, K+1, K+1), the
        geometry M2N2's coefficient SLERP needs; ``read(model, tensor)`` gives a tensor
        (read one at a time: the driver never holds a whole model)."""
        groups, n_basis = self.shape
        gram = np.zeros((groups, n_basis, n_basis))
        for name, group in self.tensor_groups().items():
            tensors = [read(model, name) for model in self.bound.inputs]
            gram[group] += group_gram([tensors])[0]
        return gram

    def optimizer_options(self) -> dict[str, Any]:
        """What M2N2 needs to breed these members: group names and sizes."""
        return {"groups": list(self.groups), "group_sizes": self.group_sizes()}

