"""`evomerge merge` as a user runs it: good recipes build loadable models, bad input exits 2."""

import json
import shutil
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from evomerge.cli import main
from evomerge.testing.random_models import save_edited_copy


def _write(tmp: Path, data, name="recipe.yaml") -> Path:
    p = tmp / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


def _ties(m, **overrides) -> dict:
    cfg = {"merge_method": "ties", "base_model": str(m["base"]),
           "models": [{"model": str(m["a"]), "parameters": {"weight": 1.0, "density": 0.5}},
                      {"model": str(m["b"]), "parameters": {"weight": 1.0, "density": 0.5}}]}
    cfg.update(overrides)
    return cfg


def _run_bad(tmp_path, capsys, recipe, *extra) -> str:
    out = tmp_path / "out"
    code = main(["merge", str(recipe), str(out), "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert not out.exists() or not any(out.iterdir()), "a failed merge left output behind"
    assert not list(tmp_path.glob(".out*")), "a failed merge left a temporary folder"
    return err


def test_merged_model_loads_and_generates(tiny_models, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = _write(tmp_path, _ties(tiny_models))
    out = tmp_path / "merged"
    assert main(["merge", str(recipe), str(out), "--quiet", "--out-shard-size", "20KB"]) == 0
    assert (out / "model.safetensors.index.json").is_file()  # sharded at 20 KB
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("12+3=", return_tensors="pt").input_ids
    gen = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert gen.shape == (1, ids.shape[1] + 5)
    # and the loaded weights are the merged ones, not the base's
    base = load_file(tiny_models["base"] / "model.safetensors")
    name = "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(model.state_dict()[name], base[name])


def test_dtype_option_sets_output_dtype(tiny_models, tmp_path):
    recipe = _write(tmp_path, _ties(tiny_models))
    assert main(["merge", str(recipe), str(tmp_path / "bf"), "--quiet", "--dtype", "bfloat16"]) == 0
    tensors = load_file(tmp_path / "bf" / "model.safetensors")
    assert {t.dtype for t in tensors.values()} == {torch.bfloat16}
    assert json.loads((tmp_path / "bf" / "config.json").read_text())["dtype"] == "bfloat16"


def test_existing_model_needs_overwrite(tiny_models, tmp_path, capsys):
    recipe = _write(tmp_path, _ties(tiny_models))
    out = tmp_path / "out"
    assert main(["merge", str(recipe), str(out), "--quiet"]) == 0
    assert main(["merge", str(recipe), str(out), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["merge", str(recipe), str(out), "--quiet", "--overwrite"]) == 0


def test_missing_model_folder(tiny_models, tmp_path, capsys):
    cfg = _ties(tiny_models)
    cfg["models"][1]["model"] = str(tmp_path / "nowhere")
    err = _run_bad(tmp_path, capsys, _write(tmp_path, cfg))
    assert "nowhere" in err and "does not exist" in err


def test_tensor_missing_from_one_source(tiny_models, tmp_path, capsys):
    bad = save_edited_copy(tiny_models["b"], tmp_path / "b_missing",
                       lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    cfg = _ties(tiny_models)
    cfg["models"][1]["model"] = str(bad)
    err = _run_bad(tmp_path, capsys, _write(tmp_path, cfg))
    assert "model.layers.1.mlp.up_proj.weight" in err


def test_shape_mismatch(tiny_models, tmp_path, capsys):
    def shrink(t):
        t["model.layers.0.mlp.up_proj.weight"] = t["model.layers.0.mlp.up_proj.weight"][:5]
    bad = save_edited_copy(tiny_models["b"], tmp_path / "b_shape", shrink)
    cfg = _ties(tiny_models)
    cfg["models"][1]["model"] = str(bad)
    err = _run_bad(tmp_path, capsys, _write(tmp_path, cfg))
    assert "model.layers.0.mlp.up_proj.weight" in err and "shape" in err


def test_unknown_method_suggests(tiny_models, tmp_path, capsys):
    err = _run_bad(tmp_path, capsys, _write(tmp_path, _ties(tiny_models, merge_method="tie")))
    assert "merge_method" in err and "'tie'" in err and "did you mean 'ties'" in err
    assert "recipe.yaml" in err


def test_misspelled_field(tiny_models, tmp_path, capsys):
    cfg = _ties(tiny_models)
    cfg["base_modle"] = cfg.pop("base_model")
    err = _run_bad(tmp_path, capsys, _write(tmp_path, cfg))
    assert "base_modle" in err and "did you mean 'base_model'" in err


def test_unknown_parameter(tiny_models, tmp_path, capsys):
    cfg = _ties(tiny_models)
    cfg["models"][0]["parameters"]["densty"] = 0.3
    err = _run_bad(tmp_path, capsys, _write(tmp_path, cfg))
    assert "models[0].parameters.densty" in err and "did you mean 'density'" in err


def test_density_out_of_range(tiny_models, tmp_path, capsys):
    cfg = _ties(tiny_models)
    cfg["models"][1]["parameters"]["density"] = 1.5
    err = _run_bad(tmp_path, capsys, _write(tmp_path, cfg))
    assert "models[1].parameters.density" in err and "1.5" in err and "[0" in err


def test_empty_model_list(tiny_models, tmp_path, capsys):
    err = _run_bad(tmp_path, capsys, _write(tmp_path, _ties(tiny_models, models=[])))
    assert "empty" in err


def test_method_needs_base(tiny_models, tmp_path, capsys):
    cfg = _ties(tiny_models)
    del cfg["base_model"]
    err = _run_bad(tmp_path, capsys, _write(tmp_path, cfg))
    assert "base_model" in err and "needs a base model" in err


def test_not_safetensors(tiny_models, tmp_path, capsys):
    bad = tmp_path / "garbage"
    shutil.copytree(tiny_models["b"], bad)
    (bad / "model.safetensors").write_bytes(b"this is not a safetensors file at all")
    cfg = _ties(tiny_models)
    cfg["models"][1]["model"] = str(bad)
    err = _run_bad(tmp_path, capsys, _write(tmp_path, cfg))
    assert "model.safetensors" in err


def test_pickle_checkpoint_refused_without_flag(tiny_models, tmp_path, capsys):
    pkl = tmp_path / "pickled"
    shutil.copytree(tiny_models["b"], pkl)
    torch.save(load_file(pkl / "model.safetensors"), pkl / "pytorch_model.bin")
    (pkl / "model.safetensors").unlink()
    cfg = _ties(tiny_models)
    cfg["models"][1]["model"] = str(pkl)
    recipe = _write(tmp_path, cfg)
    err = _run_bad(tmp_path, capsys, recipe)
    assert "--allow-pickle" in err or "allow_pickle" in err
    assert main(["merge", str(recipe), str(tmp_path / "ok"), "--quiet", "--allow-pickle"]) == 0


def test_malformed_yaml(tmp_path, capsys):
    err = _run_bad(tmp_path, capsys, _write(tmp_path, "merge_method: ties\nmodels: [a, \n"))
    assert "recipe.yaml" in err and "malformed YAML" in err and "line" in err


def test_missing_recipe_file(tmp_path, capsys):
    err = _run_bad(tmp_path, capsys, tmp_path / "nope.yaml")
    assert "nope.yaml" in err and "does not exist" in err


def test_native_and_mergekit_formats_build_the_same(tiny_models, tmp_path):
    cfg = _ties(tiny_models)
    mk = _write(tmp_path, cfg, "mk.yaml")
    assert main(["merge", str(mk), str(tmp_path / "m1"), "--quiet"]) == 0
    native = _write(tmp_path, {"format": "evomerge/recipe-v1", **cfg}, "native.yaml")
    assert main(["merge", str(native), str(tmp_path / "m2"), "--quiet"]) == 0
    a = load_file(tmp_path / "m1" / "model.safetensors")
    b = load_file(tmp_path / "m2" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
