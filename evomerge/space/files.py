"""Any space: a parameter space (:mod:`evomerge.space.model`) or a data-flow space
(:mod:`evomerge.space.dataflow`, a mapping with a ``dataflow`` section), from a file or
from a mapping (a campaign's inline space).

>>> space = space_from_dict({"dataflow": {"models": ["a", "b"], "repeats": 2}})
>>> type(space).__name__, space.dataflow.scales.per
('DataflowSpace', 'pair')
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from evomerge.config_io import read_yaml
from evomerge.space.dataflow import DataflowSpace, is_dataflow, load_dataflow_space
from evomerge.space.model import Space
from evomerge.space.model import load_space as load_parameter_space


def load_space(path: Path | str) -> Space | DataflowSpace:
    """Read a space YAML file (``safe_load``); errors name file, field, value and rule."""
    data = read_yaml(path)
    if is_dataflow(data):
        return load_dataflow_space(data, path)
    return load_parameter_space(path)


def space_from_dict(data: dict[str, Any], file: Path | str | None = None
                    ) -> Space | DataflowSpace:
    """Validate a space mapping of either kind; ``file`` is where it was read (a
    data-flow space's ``merge`` file is relative to it)."""
    if is_dataflow(data):
        return load_dataflow_space(data, file)
    return Space.from_dict(data, file)


def self_contained(data: dict[str, Any], file: Path | str | None = None) -> dict[str, Any]:
    """The mapping with any file it names read in (a data-flow space's ``merge``), so a
    copy of it (a campaign folder's) means the same wherever it is kept."""
    if not is_dataflow(data) or not isinstance(data["dataflow"].get("merge"), str):
        return data
    out = copy.deepcopy(data)
    here = Path(file).parent if file is not None else Path(".")
    out["dataflow"]["merge"] = read_yaml(here / data["dataflow"]["merge"])
    return out
