import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from zoo_support import assert_same_build

from evomerge.errors import ConfigError
from evomerge.zoo.build import build_spec, build_zoo, cached_zoo, load_zoo, spec_hash
from evomerge.zoo.data import SPLITS, check_disjoint, read_jsonl
from evomerge.zoo.presets import get_preset
from evomerge.zoo.scoring import score_rows
from evomerge.zoo.skills import expert_skills


def test_tiny_zoo_has_base_experts_data_and_tasks(tiny_zoo):
    assert set(tiny_zoo.experts) == set(expert_skills())
    for path in tiny_zoo.models.values():
        assert (path / "model.safetensors").is_file()
        assert AutoTokenizer.from_pretrained(path)("add:1+2=").input_ids
    model = AutoModelForCausalLM.from_pretrained(tiny_zoo.base)
    assert model.config.model_type == "llama"
    for task in tiny_zoo.manifest["data"]:
        check_disjoint({s: tiny_zoo.split_file(task, s) for s in SPLITS})
        assert (tiny_zoo.task_dir / f"zoo_{task}_mc_test.yaml").is_file()


def test_each_expert_beats_the_base_on_its_own_skill(tiny_zoo):
    tok = AutoTokenizer.from_pretrained(tiny_zoo.base)
    base = AutoModelForCausalLM.from_pretrained(tiny_zoo.base)
    for skill, path in tiny_zoo.experts.items():
        rows = read_jsonl(tiny_zoo.split_file(skill, "search"))
        expert = AutoModelForCausalLM.from_pretrained(path)
        ours = score_rows(expert, tok, rows).metrics["acc"]
        theirs = score_rows(base, tok, rows).metrics["acc"]
        assert ours >= theirs + 0.1, (skill, ours, theirs)


@pytest.mark.slow
def test_same_seed_rebuilds_bit_identical_files(tmp_path, tiny_zoo):
    folder = tmp_path / "zoo"
    shutil.copytree(tiny_zoo.root, folder)
    assert_same_build(tiny_zoo, build_zoo(folder, preset="tiny", seed=0, force=True))


def test_second_build_reuses_the_cache(tiny_zoo):
    marker = tiny_zoo.root / "models" / "base" / "model.safetensors"
    mtime = marker.stat().st_mtime_ns
    again = build_zoo(tiny_zoo.root, preset="tiny", seed=0)
    assert again.manifest["spec_hash"] == tiny_zoo.manifest["spec_hash"]
    assert marker.stat().st_mtime_ns == mtime  # nothing was retrained or rewritten


def test_the_cache_key_covers_preset_and_seed(tiny_zoo):
    digest = tiny_zoo.manifest["spec_hash"]
    assert digest == spec_hash(build_spec(get_preset("tiny"), 0))
    others = {spec_hash(build_spec(get_preset("tiny"), 1)),
              spec_hash(build_spec(get_preset("default"), 0))}
    assert digest not in others and len(others) == 2
    # other CPU kernels round differently and train other models: they are another spec
    assert build_spec(get_preset("tiny"), 0)["cpu"] == torch.backends.cpu.get_cpu_capability()
    assert cached_zoo(tiny_zoo.root, digest) is not None
    assert all(cached_zoo(tiny_zoo.root, d) is None for d in others)


def test_refuses_to_overwrite_a_folder_that_is_not_a_zoo(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a zoo"):
        build_zoo(tmp_path, preset="tiny")
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    with pytest.raises(ConfigError, match="zoo.json is missing"):
        load_zoo(tmp_path)
