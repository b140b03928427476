"""One line describing the machine and the package versions a benchmark table was made with."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version

import torch


def machine(device: str, packages: tuple[str, ...]) -> str:
    """CPU count and kind, the GPU when ``device`` is cuda, torch and its threads, then
    ``packages`` with their versions."""
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name() if device.startswith("cuda") else "no GPU used"
    versions = ", ".join(f"{p} {version(p)}" for p in packages)
    return (f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), {versions}, "
            f"Python {platform.python_version()}")
