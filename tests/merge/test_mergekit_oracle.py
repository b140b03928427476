"""The same config through mergekit and through `evomerge merge` gives the same tensors.

mergekit is only a test oracle: it runs in-process here through its Python API.
Deterministic methods must agree to 1e-6 in float32. In a 16-bit ``dtype`` the
task-vector family (task arithmetic, TIES, DARE, breadcrumbs, DELLA) and model stock must
be bit-identical, linear and SLERP within 2 units in the last place. Random methods (DARE, DELLA) are
compared at settings where they are deterministic (density 1), and in distribution
otherwise.
"""

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from evomerge.cli import main
from evomerge.testing.random_models import save_perturbed, save_random_llama

pytestmark = pytest.mark.oracle


def _load_dir(path: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(path.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def _config_json(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())


def _mergekit(config: dict, out: Path) -> dict[str, torch.Tensor]:
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    run_merge(MergeConfiguration.model_validate(config), str(out),
              options=MergeOptions(copy_tokenizer=False, lazy_unpickle=False,
                                   low_cpu_memory=False, quiet=True))
    return _load_dir(out)


def _evomerge(config: dict, tmp: Path) -> dict[str, torch.Tensor]:
    recipe = tmp / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(config))
    assert main(["merge", str(recipe), str(tmp / "evo"), "--quiet"]) == 0
    return _load_dir(tmp / "evo")


def _configs(m: dict[str, Path]) -> dict[str, dict]:
    base, a, b, c = (str(m[k]) for k in ("base", "a", "b", "c"))
    two = lambda **p: [{"model": a, "parameters": dict(p, weight=0.7)},  # noqa: E731
                       {"model": b, "parameters": dict(p, weight=0.4)}]
    return {
        "linear": {"merge_method": "linear", "models": [
            {"model": a, "parameters": {"weight": 0.3}},
            {"model": b, "parameters": {"weight": [0.2, 0.9]}},
            {"model": c, "parameters": {"weight": 0.5}}]},
        "task_arithmetic": {"merge_method": "task_arithmetic", "base_model": base,
                            "models": two()},
        "ties": {"merge_method": "ties", "base_model": base, "models": two(density=0.4),
                 "parameters": {"normalize": True}},
        "ties_gradient_filters": {
            "merge_method": "ties", "base_model": base,
            "models": [{"model": a, "parameters": {
                           "weight": [{"filter": "self_attn", "value": [0.2, 1.0]},
                                      {"value": 0.6}],
                           "density": [0.3, 0.8]}},
                       {"model": b, "parameters": {"weight": 0.5, "density": 0.5}}]},
        "breadcrumbs": {"merge_method": "breadcrumbs", "base_model": base,
                        "models": two(density=0.6, gamma=0.05)},
        "breadcrumbs_ties": {"merge_method": "breadcrumbs_ties", "base_model": base,
                             "models": two(density=0.6, gamma=0.05)},
        "dare_ties_density_1": {"merge_method": "dare_ties", "base_model": base,
                                "models": two(density=1.0)},
        "dare_linear_density_1": {"merge_method": "dare_linear", "base_model": base,
                                  "models": two(density=1.0)},
        "della_density_1": {"merge_method": "della", "base_model": base,
                            "models": two(density=1.0, epsilon=0.0),
                            "parameters": {"lambda": 1.0}},
        "slerp": {"merge_method": "slerp", "base_model": base,
                  "models": [{"model": base}, {"model": a}],
                  "parameters": {"t": [{"filter": "self_attn", "value": [0.0, 0.5, 1.0]},
                                       {"filter": "mlp", "value": [1.0, 0.5, 0.0]},
                                       {"value": 0.3}]}},
        "model_stock": {"merge_method": "model_stock", "base_model": base,
                        "models": [{"model": a}, {"model": b}, {"model": c}]},
        "passthrough": {"merge_method": "passthrough", "slices": [
            {"sources": [{"model": a, "layer_range": [0, 2]}]},
            {"sources": [{"model": b, "layer_range": [1, 3]}]}]},
        # mergekit's own tests give slerp and model stock weights, which they ignore
        "slerp_with_weight": {"merge_method": "slerp", "base_model": base,
                              "models": [{"model": base, "parameters": {"weight": 0.5}},
                                         {"model": a, "parameters": {"weight": 0.5}}],
                              "parameters": {"t": 0.3}},
        "model_stock_with_weight": {"merge_method": "model_stock", "base_model": base,
                                    "models": [{"model": a, "parameters": {"weight": 1.0}},
                                               {"model": b, "parameters": {"weight": 1.0}}]},
        # YAML 1.1 reads 1e-1 (no dot) as text; mergekit reads it as the number
        "number_text": {"merge_method": "linear", "models": [
            {"model": a, "parameters": {"weight": "1e-1"}},
            {"model": b, "parameters": {"weight": [{"filter": "mlp", "value": ["2e-1", 9e-1]},
                                                   {"value": "5e-1"}]}}]},
        "slerp_slices": {"merge_method": "slerp", "base_model": base, "slices": [
            {"sources": [{"model": base, "layer_range": [0, 3]},
                         {"model": b, "layer_range": [0, 3]}]}],
                         "parameters": {"t": [0.1, 0.9]}},
    }


CASES = ["linear", "task_arithmetic", "ties", "ties_gradient_filters", "breadcrumbs",
         "breadcrumbs_ties", "dare_ties_density_1", "dare_linear_density_1",
         "della_density_1", "slerp", "model_stock", "passthrough", "slerp_slices",
         "slerp_with_weight", "model_stock_with_weight", "number_text"]


@pytest.mark.parametrize("case", CASES)
def test_same_tensors_as_mergekit(case, tiny_models, tmp_path):
    config = _configs(tiny_models)[case]
    expected = _mergekit(config, tmp_path / "mk")
    got = _evomerge(config, tmp_path)
    assert sorted(got) == sorted(expected)
    for name, want in expected.items():
        assert got[name].shape == want.shape, name
        torch.testing.assert_close(got[name].float(), want.float(), atol=1e-6, rtol=1e-6,
                                   msg=lambda m, n=name: f"{case} {n}: {m}")


#: methods whose 16-bit merge is mergekit's op by op: bit-identical
EXACT_IN_16_BIT = ("task_arithmetic", "ties", "breadcrumbs", "dare", "della", "model_stock")
#: the others (linear, SLERP) compute in float32 from the rounded inputs, as mergekit's
#: do, in another order: units in the last place allowed
ULPS_IN_16_BIT = 2


def test_ignored_parameters_are_said_once(tiny_models, tmp_path, capsys):
    config = _configs(tiny_models)["slerp_with_weight"]
    _evomerge(config, tmp_path)
    err = capsys.readouterr().err
    assert err.count("warning:") == 1
    assert ("merge method 'slerp' ignores models[0].parameters.weight, "
            "models[1].parameters.weight") in err


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("case", CASES)
def test_16_bit_configs_compute_in_their_dtype(case, dtype, tiny_models, tmp_path):
    """mergekit computes in the config's dtype; so does evomerge merge, by default."""
    config = dict(_configs(tiny_models)[case], dtype=dtype)
    expected = _mergekit(config, tmp_path / "mk")
    got = _evomerge(config, tmp_path)
    assert sorted(got) == sorted(expected)
    assert _config_json(tmp_path / "evo") == _config_json(tmp_path / "mk")
    exact = case.startswith(EXACT_IN_16_BIT)
    for name, want in expected.items():
        assert got[name].dtype == want.dtype == getattr(torch, dtype), name
        if exact:
            assert torch.equal(got[name], want), f"{case} {name}"
        else:
            ulp = torch.finfo(want.dtype).eps * want.float().abs().clamp(min=2**-14)
            assert ((got[name].float() - want.float()).abs() <= ULPS_IN_16_BIT * ulp).all(), \
                f"{case} {name}"


def test_out_dtype_is_written_after_computing_in_dtype(tiny_models, tmp_path):
    """``dtype: bfloat16`` with ``out_dtype: float32``: bf16 arithmetic, float32 file."""
    config = dict(_configs(tiny_models)["ties"], dtype="bfloat16", out_dtype="float32")
    expected = _mergekit(config, tmp_path / "mk")
    got = _evomerge(config, tmp_path)
    for name, want in expected.items():
        assert got[name].dtype == want.dtype == torch.float32
        assert torch.equal(got[name], want), name


def test_16_bit_sources_without_dtype_compute_in_their_own_dtype(tmp_path):
    """No ``dtype``: mergekit computes in the sources' stored dtype, and so does evomerge."""
    base = save_random_llama(tmp_path / "base", seed=0, dtype=torch.bfloat16,
                             hidden_size=32, num_layers=2)
    a = save_perturbed(base, tmp_path / "a", seed=1, scale=0.02)
    b = save_perturbed(base, tmp_path / "b", seed=2, scale=0.02)
    config = {"merge_method": "ties", "base_model": str(base),
              "models": [{"model": str(a), "parameters": {"weight": 0.7, "density": 0.5}},
                         {"model": str(b), "parameters": {"weight": 0.4, "density": 0.5}}]}
    expected = _mergekit(config, tmp_path / "mk")
    got = _evomerge(config, tmp_path)
    for name, want in expected.items():
        assert want.dtype == torch.bfloat16
        assert torch.equal(got[name], want), name


def test_float32_compute_is_the_documented_alternative(tiny_models, tmp_path):
    """``--compute float32`` merges in float32 and rounds once: the float32 merge, cast."""
    config = dict(_configs(tiny_models)["ties"], dtype="bfloat16")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(config))
    assert main(["merge", str(recipe), str(tmp_path / "wide"), "--quiet",
                 "--compute", "float32"]) == 0
    assert main(["merge", str(recipe), str(tmp_path / "narrow"), "--quiet"]) == 0
    recipe.write_text(yaml.safe_dump(_configs(tiny_models)["ties"]))
    assert main(["merge", str(recipe), str(tmp_path / "f32"), "--quiet"]) == 0
    wide, narrow = _load_dir(tmp_path / "wide"), _load_dir(tmp_path / "narrow")
    f32 = _load_dir(tmp_path / "f32")
    assert all(torch.equal(wide[n], f32[n].bfloat16()) for n in f32)
    assert any(not torch.equal(wide[n], narrow[n]) for n in f32)  # elections differ


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("method", ["dare_ties", "della"])
def test_random_methods_match_mergekit_in_distribution(method, dtype, tiny_models, tmp_path):
    """Same density: the fraction of kept delta entries and the merged delta's scale agree."""
    base = str(tiny_models["base"])
    params = {"density": 0.5, "weight": 1.0}
    if method == "della":
        params["epsilon"] = 0.1
    config = {"merge_method": method, "base_model": base, "dtype": dtype,
              "models": [{"model": str(tiny_models["a"]), "parameters": params}],
              "parameters": {"normalize": False}}
    mk = _mergekit(config, tmp_path / "mk")
    ev = _evomerge(config, tmp_path)
    assert ev[next(iter(ev))].dtype == getattr(torch, dtype)
    ref = {n: t.to(getattr(torch, dtype)).float() for n, t in _load_dir(Path(base)).items()}
    name = "model.layers.1.mlp.down_proj.weight"
    d_mk, d_ev = mk[name].float() - ref[name], ev[name].float() - ref[name]
    kept_mk = (d_mk != 0).float().mean().item()
    kept_ev = (d_ev != 0).float().mean().item()
    # ~2,500 entries: the kept fraction's standard error is about 0.01
    assert abs(kept_mk - kept_ev) < 0.05
    assert kept_ev == pytest.approx(0.5, abs=0.05)
    # survivors are rescaled: the L1 norms agree within sampling noise
    assert d_ev.abs().sum().item() == pytest.approx(d_mk.abs().sum().item(), rel=0.1)


