"""Bad spaces fail with one message naming the file, the field, the value and the rule."""

import pytest
import yaml

from evomerge.errors import ConfigError
from evomerge.space import ModelFacts, Space, load_space
from space_support import llama_tensor_names


def _space(**fields):
    data = {"merge_method": "ties", "models": {"base": "base"},
            "genes": [{"param": "density", "per": ["model"]}]}
    data.update(fields)
    return data


def _fails(data, *parts):
    with pytest.raises(ConfigError) as info:
        Space.from_dict(data)
    for part in parts:
        assert part in str(info.value), str(info.value)
    return info.value


def test_the_file_field_value_and_rule_are_named(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(_space(genes=[{"param": "densty", "per": ["model"]}])))
    with pytest.raises(ConfigError) as info:
        load_space(path)
    assert str(info.value).startswith(
        f"{path}: field 'genes[0].param' = 'densty': method 'ties' has no parameter "
        "'densty'; did you mean 'density'?")


def test_unknown_method():
    _fails(_space(merge_method="tie"), "'merge_method' = 'tie'",
           "unknown merge method 'tie'; did you mean 'ties'?")
    _fails(_space(merge_method={"choice": ["ties", "dare_tie"]}),
           "'merge_method.choice[1]' = 'dare_tie'", "did you mean 'dare_ties'?")


def test_unknown_parameter():
    _fails(_space(genes=[{"param": "gamma", "per": ["model"], "bounds": [0, 1]}]),
           "'genes[0].param' = 'gamma'", "has no parameter 'gamma'")
    _fails(_space(genes=[{"param": "lines.gamma"}]), "LiNeS has no setting 'gamma'")
    _fails(_space(fixed={"densty": 0.5}), "'fixed.densty'", "did you mean 'density'?")


def test_reversed_bounds():
    _fails(_space(genes=[{"param": "density", "bounds": [0.9, 0.2]}]),
           "'genes[0].bounds' = [0.9, 0.2]", "`low < high` must hold")


def test_bounds_outside_the_parameters_range():
    _fails(_space(genes=[{"param": "density", "bounds": [0.5, 1.5]}]),
           "'genes[0].bounds' = [0.5, 1.5]",
           "must lie inside the range of 'density', [0.0, 1.0]")


def test_unbounded_parameter_needs_bounds_and_log_needs_positive_ones():
    _fails(_space(genes=[{"param": "weight", "per": ["model"]}]),
           "'weight' has no finite range in its ParamSpec; give bounds")
    _fails(_space(genes=[{"param": "density", "transform": "log", "bounds": [0, 1]}]),
           "a log transform needs low > 0")


def test_method_that_needs_a_base_with_none():
    _fails(_space(models={"sources": 2}), "'models.base' = None",
           "method 'ties' needs a base model")


def test_block_size_that_does_not_divide_the_layers():
    space = Space.from_dict(_space(genes=[
        {"param": "density", "per": ["model", "layer"], "block": 4}]))
    with pytest.raises(ConfigError) as info:
        space.bind("base", ["a", "b"], facts=ModelFacts(llama_tensor_names(30)),
                   file="ties4.yaml")
    assert str(info.value) == (
        "ties4.yaml: field 'genes[0].block' = 4: blocks of 4 layers do not divide the "
        "models' 30 layers (30 = 7 x 4 + 2); use one of [1, 2, 3, 5, 6, 10, 15, 30]")
    with pytest.raises(ConfigError, match="blocks of 8 layers do not divide"):
        Space.from_dict(_space(genes=[{"param": "density", "per": ["layer"], "block": 8}])
                        ).bind("base", ["a"], facts=ModelFacts(llama_tensor_names(4)))


def test_tensor_group_no_model_has():
    space = Space.from_dict(_space(genes=[
        {"param": "density", "per": ["group"], "groups": ["head", "rest"]}]))
    tied = ModelFacts(llama_tensor_names(2, tied=True))  # the head is the embedding
    with pytest.raises(ConfigError) as info:
        space.bind("base", ["a"], facts=tied)
    assert "field 'genes[0].groups' = 'head': no tensor of the models is in this group" \
        in str(info.value)
    space.bind("base", ["a"], facts=ModelFacts(llama_tensor_names(2)))  # untied: fine


def test_group_rules():
    _fails(_space(genes=[{"param": "density", "per": ["group"], "groups": ["rest", "mlp"]}]),
           "'rest' (every other tensor) last")
    _fails(_space(genes=[{"param": "density", "per": ["layer", "group"],
                          "groups": ["embedding", "rest"]}]),
           "'embedding' tensors lie outside the layers")
    _fails(_space(genes=[{"param": "density", "groups": ["mlp"]}]),
           "tensor groups need 'group' in 'per'")


def test_per_model_axis_on_a_global_parameter():
    _fails({"merge_method": "slerp", "models": {"base": "a", "sources": ["b"]},
            "genes": [{"param": "t", "per": ["model"]}]},
           "'t' is one value for all models (a global parameter); drop 'model'")


def test_model_counts():
    _fails({"merge_method": "slerp", "models": {"base": "a", "sources": 2},
            "genes": [{"param": "t"}]}, "merge method 'slerp' takes exactly 2 models, got 3")
    space = Space.from_dict(_space(models={"base": "base", "sources": {"min": 2}}))
    with pytest.raises(ConfigError, match="takes at least 2 source model"):
        space.bind("base", ["a"], facts=ModelFacts(llama_tensor_names(2)))


def test_gene_and_fixed_value_for_the_same_parameter():
    _fails(_space(fixed={"density": 0.5}), "'fixed.density' = 0.5",
           "is also a gene that sets every tensor")


def test_gradient_fixed_with_per_layer_genes():
    _fails(_space(genes=[{"param": "density", "per": ["layer"]}],
                  fixed={"weight": [0.2, 0.8]}),
           "a gradient cannot go with per-layer genes")


def test_required_parameter_left_without_a_value():
    space = Space.from_dict(_space(genes=[{"param": "weight", "per": ["model", "group"],
                                           "groups": ["mlp"], "bounds": [0, 1]}]))
    with pytest.raises(ConfigError, match="'weight' has no default: tensors outside"):
        space.bind("base", ["a"], facts=ModelFacts(llama_tensor_names(2)))


def test_ties_must_match_layouts_and_names():
    _fails(_space(genes=[{"param": "density", "per": ["model"]},
                         {"param": "weight", "per": [], "bounds": [0, 1], "tie": "density"}]),
           "a tied entry needs the same per, block and groups")
    _fails(_space(genes=[{"param": "density", "tie": "nothing"}]),
           "must name another gene entry")


def test_duplicate_parameter_and_passthrough_rules():
    _fails(_space(genes=[{"param": "density"}, {"param": "density"}]),
           "genes[0] already searches 'density'")
    _fails({"merge_method": "passthrough", "models": {"sources": ["x", "y"]},
            "genes": [{"choose": "model", "per": ["layer"], "layers": {"top": 0.5}}]},
           "'layers_from' = None", "name the source role")
    _fails(_space(genes=[{"choose": "model", "per": ["layer"]}]),
           "needs merge_method 'passthrough'")
    _fails({"merge_method": "passthrough", "models": {"base": "b", "sources": ["x", "y"]},
            "genes": [{"choose": "model", "per": ["layer"]}]},
           "'models.base' = 'b'", "it has no base")
    _fails(_space(unknown=1), "'unknown' = 1: unknown field")
