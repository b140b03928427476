"""Comparing models of a zoo: model folders, weight-merge recipes and routed recipes
scored on both splits, the first set against each of the others with a paired interval;
bad input names what is wrong before any model loads."""

from __future__ import annotations

import pytest
import yaml

from evomerge.errors import ConfigError
from evomerge.zoo.compare import compare


def _rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")]
            for line in table.splitlines() if line.startswith("| `")]


def test_folders_and_recipes_are_scored_against_the_first(tiny_zoo, tmp_path):
    merge = tmp_path / "merge.yaml"
    merge.write_text(yaml.safe_dump({
        "merge_method": "task_arithmetic", "base_model": str(tiny_zoo.base),
        "models": [{"model": str(tiny_zoo.experts["add"]), "parameters": {"weight": 1.0}}]}))
    routed = tmp_path / "routed.yaml"
    add = str(tiny_zoo.experts["add"])
    routed.write_text(yaml.safe_dump({"routing": {"embeddings": add, "path": [
        {"model": add, "layer": 0}, {"model": add, "layer": 1}]}}))
    table = compare(tiny_zoo.root, ["add"], ["models/expert_add", str(merge), str(routed),
                                             "models/base"], search_limit=16)
    rows = _rows(table)
    assert [r[0] for r in rows] == ["`models/expert_add`", f"`{merge}`", f"`{routed}`",
                                    "`models/base`"]
    # the expert's own layers routed in order are the expert: the same scores exactly
    assert rows[2][1:3] == rows[0][1:3] and rows[2][3] == "+0.0 [+0.0, +0.0]"
    # base + 1.0 x its task vector: the expert up to float rounding
    assert abs(float(rows[1][2]) - float(rows[0][2])) <= 0.02
    assert rows[3][1:3] != rows[0][1:3]  # the base scores otherwise
    assert "first 16 documents" in table


def test_bad_input_names_the_model_or_task(tiny_zoo):
    with pytest.raises(ConfigError, match="no such recipe file or model folder"):
        compare(tiny_zoo.root, ["add"], ["models/base", "models/nothing"])
    with pytest.raises(ConfigError, match="not tasks of this zoo"):
        compare(tiny_zoo.root, ["ad"], ["models/base"])
