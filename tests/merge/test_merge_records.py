"""What `evomerge merge` and `convert-recipe` promise in the README, end to end: LiNeS,
out_dtype, the records a merged folder keeps, and the converted recipe files."""

import re

import torch
import yaml
from safetensors.torch import load_file

from evomerge.checkpoint.architecture import tensor_info
from evomerge.cli import main
from evomerge.merge.recipe import load_recipe


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def _task_arithmetic(m, **extra):
    return {"format": "evomerge/recipe-v1", "merge_method": "task_arithmetic",
            "base_model": str(m["base"]),
            "models": [{"model": str(m["a"]), "parameters": {"weight": 0.6}},
                       {"model": str(m["b"]), "parameters": {"weight": 0.3}}], **extra}


def test_lines_scales_each_layer_task_vector_by_its_depth(tiny_models, tmp_path):
    recipe = _write(tmp_path / "lines.yaml",
                    _task_arithmetic(tiny_models, lines={"alpha": 0.2, "beta": 0.6}))
    assert main(["merge", str(recipe), str(tmp_path / "out"), "--quiet"]) == 0
    got = load_file(tmp_path / "out" / "model.safetensors")
    base, a, b = (load_file(tiny_models[k] / "model.safetensors") for k in ("base", "a", "b"))
    layers = 3
    for name, tensor in got.items():
        layer = tensor_info(name).layer
        scale = 0.2 if layer is None else 0.2 + 0.6 * layer / (layers - 1)
        want = base[name] + scale * (0.6 * (a[name] - base[name]) + 0.3 * (b[name] - base[name]))
        torch.testing.assert_close(tensor, want, atol=1e-6, rtol=1e-5, msg=name)


def test_out_dtype_writes_that_dtype_and_config(tiny_models, tmp_path):
    recipe = _write(tmp_path / "r.yaml", _task_arithmetic(tiny_models, out_dtype="bfloat16"))
    assert main(["merge", str(recipe), str(tmp_path / "out"), "--quiet"]) == 0
    got = load_file(tmp_path / "out" / "model.safetensors")
    assert {t.dtype for t in got.values()} == {torch.bfloat16}
    config = yaml.safe_load((tmp_path / "out" / "config.json").read_text())
    assert config["dtype"] == "bfloat16"
    # --dtype on the command line wins over the recipe's out_dtype
    assert main(["merge", str(recipe), str(tmp_path / "o2"), "--quiet",
                 "--dtype", "float16"]) == 0
    assert {t.dtype for t in load_file(tmp_path / "o2" / "model.safetensors").values()} \
        == {torch.float16}


def test_merged_folder_records_how_it_was_made(tiny_models, tmp_path):
    cfg = _task_arithmetic(tiny_models, seed=5)
    recipe = _write(tmp_path / "r.yaml", cfg)
    out = tmp_path / "out"
    assert main(["merge", str(recipe), str(out), "--quiet"]) == 0
    ran = load_recipe(out / "evomerge_recipe.yaml")
    assert ran == load_recipe(recipe)
    # the recorded recipe and the mergekit config rebuild the same tensors
    assert main(["merge", str(out / "evomerge_recipe.yaml"), str(tmp_path / "again"),
                 "--quiet"]) == 0
    assert main(["merge", str(out / "mergekit_config.yml"), str(tmp_path / "mk"),
                 "--quiet"]) == 0
    first = load_file(out / "model.safetensors")
    for other in ("again", "mk"):
        rebuilt = load_file(tmp_path / other / "model.safetensors")
        assert all(torch.equal(first[k], rebuilt[k]) for k in first)
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["base_model"] == [str(tiny_models[k]) for k in ("base", "a", "b")]
    assert "task_arithmetic" in card and ran.content_hash() in card
    assert re.search(r"- evomerge \d", card) and re.search(r"- torch \d", card)


def test_a_recipe_mergekit_cannot_express_gets_no_mergekit_config(tiny_models, tmp_path):
    recipe = _write(tmp_path / "r.yaml", _task_arithmetic(tiny_models, lines={"alpha": 0.5}))
    out = tmp_path / "out"
    assert main(["merge", str(recipe), str(out), "--quiet"]) == 0
    assert not (out / "mergekit_config.yml").exists()
    assert "mergekit cannot express this recipe: mergekit has no LiNeS" in \
        (out / "README.md").read_text()


def test_convert_recipe_prints_files_that_load_back_the_same(tiny_models, tmp_path, capsys):
    cfg = _task_arithmetic(tiny_models)
    native = _write(tmp_path / "native.yaml", cfg)
    assert main(["convert-recipe", str(native), "--to", "mergekit"]) == 0
    mk_text = capsys.readouterr().out
    mk = yaml.safe_load(mk_text)
    assert "format" not in mk and "seed" not in mk
    assert mk["merge_method"] == "task_arithmetic"
    assert mk["models"][1] == {"model": str(tiny_models["b"]), "parameters": {"weight": 0.3}}
    mk_file = tmp_path / "mk.yaml"
    mk_file.write_text(mk_text)
    assert main(["convert-recipe", str(mk_file), "--to", "native"]) == 0
    back = yaml.safe_load(capsys.readouterr().out)
    assert back["format"] == "evomerge/recipe-v1"
    assert load_recipe(native) == load_recipe(_write(tmp_path / "back.yaml", back))


def test_convert_recipe_refuses_what_mergekit_cannot_express(tiny_models, tmp_path, capsys):
    native = _write(tmp_path / "n.yaml", _task_arithmetic(tiny_models, lines={"beta": 0.5}))
    assert main(["convert-recipe", str(native), "--to", "mergekit"]) == 2
    err = capsys.readouterr().err
    assert "lines" in err and "mergekit has no LiNeS" in err
