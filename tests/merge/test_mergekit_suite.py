"""mergekit's own example configs and the configs of its merge tests, on tiny stand-ins.

Each config is written here as mergekit's repository writes it (examples/*.yml and
tests/test_basic_merges.py at the time of writing), with its model names replaced by
tiny local checkpoints and its layer ranges scaled to their 3 layers. Both tools run it;
the tensors and config.json must agree: bit-identical for every method that runs op by
op in the config's 16-bit dtype, within 2 units in the last place for linear and SLERP
(float32 inside, another order), and for DARE / DELLA below density 1 (their own random
draws) the same tensor names and config.json.
"""

import json

import pytest
import torch
from test_mergekit_oracle import _evomerge, _mergekit

pytestmark = pytest.mark.oracle

#: methods whose 16-bit merge is mergekit's rounding for rounding
ROUNDED_ONCE = ("linear", "slerp")
#: random draws of their own: compared by name and config only
RANDOM = ("dare_ties", "della")
#: mergekit writes these results in float32 whatever the dtype (see the new methods'
#: oracle); compared after rounding them to the config's dtype
PROMOTED_BY_MERGEKIT = ("ramplus_tl", "arcee_fusion")


def _configs(m):
    base, a, b, c = (str(m[k]) for k in ("base", "a", "b", "c"))

    def pair(x, y, method, base_model=None, **params):
        """mergekit's two-model test config: weights 0.6 and 0.4, bfloat16."""
        config = {"merge_method": method, "dtype": "bfloat16",
                  "models": [{"model": x, "parameters": {"weight": 0.6}},
                             {"model": y, "parameters": {"weight": 0.4}}]}
        if base_model:
            config["base_model"] = base_model
        if params:
            config["parameters"] = params
        return config

    return {
        # examples/*.yml
        "example_arcee_fusion": {"merge_method": "arcee_fusion", "base_model": a,
                                 "models": [{"model": a}, {"model": b}],
                                 "dtype": "bfloat16"},
        "example_bio_merge_ties": {
            "merge_method": "ties", "base_model": base, "dtype": "float16",
            "models": [{"model": a, "parameters": {"density": 0.5, "weight": 0.5}},
                       {"model": b, "parameters": {"density": 0.5, "weight": 0.5}}],
            "parameters": {"normalize": False, "int8_mask": True}},
        "example_gradient_slerp": {
            "merge_method": "slerp", "base_model": a, "dtype": "float16",
            "slices": [{"sources": [{"model": a, "layer_range": [0, 3]},
                                    {"model": b, "layer_range": [0, 3]}]}],
            "parameters": {"t": [{"filter": "self_attn", "value": [0, 0.5, 0.3, 0.7, 1]},
                                 {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]},
                                 {"value": 0.5}]}},
        "example_linear": {
            "merge_method": "linear", "dtype": "float16",
            "models": [{"model": a, "parameters": {"weight": 1.0}},
                       {"model": b, "parameters": {"weight": 0.3}},
                       {"model": c, "parameters": {"weight": 0.5}}]},
        "example_passthrough_stack": {
            "merge_method": "passthrough", "dtype": "float16",
            "slices": [{"sources": [{"model": a, "layer_range": [0, 2]}]},
                       {"sources": [{"model": b, "layer_range": [1, 3]}]}]},
        "example_ties": {
            "merge_method": "ties", "base_model": base, "dtype": "float16",
            "models": [{"model": a, "parameters": {"density": [1, 0.7, 0.1], "weight": 1.0}},
                       {"model": b, "parameters": {"density": 0.5,
                                                   "weight": [0, 0.3, 0.7, 1]}},
                       {"model": c, "parameters": {"density": 0.33, "weight": [
                           {"filter": "mlp", "value": 0.5}, {"value": 0}]}}],
            "parameters": {"normalize": True, "int8_mask": True}},
        # tests/test_basic_merges.py
        "test_copy": {"merge_method": "passthrough", "models": [{"model": a}],
                      "dtype": "bfloat16"},
        "test_passthrough_scale": {"merge_method": "passthrough", "models": [
            {"model": a, "parameters": {"scale": [{"filter": "o_proj", "value": 0},
                                                  {"value": 1}]}}]},
        "test_linear": pair(a, b, "linear"),
        "test_slerp": pair(a, b, "slerp", a, t=0.35),
        "test_nuslerp_rows": pair(a, b, "nuslerp", c, nuslerp_row_wise=True,
                                  nuslerp_flatten=False),
        "test_nuslerp_no_base": pair(a, b, "nuslerp", nuslerp_row_wise=False,
                                     nuslerp_flatten=False),
        "test_task_arithmetic": pair(a, b, "task_arithmetic", c),
        "test_breadcrumbs": pair(a, b, "breadcrumbs", c),
        "test_ties": pair(a, b, "ties", c, density=0.3),
        "test_sce": pair(a, b, "sce", c, select_topk=0.5),
        "test_ram": pair(a, b, "ram", c),
        "test_ramplus_tl": pair(a, b, "ramplus_tl", c, r=0.05, alpha=1.0),
        "test_multislerp": pair(a, b, "multislerp", c),
        "test_dare_ties": pair(a, b, "dare_ties", c, density=0.66),
        "test_model_stock": pair(b, c, "model_stock", a),
        "test_model_stock_filter_wise": pair(b, c, "model_stock", a, filter_wise=True),
        "test_arcee_fusion": pair(a, b, "arcee_fusion", a),
        "test_nearswap": pair(a, b, "nearswap", a, t=0.0001),
        "test_della": pair(a, b, "della", c, density=0.66, epsilon=0.05, **{"lambda": 0.5}),
        "test_karcher": pair(a, b, "karcher", c, max_iter=5, tol=1e-5),
    }


@pytest.mark.parametrize("case", list(_configs({k: k for k in ("base", "a", "b", "c")})))
def test_mergekit_config_gives_mergekits_model(case, tiny_models, tmp_path):
    config = _configs(tiny_models)[case]
    method = config["merge_method"]
    expected = _mergekit(config, tmp_path / "mk")
    got = _evomerge(config, tmp_path)
    assert sorted(got) == sorted(expected)
    assert json.loads((tmp_path / "evo" / "config.json").read_text()) == \
        json.loads((tmp_path / "mk" / "config.json").read_text())
    if method in RANDOM:
        return
    for name, want in expected.items():
        if method in PROMOTED_BY_MERGEKIT:
            want = want.to(got[name].dtype)
        assert got[name].dtype == want.dtype, name
        if method in ROUNDED_ONCE:
            ulp = torch.finfo(want.dtype).eps * want.float().abs().clamp(min=2**-14)
            assert ((got[name].float() - want.float()).abs() <= 2 * ulp).all(), name
        else:
            assert torch.equal(got[name], want), f"{case} {name}"
