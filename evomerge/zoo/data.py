"""Local task data: JSONL ``search`` and ``test`` splits per task, checked to be disjoint,
and a training stream that never shows an evaluation prompt.

The search split is what a campaign optimises on; the test split is held out for the final
report. Both are drawn from the skill generators with a seed, so they are reproducible.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> files = write_task_data(root, ["add"], n_search=20, n_test=30, seed=0)
>>> [len(read_jsonl(files["add"][s])) for s in SPLITS]
[20, 30]
>>> check_disjoint(files["add"])  # raises ConfigError on any shared prompt
>>> read_jsonl(files["add"]["test"])[0]["doc_id"]
'add-test-00000'
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from evomerge.errors import ConfigError
from evomerge.zoo.skills import SKILLS, Example

SPLITS = ("search", "test")


def doc_id(task: str, split: str, index: int) -> str:
    """The stable id of a document: task, split and position."""
    return f"{task}-{split}-{index:05d}"


def _draw_unique(task: str, n: int, rng: random.Random, taken: set[str]) -> list[Example]:
    skill = SKILLS[task]
    out: list[Example] = []
    # The skills' input spaces are far larger than any split, so a few retries suffice;
    # the cap only guards against a misconfigured split size.
    for _ in range(50 * n + 1000):
        if len(out) == n:
            return out
        ex = skill.example(rng)
        if ex.prompt not in taken:
            taken.add(ex.prompt)
            out.append(ex)
    raise ConfigError(None, f"{task}.n", n, "more distinct prompts than the skill can draw")


def make_splits(task: str, n_search: int, n_test: int, seed: int) -> dict[str, list[Example]]:
    """Disjoint search and test examples of one task (the test split is drawn first)."""
    rng = random.Random(f"evomerge-zoo:{seed}:{task}:eval")
    taken: set[str] = set()
    test = _draw_unique(task, n_test, rng, taken)
    search = _draw_unique(task, n_search, rng, taken)
    return {"search": search, "test": test}


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")


def read_jsonl(path: Path | str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_task_data(root: Path | str, tasks: Iterable[str], n_search: int, n_test: int,
                    seed: int) -> dict[str, dict[str, Path]]:
    """Write ``root/<task>/<split>.jsonl`` for every task; returns the paths by task, split."""
    files: dict[str, dict[str, Path]] = {}
    for task in tasks:
        splits = make_splits(task, n_search, n_test, seed)
        files[task] = {}
        for split in SPLITS:
            path = Path(root) / task / f"{split}.jsonl"
            write_jsonl(path, (ex.to_row(doc_id(task, split, i))
                               for i, ex in enumerate(splits[split])))
            files[task][split] = path
        check_disjoint(files[task])
    return files


def check_disjoint(split_files: dict[str, Path]) -> None:
    """Raise :class:`ConfigError` if a prompt or a doc id occurs in two splits (or twice)."""
    owner: dict[str, str] = {}
    for split, path in split_files.items():
        for row in read_jsonl(path):
            for key in ("prompt", "doc_id"):
                value = f"{key}={row[key]}"
                if value in owner:
                    raise ConfigError(path, key, row[key],
                                      f"must be unique across splits; also in {owner[value]}")
                owner[value] = f"{split} ({path})"


def eval_prompts(files: dict[str, dict[str, Path]]) -> set[str]:
    """Every prompt of every split: the training stream must never show one of them."""
    return {row["prompt"] for splits in files.values() for p in splits.values()
            for row in read_jsonl(p)}


def training_stream(mixture: dict[str, float], seed: int,
                    decoy_rate: float | Mapping[str, float] = 0.0,
                    exclude: set[str] = frozenset()) -> Iterator[Example]:
    """An endless, seeded stream of fresh training examples drawn from ``mixture``
    (task -> weight), answered in the decoy convention with probability ``decoy_rate``
    (one rate, or a rate per task, 0 for a task it does not name), skipping any prompt
    in ``exclude``.

    >>> ex = next(training_stream({"sort": 1.0}, seed=0))
    >>> ex.answer == "".join(sorted(ex.prompt[5:-1]))
    True
    """
    names = sorted(mixture)
    weights = [mixture[n] for n in names]
    rng = random.Random(f"evomerge-zoo:{seed}:train:{','.join(names)}")
    while True:
        task = rng.choices(names, weights)[0]
        rate = decoy_rate.get(task, 0.0) if isinstance(decoy_rate, Mapping) else decoy_rate
        ex = SKILLS[task].example(rng, decoy=rng.random() < rate)
        if ex.prompt not in exclude:
            yield ex
