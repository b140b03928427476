"""Score a fixed set of recipes on an executor: report tasks after a search, baselines.

>>> # scores = evaluate_all(executor, {"base": recipe_a, "grid-0.5": recipe_b}, "test")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evomerge.execute.base import Executor
from evomerge.records import Fitness


def evaluate_all(executor: Executor, recipes: dict[str, dict[str, Any]], split: str,
                 on_result: Callable[[str, Fitness], None] | None = None,
                 poll_s: float = 1.0) -> dict[str, Fitness]:
    """Every recipe scored on ``split``, keyed as given; ``on_result`` sees each result
    as it arrives (to record it at once, so that an interruption loses none)."""
    for key, recipe in recipes.items():
        executor.submit(key, recipe, split=split)
    out: dict[str, Fitness] = {}
    while executor.pending:
        for key, fitness in executor.results(timeout=poll_s):
            out[key] = fitness
            if on_result is not None:
                on_result(key, fitness)
    return out
