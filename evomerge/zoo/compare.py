"""Score models of a zoo against each other: each one's search and test split scores on
some of the zoo's tasks, and the difference of the first from each of the others on the
test split with a 95% confidence interval paired over documents.

``python -m evomerge.zoo.compare ZOO_DIR --tasks glyph_add FOUND.yaml models/expert_add``
prints a markdown table. A model is a recipe file (native or mergekit; a weight merge is
built in memory, a routed recipe routed over its models' folders) or a model folder
(relative paths are tried against the zoo's folder, then the working directory). This
is how a campaign's exported best recipe is set against the zoo's parents or against a
grid merge, on the zoo's own scorer (which agrees with lm-eval document by document).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from evomerge.errors import ConfigError
from evomerge.merge.recipe import load_recipe
from evomerge.merge.routed_model import model_from_folders
from evomerge.zoo.build import Zoo, load_zoo
from evomerge.zoo.proving import mean, paired_ci, per_doc_acc, prepare_splits
from evomerge.zoo.scoring import stop_token_ids
from evomerge.zoo.train import deterministic

SPLITS = ("search", "test")


def resolve(zoo: Zoo, item: str) -> Path:
    """``item`` as a path: absolute, under the zoo's folder, or under the working
    directory, in that order; a missing one names every place tried."""
    path = Path(item)
    tried = [path] if path.is_absolute() else [zoo.root / path, Path.cwd() / path]
    for candidate in tried:
        if candidate.exists():
            return candidate.resolve()
    raise ConfigError(None, "model", item, "no such recipe file or model folder (tried "
                      + ", ".join(map(str, tried)) + ")")


def load_model(path: Path) -> torch.nn.Module:
    """A model folder as it is, or the model a recipe file makes."""
    if path.is_dir():
        return AutoModelForCausalLM.from_pretrained(path)
    return model_from_folders(load_recipe(path))


def compare(zoo_dir: Path | str, tasks: Sequence[str], items: Sequence[str],
            search_limit: int | None = None) -> str:
    """The markdown table (see the module docstring); ``search_limit``: score the first
    N documents of each task's search split, as a campaign's ``limit`` does."""
    zoo = load_zoo(zoo_dir)
    unknown = [t for t in tasks if t not in zoo.manifest["data"]]
    if unknown:
        raise ConfigError(None, "tasks", unknown, "not tasks of this zoo (its tasks: "
                          + ", ".join(sorted(zoo.manifest["data"])) + ")")
    paths = [resolve(zoo, item) for item in items]  # every path checked before any load
    tok = AutoTokenizer.from_pretrained(zoo.base)
    stops = stop_token_ids(tok)
    prepared = prepare_splits(zoo, tok, tasks, {"search": search_limit, "test": None})
    scores = []
    with deterministic(seed=0):
        for path in paths:
            model = load_model(path)
            scores.append({split: per_doc_acc(model, prepared[split], stops)
                           for split in SPLITS})
    first = scores[0]["test"]
    lines = [f"`acc` averaged over {', '.join(tasks)} (search split: the first "
             f"{search_limit or 'all'} documents per task); test-split differences of "
             f"`{items[0]}` from each model, 95% CI paired over documents:", "",
             "| model | search split | test split | first - model, test (95% CI) |",
             "|---|---|---|---|"]
    for item, s in zip(items, scores):
        d, lo, hi = paired_ci(first, s["test"], tasks)
        lines.append(f"| `{item}` | {mean(s['search'], tasks):.3f} | "
                     f"{mean(s['test'], tasks):.3f} | {100 * d:+.1f} "
                     f"[{100 * lo:+.1f}, {100 * hi:+.1f}] |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m evomerge.zoo.compare",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("zoo", type=Path)
    p.add_argument("--tasks", required=True, help="comma-separated zoo tasks")
    p.add_argument("--search-limit", type=int, default=None,
                   help="score the first N search documents per task (default: all)")
    p.add_argument("models", nargs="+", help="recipe files or model folders; the first "
                                             "is compared with each of the others")
    a = p.parse_args(argv)
    try:
        print(compare(a.zoo, a.tasks.split(","), a.models, a.search_limit), end="")
    except ConfigError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