@pytest.mark.parametrize("method", ["model_stock", "ties", "sce"])
def test_lines_scales_16_bit_merges_too(method, tiny_models, tmp_path):
    """LiNeS with alpha = beta = 0 scales every merged task vector to nothing: the base."""
    base = str(tiny_models["base"])
    models = [{"model": str(tiny_models[k])} for k in ("a", "b")]
    if method == "ties":
        models = [dict(m, parameters={"weight": 0.5, "density": 0.5}) for m in models]
    config = {"format": "evomerge/recipe-v1", "merge_method": method, "base_model": base,
              "models": models, "dtype": "bfloat16", "lines": {"alpha": 0.0, "beta": 0.0}}
    got = _evomerge(config, tmp_path)
    source = _load_dir(Path(base))
    for name in got:
        if ".layers." in name:  # LiNeS scales the blocks' task vectors
            assert torch.equal(got[name], source[name].bfloat16()), name


def test_float64_configs_compute_in_float64(tiny_models, tmp_path):
    config = dict(_configs(tiny_models)["ties"], dtype="float64")
    expected = _mergekit(config, tmp_path / "mk")
    got = _evomerge(config, tmp_path)
    for name, want in expected.items():
        assert got[name].dtype == want.dtype == torch.float64
        torch.testing.assert_close(got[name], want, atol=1e-12, rtol=1e-12)
