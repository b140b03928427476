"""Any space file: a parameter space (:mod:`evomerge.space.model`) or a data-flow space
(:mod:`evomerge.space.dataflow`, a file with a ``dataflow`` section)."""

from __future__ import annotations

from pathlib import Path

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
