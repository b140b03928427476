"""Helpers shared by the evaluation tests: task copies with absolute paths, tiny models."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

DATA = Path(__file__).parent / "data"
MC_TASK = "evomerge_tiny_mc"
GEN_TASK = "evomerge_tiny_gen"


def write_task(folder: Path, name: str, template: str, **changes) -> Path:
    """Copy a task YAML from ``data/`` into ``folder`` with absolute data paths and changes."""
    cfg = yaml.safe_load((DATA / f"{template}.yaml").read_text())
    files = cfg["dataset_kwargs"]["data_files"]
    cfg["dataset_kwargs"]["data_files"] = {
        split: str(DATA / Path(path).name) for split, path in files.items()
    }
    cfg.update(task=name, **changes)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def load(model_dir: Path):
    """(model, tokenizer) of a saved folder, in float32 and eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(model_dir)


def perturb(model: torch.nn.Module, seed: int, scale: float = 0.05) -> torch.nn.Module:
    """Add seeded noise in place: a stand-in for a merged candidate built in memory."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model
