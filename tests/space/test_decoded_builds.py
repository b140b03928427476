"""Decoded recipes build: in memory (LiveMerger) and on disk (`evomerge merge`) to the same
tensors; M2N2's coefficients and MAP's weights mean what they say."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from evomerge.checkpoint import CheckpointReader
from evomerge.checkpoint.architecture import tensor_info
from evomerge.cli import main
from evomerge.merge.live import LiveMerger
from evomerge.space import load_space
from evomerge.space.forms import CoefficientForm
from space_support import SHIPPED, SPACES, roles_for


def _weights(folder) -> dict[str, torch.Tensor]:
    with CheckpointReader(folder) as reader:
        return {n: reader.get(n) for n in reader.tensor_names()}


def _disk_build(recipe, tmp_path) -> dict[str, torch.Tensor]:
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe.to_yaml())
    assert main(["merge", str(path), str(tmp_path / "out"), "--quiet"]) == 0
    return load_file(tmp_path / "out" / "model.safetensors")


def _live_build(recipe, base, sources) -> dict[str, torch.Tensor]:
    merger = LiveMerger(sources, base=base)
    model = merger.new_model()
    merger.build(recipe, model)
    return model.state_dict()


@pytest.mark.parametrize("name", SHIPPED)
def test_decoded_recipe_builds_the_same_in_memory_and_on_disk(name, tiny4, tmp_path):
    space = load_space(SPACES / name)
    base, sources = roles_for(space, tiny4)
    bound = space.bind(base, sources)
    x = np.random.default_rng(7).random(bound.dim)
    x[0] = 0.1  # layer swap: the bottom layer from the language expert
    if name == "m2n2_coefficients.yaml":  # coefficients near a convex blend of the models
        x = np.full(bound.dim, 1 / (len(sources) + 1)) + 0.1 * (x - 0.5)
    recipe, _ = bound.decode(x.tolist())
    on_disk = _disk_build(recipe, tmp_path)
    live = _live_build(recipe, base, sources)
    assert set(on_disk) <= set(live)
    for tensor, want in on_disk.items():
        torch.testing.assert_close(live[tensor], want, atol=1e-6, rtol=1e-6)
    different = [n for n in on_disk
                 if not torch.equal(on_disk[n], _weights(sources[-1])[n])]
    assert different, "the merge should not simply copy a source"


def _cell(name: str, n_layers: int) -> tuple[int, str]:
    """Which (layer, group) coefficient row a tensor uses, worked out independently: its
    own layer and group; embeddings the first layer's rest, final norm and head the
    last layer's rest."""
    info = tensor_info(name)
    if info.layer is None:
        return (0 if info.group == "embedding" else n_layers - 1), "rest"
    return info.layer, info.group if info.group in ("attention", "mlp") else "rest"


@pytest.fixture(scope="module")
def coefficient_form(tiny4):
    space = load_space(SPACES / "m2n2_coefficients.yaml")
    return CoefficientForm(space.bind(str(tiny4["base"]), [str(tiny4["a"]), str(tiny4["b"])]))


def test_m2n2_coefficients_give_the_coefficients_applied_directly(coefficient_form, tiny4,
                                                                   tmp_path):
    form = coefficient_form
    assert form.shape == (12, 3) and form.groups[:3] == [
        "layer 0, attention", "layer 0, mlp", "layer 0, rest"]
    coefficients = np.random.default_rng(3).normal(0.3, 0.4, size=form.shape)
    recipe = form.recipe(coefficients)
    basis = [_weights(tiny4[k]) for k in ("base", "a", "b")]
    row = {cell_group: g for g, cell_group in enumerate(form.groups)}
    expected = {}
    for name in basis[0]:
        layer, group = _cell(name, 4)
        g = row[f"layer {layer}, {group}"]
        expected[name] = sum(float(coefficients[g, k]) * basis[k][name].double()
                             for k in range(3)).float()
    live = _live_build(recipe, str(tiny4["base"]), [str(tiny4["a"]), str(tiny4["b"])])
    on_disk = _disk_build(recipe, tmp_path)
    for name, want in expected.items():
        torch.testing.assert_close(live[name], want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(on_disk[name], want, atol=1e-5, rtol=1e-5)
    assert np.array_equal(form.coefficients(recipe), coefficients)


def test_m2n2_group_sizes_count_every_parameter_once(coefficient_form, tiny4):
    sizes = coefficient_form.group_sizes()
    total = sum(t.numel() for t in _weights(tiny4["base"]).values())
    assert sum(sizes) == total
    groups = coefficient_form.groups
    assert sizes[groups.index("layer 0, attention")] == 4 * 32 * 32  # q, k, v, o
    assert sizes[groups.index("layer 1, rest")] == 2 * 32  # the two layer norms


def test_m2n2_starting_members_decode_to_their_basis_models(coefficient_form, tiny4):
    from evomerge.optim.m2n2 import M2N2

    form = coefficient_form
    groups, n_basis = form.shape
    optimizer = M2N2(groups * n_basis, seed=0, population=4, **form.optimizer_options())
    starts = optimizer.ask(n_basis)
    merger = LiveMerger([str(tiny4["a"]), str(tiny4["b"])], base=str(tiny4["base"]))
    model = merger.new_model()
    for k, candidate in enumerate(starts):
        decoded = form.decode_candidate(candidate)
        assert decoded.recipe["merge_method"] == "linear"
        merger.build(form.recipe(candidate.params["m2n2_coefficients"]), model)
        state = model.state_dict()
        folder = tiny4[("base", "a", "b")[k]]
        for name, want in _weights(folder).items():
            torch.testing.assert_close(state[name], want, atol=1e-6, rtol=0)


def test_map_coefficients_decode_to_the_task_arithmetic_they_mean(tiny4):
    from evomerge.optim.base import ObjectiveSpec
    from evomerge.optim.map_opt import MapOptimizer

    space = load_space(SPACES / "task_arithmetic.yaml")
    base, sources = str(tiny4["base"]), [str(tiny4["a"]), str(tiny4["b"])]
    bound = space.bind(base, sources)
    optimizer = MapOptimizer(bound.dim, ObjectiveSpec(("a", "b"), ("maximize", "maximize")))
    weights = {k: _weights(tiny4[k]) for k in ("base", "a", "b")}
    merger = LiveMerger(sources, base=base)
    model = merger.new_model()
    for candidate in optimizer.ask(4):
        decoded = bound.decode_candidate(candidate)
        assert [m["parameters"]["weight"] for m in decoded.recipe["models"]] == candidate.x
        merger.build(bound.decode(candidate.x).recipe, model)
        state = model.state_dict()
        for name, theta in weights["base"].items():
            want = theta + sum(c * (weights[k][name] - theta)
                               for c, k in zip(candidate.x, ("a", "b")))
            torch.testing.assert_close(state[name], want, atol=1e-6, rtol=1e-6)
