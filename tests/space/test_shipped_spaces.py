"""Every shipped space: it loads, decodes and encodes exactly, and has the gene count
worked out by hand for the zoo's models and for SmolLM2-135M."""

import math

import numpy as np
import pytest
import yaml

from evomerge.merge.recipe import load_recipe_dict
from evomerge.space import ModelFacts, load_space
from evomerge.space.show import describe
from space_support import SHIPPED, SPACES, bind_shipped, llama_tensor_names


def _points(bound, rng, n=5):
    out = []
    for _ in range(n):
        x = rng.random(bound.dim)
        for i, gene in enumerate(bound.genes):
            if gene.transform == "identity" and not gene.categorical:
                x[i] = rng.normal(0, 2)
        out.append(x.tolist())
    return out


def test_every_space_file_says_where_it_comes_from():
    assert len(SHIPPED) >= 7
    for name in SHIPPED:
        text = (SPACES / name).read_text()
        assert text.startswith("#"), f"{name} has no comment saying where it comes from"
        assert load_space(SPACES / name).name == name.removesuffix(".yaml")


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("n_layers", [4, 6])
def test_round_trip_on_random_points(name, n_layers):
    bound = bind_shipped(name, n_layers)
    rng = np.random.default_rng(n_layers)
    for x in _points(bound, rng):
        recipe, clipped = bound.decode(x)
        assert clipped == ()
        back = bound.encode(recipe)
        again, _ = bound.decode(back)
        assert again.to_dict() == recipe.to_dict()  # exact, bit for bit
        # through the YAML a user would save, too
        assert bound.encode(load_recipe_dict(yaml.safe_load(recipe.to_yaml()))) == back
        for gene, given, got in zip(bound.genes, x, back):
            if gene.categorical:
                n = len(gene.choices)
                assert min(int(given * n), n - 1) == min(int(got * n), n - 1)
            elif _active(bound, recipe, gene):
                assert math.isclose(given, got, rel_tol=1e-9, abs_tol=1e-12), gene.name


def _active(bound, recipe, gene):
    """Whether a gene's parameter exists in the decoded method (method choice)."""
    param = gene.name.split("[", 1)[0]
    from evomerge.merge.operators import OPERATORS

    op = OPERATORS.get(recipe.merge_method)
    return param.startswith("lines.") or any(s.name == param for s in op.params)


# Hand counts. The zoo's default preset: 4 layers, a base and four experts (add, reverse,
# sort, read). SmolLM2-135M: 30 layers, here with two sources.
ZOO = {"task_arithmetic.yaml": 4,             # one weight per expert
       "ties_layerwise.yaml": 2 * 4 * 2,      # (weight, density) x 4 experts x 2 blocks
       "dare_ties_layerwise.yaml": 2 * 4 * 4,  # (density, weight) x 4 experts x 4 layers
       "dare_ties.yaml": 2 * 4,               # (density, weight) x 4 experts
       "slerp_layerwise.yaml": 4 * 3,         # 4 layers x (attention, mlp, rest)
       "lines.yaml": 2,                       # alpha, beta
       "layer_swap.yaml": 1 + 1,              # a quarter of 4 layers at the bottom, top
       "method_choice.yaml": 1 + 4 + 4,       # method, a weight and a density per expert
       "m2n2_coefficients.yaml": 5 * 4 * 3}   # (base + 4) x 4 layers x 3 groups
SMOLLM2 = {"task_arithmetic.yaml": 2,
           "ties_layerwise.yaml": 2 * 2 * 15,
           "dare_ties_layerwise.yaml": 2 * 2 * 30,
           "dare_ties.yaml": 2 * 2,
           "slerp_layerwise.yaml": 30 * 3,
           "lines.yaml": 2,
           "layer_swap.yaml": 8 + 8,           # 0.25 x 30 = 7.5, rounded half up
           "method_choice.yaml": 1 + 2 + 2,
           "m2n2_coefficients.yaml": 3 * 30 * 3}


def test_hand_counts_cover_every_shipped_space():
    assert set(ZOO) == set(SHIPPED) == set(SMOLLM2)


@pytest.mark.parametrize("name", SHIPPED)
def test_gene_counts_for_the_zoo(name):
    from evomerge.zoo.presets import get_preset
    from evomerge.zoo.skills import expert_skills

    layers = get_preset("default").shape.layers
    n = len(expert_skills())
    assert (layers, n) == (4, 4)
    space = load_space(SPACES / name)
    if isinstance(space.models.sources, list):
        n = len(space.models.sources)
    assert bind_shipped(name, layers, n_sources=n).dim == ZOO[name]


def _smollm2_layers() -> tuple[int, bool]:
    """Layer count and tied head of SmolLM2-135M from its GGUF header (no weights read)."""
    from gguf import GGUFReader

    from evomerge.zoo.gguf_import import find_smollm2_gguf

    reader = GGUFReader(find_smollm2_gguf())
    field = reader.fields["llama.block_count"]
    layers = int(field.parts[field.data[0]][0])
    tied = not any(t.name == "output.weight" for t in reader.tensors)
    return layers, tied


@pytest.fixture(scope="module")
def smollm2_layers():
    return _smollm2_layers()


@pytest.mark.parametrize("name", SHIPPED)
def test_gene_counts_for_smollm2(name, smollm2_layers):
    layers, tied = smollm2_layers
    assert (layers, tied) == (30, True)
    assert bind_shipped(name, layers, tied=tied).dim == SMOLLM2[name]


def test_gene_names_say_model_layers_and_group():
    space = load_space(SPACES / "ties_layerwise.yaml")
    data = space.model_dump(exclude_none=True)
    data["genes"][1].update(per=["model", "layer", "group"], block=4, groups=["mlp", "rest"])
    bound = type(space).from_dict(data).bind(
        "runs/zoo/models/base", ["runs/zoo/models/expert_add", "runs/zoo/models/expert_read"],
        facts=ModelFacts(llama_tensor_names(12)))
    names = [g.name for g in bound.genes]
    assert "density[expert_add, layers 8-11, mlp]" in names
    assert "weight[expert_read, layers 10-11]" in names
    assert len(names) == 2 * 6 + 2 * 3 * 2


def test_formula_without_models():
    text = describe(load_space(SPACES / "dare_ties_layerwise.yaml"))
    assert text.splitlines()[-1] == "dim = 2 x n x L"
    text = describe(load_space(SPACES / "slerp_layerwise.yaml"))
    assert text.splitlines()[-1] == "dim = 3 x L"
    text = describe(load_space(SPACES / "method_choice.yaml"))
    assert "(ties, dare_ties only)" in text and text.splitlines()[-1] == "dim = 1 + 2 x n"
