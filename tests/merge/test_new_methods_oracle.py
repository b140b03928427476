"""NuSLERP, Multi-SLERP, Karcher, SCE, NearSwap, Arcee Fusion, RAM and RAM+ give the
tensors mergekit 0.1.5 gives on the same config (float32, to 1e-6 unless noted)."""

from pathlib import Path

import pytest
import torch
from test_mergekit_oracle import _evomerge, _load_dir, _mergekit

from evomerge.testing.random_models import save_edited_copy

pytestmark = pytest.mark.oracle


@pytest.fixture(scope="module")
def sparse_models(tiny_models, tmp_path_factory) -> dict[str, Path]:
    """Fine-tunes that each change a random half of the base's entries: RAM sees unique
    and shared updates."""
    root = tmp_path_factory.mktemp("sparse")
    out = {"base": tiny_models["base"]}
    for seed, name in enumerate(["x", "y", "z"], start=1):
        gen = torch.Generator().manual_seed(seed)

        def edit(tensors, gen=gen):
            for key, t in tensors.items():
                changed = torch.rand(t.shape, generator=gen) < 0.5
                tensors[key] = t + 0.02 * torch.randn(t.shape, generator=gen) * changed

        out[name] = save_edited_copy(tiny_models["base"], root / name, edit)
    return out


def _configs(m: dict[str, Path], s: dict[str, Path]) -> dict[str, dict]:
    base, a, b, c = (str(m[k]) for k in ("base", "a", "b", "c"))
    x, y, z = (str(s[k]) for k in ("x", "y", "z"))
    weighted = lambda *pairs: [{"model": p, "parameters": {"weight": w}}  # noqa: E731
                               for p, w in pairs]
    return {
        "nuslerp_base": {"merge_method": "nuslerp", "base_model": base,
                         "models": weighted((a, 0.3), (b, 0.7))},
        "nuslerp_rows": {"merge_method": "nuslerp", "models": weighted((a, 1.0), (b, 2.0)),
                         "parameters": {"nuslerp_flatten": False, "nuslerp_row_wise": True}},
        "nuslerp_last_dim": {"merge_method": "nuslerp", "models": weighted((a, 1.0), (b, 1.0)),
                             "parameters": {"nuslerp_flatten": False}},
        "multislerp_base": {"merge_method": "multislerp", "base_model": base,
                            "models": weighted((a, 0.2), (b, 0.5), (c, 0.3))},
        "multislerp": {"merge_method": "multislerp",
                       "models": weighted((a, 1.0), (b, 2.0), (c, 1.0))},
        "karcher": {"merge_method": "karcher",
                    "models": [{"model": a}, {"model": b}, {"model": c}]},
        "karcher_base": {"merge_method": "karcher", "base_model": base,
                         "models": [{"model": a}, {"model": b}],
                         "parameters": {"max_iter": 20, "tol": 1e-7}},
        "sce": {"merge_method": "sce", "base_model": base,
                "models": [{"model": a}, {"model": b}, {"model": c}],
                "parameters": {"select_topk": 0.5}},
        "sce_all": {"merge_method": "sce", "base_model": base,
                    "models": [{"model": x}, {"model": y}]},
        "nearswap": {"merge_method": "nearswap", "base_model": base,
                     "models": [{"model": a}], "parameters": {"t": 0.01}},
        "arcee_fusion": {"merge_method": "arcee_fusion", "base_model": base,
                         "models": [{"model": a}]},
        "ram": {"merge_method": "ram", "base_model": base,
                "models": [{"model": x}, {"model": y}, {"model": z}]},
        "ramplus_tl": {"merge_method": "ramplus_tl", "base_model": base,
                       "models": [{"model": x}, {"model": y}, {"model": z}],
                       "parameters": {"r": 0.5, "alpha": 0.9}},
    }


CASES = ["nuslerp_base", "nuslerp_rows", "nuslerp_last_dim", "multislerp_base",
         "multislerp", "karcher", "karcher_base", "sce", "sce_all", "nearswap",
         "arcee_fusion", "ram", "ramplus_tl"]


@pytest.mark.parametrize("case", CASES)
def test_same_tensors_as_mergekit(case, tiny_models, sparse_models, tmp_path):
    config = _configs(tiny_models, sparse_models)[case]
    expected = _mergekit(config, tmp_path / "mk")
    got = _evomerge(config, tmp_path)
    assert sorted(got) == sorted(expected)
    inputs = [_load_dir(Path(e["model"])) for e in config["models"]]
    for source in inputs:  # the merge is none of its inputs
        assert any(not torch.allclose(got[n], source[n]) for n in got)
    for name, want in expected.items():
        torch.testing.assert_close(got[name], want, atol=1e-6, rtol=1e-6,
                                   msg=lambda m, n=name: f"{case} {n}: {m}")


#: mergekit promotes these results to float32 (a float32 mask or boost factor) and
#: writes them in float32 whatever the config's dtype; evomerge writes the config's
#: dtype, the same values rounded once
PROMOTED_BY_MERGEKIT = ("ramplus_tl", "arcee_fusion")
HALF_CASES = [(case, "bfloat16") for case in CASES] + [
    (case, "float16") for case in ("sce", "karcher", "ramplus_tl", "multislerp_base")]


@pytest.mark.parametrize(("case", "dtype"), HALF_CASES)
def test_16_bit_configs_are_bit_identical(case, dtype, tiny_models, sparse_models,
                                          tmp_path):
    config = dict(_configs(tiny_models, sparse_models)[case], dtype=dtype)
    expected = _mergekit(config, tmp_path / "mk")
    got = _evomerge(config, tmp_path)
    for name, want in expected.items():
        assert got[name].dtype == getattr(torch, dtype), name
        if case in PROMOTED_BY_MERGEKIT:
            assert want.dtype == torch.float32
            want = want.to(got[name].dtype)
        assert torch.equal(got[name], want), f"{case} {name}"


def test_every_mergekit_method_and_parameter_exists_here():
    """Every method mergekit 0.1.5 registers is registered here with its parameters;
    the only exceptions are the sparsification parameters mergekit declares for task
    arithmetic and never reads (it has no sparsification)."""
    from mergekit.merge_methods.registry import registered_methods

    from evomerge.merge.operators import OPERATORS

    unread = {"task_arithmetic": {"density", "rescale"}}
    for method in registered_methods():
        name = method.spec.name
        theirs = {p.name for p in method.spec.parameters}
        ours = {p.name for p in OPERATORS.get(name).params}
        assert theirs - ours == unread.get(name, set()), name
