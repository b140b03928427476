"""Parameter settings resolve exactly as mergekit resolves them."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evomerge.merge.params import parse_setting, resolve_setting, setting_values

NAME_ATTN = "model.layers.3.self_attn.q_proj.weight"
NAME_MLP = "model.layers.3.mlp.up_proj.weight"


def resolve(setting, name, t):
    return resolve_setting(parse_setting(setting), name, t)


def test_scalar_applies_everywhere():
    assert resolve(0.3, NAME_ATTN, t=0.7) == 0.3


def test_gradient_interpolates_linearly_between_anchors():
    grad = [0.0, 1.0, 0.0]
    assert resolve(grad, NAME_MLP, 0.0) == 0.0
    assert resolve(grad, NAME_MLP, 0.25) == pytest.approx(0.5)
    assert resolve(grad, NAME_MLP, 0.5) == pytest.approx(1.0)
    assert resolve(grad, NAME_MLP, 1.0) == pytest.approx(0.0)


def test_filters_pick_the_first_matching_entry():
    setting = [{"filter": "self_attn", "value": [0.0, 1.0]},
               {"filter": "mlp", "value": 0.7},
               {"value": 0.1}]
    assert resolve(setting, NAME_ATTN, 0.5) == pytest.approx(0.5)
    assert resolve(setting, NAME_MLP, 0.5) == 0.7
    assert resolve(setting, "model.embed_tokens.weight", 0.0) == 0.1


def test_no_matching_filter_means_unset():
    assert resolve([{"filter": "mlp", "value": 1.0}], NAME_ATTN, 0.0) is None


def test_booleans_select_rather_than_blend():
    assert resolve([False, True], NAME_MLP, 0.4) is False
    assert resolve([False, True], NAME_MLP, 1.0) is True


def test_setting_values_lists_every_literal():
    setting = [{"filter": "mlp", "value": [0.1, 0.2]}, {"value": 1.5}]
    assert sorted(setting_values(parse_setting(setting))) == [0.1, 0.2, 1.5]


@given(st.lists(st.floats(-10, 10), min_size=1, max_size=6), st.floats(0, 1))
def test_gradient_agrees_with_mergekit(values, t):
    from mergekit.config import evaluate_setting

    expected = evaluate_setting(NAME_MLP, values, t, validate=float)
    assert resolve(values, NAME_MLP, t) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("bad, words", [
    ("heavy", "must be a number, true or false"),
    ([], "must be a number, true or false"),
    ([0.1, {"value": 1}], "must be a number, true or false"),
    ([{"filter": "mlp"}], "entry [0]: an entry needs a 'value'"),
    ([{"value": 1}, {"value": "x"}], "entry [1]: 'value' must be"),
    ({"value": 1, "filtr": "mlp"}, "unknown key(s) ['filtr']"),
    ({"filter": 3, "value": 1}, "'filter' must be text"),
])
def test_malformed_settings_say_what_shape_is_wrong(bad, words):
    with pytest.raises(ValueError) as info:
        parse_setting(bad)
    assert words in str(info.value)
