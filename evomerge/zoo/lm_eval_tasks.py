"""lm-eval task YAMLs for the zoo's local JSONL splits, loadable offline.

For every task and split there are two variants:

- ``zoo_<task>_mc_<split>``: loglikelihood multiple choice over the four ``choices``
  (metric ``acc``, partial credit);
- ``zoo_<task>_gen_<split>``: greedy generation until the newline, scored by
  ``exact_match`` against ``answer``.

Groups ``zoo_mc_<split>`` and ``zoo_gen_<split>`` average the expert skills (not the
cross-skill targets, which are reported on their own). The YAMLs use only field names and
jinja, with ``dataset_path: json`` and absolute ``data_files`` (lm-eval resolves paths from
the working directory, not from the YAML), so they are rewritten whenever a zoo is built.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> paths = write_task_yamls(root / "tasks", {"add": {"search": root / "s.jsonl",
...                                                    "test": root / "t.jsonl"}})
>>> sorted(p.name for p in paths)[:2]
['zoo_add_gen_search.yaml', 'zoo_add_gen_test.yaml']
>>> task_name("add", "mc", "test")
'zoo_add_mc_test'
"""

from __future__ import annotations

from pathlib import Path

import yaml

from evomerge.zoo.data import SPLITS
from evomerge.zoo.skills import SKILLS
from evomerge.zoo.train import ANSWER_END

VARIANTS = {"mc": "acc", "gen": "exact_match"}
MAX_GEN_TOKS = 16


def task_name(task: str, variant: str, split: str) -> str:
    return f"zoo_{task}_{variant}_{split}"


def group_name(variant: str, split: str) -> str:
    return f"zoo_{variant}_{split}"


def _metric(name: str) -> list[dict]:
    return [{"metric": name, "aggregation": "mean", "higher_is_better": True}]


def task_config(task: str, variant: str, split: str, files: dict[str, Path]) -> dict:
    """The lm-eval config of one task variant on one split (a plain dict)."""
    config = {
        "task": task_name(task, variant, split),
        "tag": [f"zoo_{variant}"],
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {s: str(Path(files[s]).resolve()) for s in SPLITS}},
        "test_split": split,
        "doc_to_text": "{{prompt}}",
        # The answer follows the "=" of the prompt directly: no delimiter.
        "target_delimiter": "",
        "num_fewshot": 0,
    }
    if variant == "mc":
        config |= {"output_type": "multiple_choice", "doc_to_choice": "choices",
                   "doc_to_target": "label"}
    else:
        config |= {"output_type": "generate_until", "doc_to_target": "answer",
                   "generation_kwargs": {"until": [ANSWER_END], "do_sample": False,
                                         "max_gen_toks": MAX_GEN_TOKS}}
    config |= {"metric_list": _metric(VARIANTS[variant]), "metadata": {"version": 1.0}}
    return config


def group_config(variant: str, split: str, tasks: list[str]) -> dict:
    return {
        "group": group_name(variant, split),
        "task": [task_name(t, variant, split) for t in tasks],
        "aggregate_metric_list": [{"metric": VARIANTS[variant], "aggregation": "mean",
                                   "weight_by_size": False}],
        "metadata": {"version": 1.0},
    }


def _dump(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
                    encoding="utf-8")
    return path


def write_task_yamls(task_dir: Path | str, files: dict[str, dict[str, Path]]) -> list[Path]:
    """Write every task variant, and a group per variant and split over the expert skills
    among ``files`` (task -> split -> JSONL path). Returns the written paths."""
    task_dir = Path(task_dir)
    task_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for task, split_files in sorted(files.items()):
        for variant in VARIANTS:
            for split in SPLITS:
                written.append(_dump(task_dir / f"{task_name(task, variant, split)}.yaml",
                                     task_config(task, variant, split, split_files)))
    skills = [t for t in files if t in SKILLS and not SKILLS[t].is_target]
    if skills:
        for variant in VARIANTS:
            for split in SPLITS:
                written.append(_dump(task_dir / f"{group_name(variant, split)}.yaml",
                                     group_config(variant, split, skills)))
    return written
