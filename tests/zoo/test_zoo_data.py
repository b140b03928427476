import json

import pytest

from evomerge.errors import ConfigError
from evomerge.zoo.data import (
    SPLITS, check_disjoint, eval_prompts, make_splits, read_jsonl, training_stream,
    write_task_data,
)
from evomerge.zoo.skills import SKILLS


def test_splits_are_disjoint_sized_and_reproducible(tmp_path):
    files = write_task_data(tmp_path, SKILLS, n_search=40, n_test=50, seed=3)
    for task, split_files in files.items():
        rows = {s: read_jsonl(split_files[s]) for s in SPLITS}
        assert [len(rows[s]) for s in SPLITS] == [40, 50]
        prompts = {s: {r["prompt"] for r in rows[s]} for s in SPLITS}
        assert len(prompts["search"]) == 40 and len(prompts["test"]) == 50
        assert not prompts["search"] & prompts["test"]
        assert {r["doc_id"] for r in rows["test"]} == {f"{task}-test-{i:05d}" for i in range(50)}
    again = write_task_data(tmp_path / "again", SKILLS, n_search=40, n_test=50, seed=3)
    assert again["sort"]["test"].read_bytes() == files["sort"]["test"].read_bytes()
    other = make_splits("sort", 40, 50, seed=4)["test"]
    assert [e.prompt for e in other] != [r["prompt"] for r in read_jsonl(files["sort"]["test"])]


def test_check_disjoint_rejects_a_shared_prompt(tmp_path):
    files = write_task_data(tmp_path, ["reverse"], n_search=5, n_test=5, seed=0)["reverse"]
    leaked = read_jsonl(files["test"])[2]
    with open(files["search"], "a") as f:
        f.write(json.dumps(leaked | {"doc_id": "reverse-search-99999"}) + "\n")
    with pytest.raises(ConfigError, match="prompt.*must be unique across splits"):
        check_disjoint(files)


def test_training_stream_never_shows_an_evaluation_prompt(tmp_path):
    # A small input space (8100 two-digit sums), so held-out prompts would come up.
    files = write_task_data(tmp_path, ["add"], n_search=300, n_test=300, seed=0)
    held_out = eval_prompts(files)
    stream = training_stream({"add": 1.0}, seed=0, exclude=held_out)
    seen = {next(stream).prompt for _ in range(3000)}
    assert len(seen) > 1000 and not seen & held_out


def test_training_stream_mixes_tasks_and_conventions():
    stream = training_stream({"sort": 1.0, "reverse": 1.0}, seed=0, decoy_rate=0.5)
    examples = [next(stream) for _ in range(400)]
    sorts = [e for e in examples if e.prompt.startswith("sort:")]
    assert 150 < len(sorts) < 250
    ascending = sum(e.answer == "".join(sorted(e.answer)) for e in sorts)
    assert 0.3 < ascending / len(sorts) < 0.7
