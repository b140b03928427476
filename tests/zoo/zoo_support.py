"""Helpers shared by the zoo tests: file digests of a zoo folder, and lm-eval's scores of
a model on zoo tasks compared document by document with the zoo's own scorer."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from evomerge.zoo.build import Zoo
from evomerge.zoo.data import read_jsonl
from evomerge.zoo.scoring import score_rows


def file_hashes(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_same_build(a: Zoo, b: Zoo) -> None:
    """Two builds hold the same files, bit for bit (task YAMLs up to their own folder,
    which they name)."""
    before, after = file_hashes(a.root), file_hashes(b.root)
    assert set(before) == set(after)
    for name, digest in before.items():
        if name.startswith("tasks/"):
            text = (a.root / name).read_text().replace(str(a.root), "ROOT")
            assert text == (b.root / name).read_text().replace(str(b.root), "ROOT")
        else:
            assert after[name] == digest, name


def lm_eval_against_zoo_scoring(zoo: Zoo, model_dir: Path, tasks: list[str], split: str,
                                limit: int) -> dict[str, dict[str, float]]:
    """Score ``model_dir`` on each task's two lm-eval variants (``mc``: ``acc``, ``gen``:
    ``exact_match``) in one lm-eval run and assert that lm-eval and the zoo's scorer
    agree on every document and on the means. Returns the zoo's metrics per task."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    names = {t: (f"zoo_{t}_mc_{split}", f"zoo_{t}_gen_{split}") for t in tasks}
    out = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={model_dir},dtype=float32",
        tasks=[n for pair in names.values() for n in pair],
        task_manager=TaskManager(include_path=str(zoo.task_dir)), limit=limit,
        batch_size=8, device="cpu", log_samples=True,
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    metrics = {}
    for task, pair in names.items():
        ours = score_rows(model, tok, read_jsonl(zoo.split_file(task, split))[:limit])
        for name, metric in zip(pair, ("acc", "exact_match")):
            theirs = {s["doc"]["doc_id"]: s[metric] for s in out["samples"][name]}
            assert theirs == ours.per_doc[metric], name
            assert out["results"][name][f"{metric},none"] == pytest.approx(
                ours.metrics[metric])
        metrics[task] = ours.metrics
    return metrics
