"""Resolve the lm-eval section of a config against lm-eval's task index, statically.

Nothing here loads a dataset or a model: names are looked up in the index
(``TaskManager.task_index``), metrics in each task's ``metric_list``, data files on disk.
The result fixes, per configured task, the metric and filter that score it and the
direction of that metric, so an evaluator knows its objectives before it runs.

Indexing lm-eval's built-in tasks takes seconds, so a config whose tasks all live in
its own folders is resolved against those folders alone, and managers are cached per
process.

Example (a folder holding one task YAML)::

    resolved = resolve_lm_eval_config(LmEvalConfig(include_paths=["my_tasks"],
                                      search_tasks=[TaskConfig(name="my_task")]))
    resolved.search[0].metric     # "acc": the task's first metric
"""

from __future__ import annotations

import difflib
import functools
import glob
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evomerge.errors import ConfigError
from evomerge.evaluate.config import LmEvalConfig, TaskConfig
from evomerge.evaluate.lm_eval_private import index_entry
from evomerge.records import Direction

if TYPE_CHECKING:
    from lm_eval.tasks import TaskManager


@dataclass(frozen=True)
class ResolvedTask:
    """A configured task after resolution: its leaf tasks, metric, filter and direction."""

    config: TaskConfig
    leaves: tuple[str, ...]
    metric: str
    filter: str
    direction: Direction

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True)
class ResolvedLmEval:
    search: tuple[ResolvedTask, ...]
    report: tuple[ResolvedTask, ...]


@functools.lru_cache(maxsize=4)
def _cached_manager(include_paths: tuple[str, ...], include_defaults: bool) -> TaskManager:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(include_paths) or None,
                       include_defaults=include_defaults)


def task_manager_for(include_paths: list[str] | tuple[str, ...], names: list[str]) -> TaskManager:
    """A TaskManager that knows ``names``: the task folders alone when they suffice.

    Folders given later override built-in tasks of the same name, as in lm-eval, so the
    folders-only index resolves those names exactly as the full index would.
    """
    paths = tuple(str(Path(p).resolve()) for p in include_paths)
    if paths:
        local = _cached_manager(paths, False)
        if all(n in local.task_index for n in names):
            return local
    return _cached_manager(paths, True)


def _leaf_configs(manager: TaskManager, name: str) -> list[tuple[str, dict[str, Any] | None]]:
    """(leaf task name, its raw config) for a task, group or tag; None for Python tasks."""
    entry = index_entry(manager, name)
    if entry.kind == "task":
        return [(name, entry.cfg)]
    if entry.kind == "python_task":
        return [(name, None)]
    if entry.kind == "tag":
        return [leaf for member in sorted(entry.tags) for leaf in _leaf_configs(manager, member)]
    return _group_members(manager, (entry.cfg or {}).get("task", []))


def _group_members(manager: TaskManager, members: Any) -> list[tuple[str, dict[str, Any] | None]]:
    out: list[tuple[str, dict[str, Any] | None]] = []
    for member in members if isinstance(members, list) else [members]:
        if isinstance(member, str):
            out += _leaf_configs(manager, member)
        elif isinstance(member, dict) and "group" in member:
            out += _group_members(manager, member.get("task", []))
        elif isinstance(member, dict) and isinstance(member.get("task"), str):
            name = member["task"]
            if name in manager.task_index:
                out += _leaf_configs(manager, name)
            else:  # an inline task defined inside the group
                out.append((name, member))
    return out


def _declared_metrics(cfg: dict[str, Any]) -> dict[str, bool | None]:
    """Metric name -> higher_is_better (None: not declared) as the task config states them."""
    from lm_eval.api.registry import DEFAULT_METRIC_REGISTRY

    if cfg.get("metric_list"):
        return {str(m.get("metric")): m.get("higher_is_better") for m in cfg["metric_list"]}
    return {m: None for m in DEFAULT_METRIC_REGISTRY.get(cfg.get("output_type"), [])}


def _filter_names(cfg: dict[str, Any]) -> list[str]:
    return [f["name"] for f in cfg.get("filter_list") or []] or ["none"]


def _data_files(cfg: dict[str, Any], split: str | None = None) -> list[str]:
    """The local data files a task reads (those of ``split`` only, when given)."""
    files = (cfg.get("dataset_kwargs") or {}).get("data_files")
    if isinstance(files, dict):
        chosen = [files[split]] if split is not None and split in files else list(files.values())
    elif files is None:
        chosen = []
    else:
        chosen = [files]
    flat = [f for item in chosen for f in (item if isinstance(item, list) else [item])]
    return [str(f) for f in flat if "://" not in str(f)]


def _eval_split(cfg: dict[str, Any]) -> str | None:
    # lm-eval scores the test split when there is one, else the validation split.
    return cfg.get("test_split") or cfg.get("validation_split")


def data_identity(leaf: str, cfg: dict[str, Any] | None) -> tuple[str, ...]:
    """What identifies the data a leaf task scores on: its files, or dataset + split.

    >>> data_identity("t", {"dataset_path": "org/ds", "test_split": "test"})
    ('dataset', 'org/ds', '', 'test')
    """
    if cfg is None:
        return ("task", leaf)
    split = _eval_split(cfg)
    files = _data_files(cfg, split)
    if files:
        return ("files", *sorted(str(Path(f).resolve()) for f in files))
    return ("dataset", str(cfg.get("dataset_path")), str(cfg.get("dataset_name") or ""), str(split))


def _check_files_exist(leaf: str, cfg: dict[str, Any], source: Any, field: str) -> None:
    for pattern in _data_files(cfg):
        if not (glob.glob(pattern) if glob.has_magic(pattern) else Path(pattern).exists()):
            raise ConfigError(
                source, field, leaf,
                f"the task's data file {pattern!r} does not exist "
                f"(relative paths are read from {Path.cwd()})",
            )


def _unknown_task(manager: TaskManager, name: str, source: Any, field: str) -> ConfigError:
    close = difflib.get_close_matches(name, manager.all_tasks, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return ConfigError(
        source, field, name,
        f"not an lm-eval task, group or tag{hint} (add its folder to include_paths "
        "if it is a local task)",
    )


def _higher_is_better(metric: str, declared: bool | None) -> bool | None:
    """The task config's word on the metric's direction, else lm-eval's registry's."""
    if declared is not None:
        return bool(declared)
    from lm_eval.api.registry import is_higher_better

    return is_higher_better(metric)


def resolve_task(
    manager: TaskManager, task: TaskConfig, source: Any, field: str
) -> ResolvedTask:
    """Look one configured task up and fix its metric, filter and direction."""
    if task.name not in manager.task_index:
        raise _unknown_task(manager, task.name, source, f"{field}.name")
    leaves = _leaf_configs(manager, task.name)
    if not leaves:
        raise ConfigError(source, f"{field}.name", task.name, "the group holds no tasks")
    metric, filter_name, higher = task.metric, task.filter, None
    for leaf, cfg in leaves:
        if cfg is None:  # a Python task: its metrics are only known once built
            if metric is None:
                raise ConfigError(source, f"{field}.metric", None,
                                  f"name the metric: task {leaf!r} defines its metrics in Python")
            continue
        _check_files_exist(leaf, cfg, source, f"{field}.name")
        declared = _declared_metrics(cfg)
        metric = metric or next(iter(declared), None)
        if metric not in declared:
            raise ConfigError(source, f"{field}.metric", metric,
                              f"task {leaf!r} produces metrics {sorted(declared)}")
        filters = _filter_names(cfg)
        filter_name = filter_name or filters[0]
        if filter_name not in filters:
            raise ConfigError(source, f"{field}.filter", filter_name,
                              f"task {leaf!r} has filters {filters}")
        leaf_higher = _higher_is_better(metric, declared[metric])
        if higher is not None and leaf_higher is not None and leaf_higher != higher:
            raise ConfigError(source, f"{field}.metric", metric,
                              f"the tasks in {task.name!r} disagree on its direction")
        higher = leaf_higher if leaf_higher is not None else higher
    if metric is None:
        raise ConfigError(source, f"{field}.metric", None, f"task {task.name!r} declares no metric")
    if higher is None:  # only Python tasks: ask lm-eval's metric registry
        higher = _higher_is_better(metric, None)
    if higher is None:
        raise ConfigError(source, f"{field}.metric", metric,
                          "lm-eval does not say whether higher is better for this metric")
    return ResolvedTask(task, tuple(leaf for leaf, _ in leaves), metric,
                        filter_name or "none", "maximize" if higher else "minimize")


def _resolve_list(manager: TaskManager, tasks: list[TaskConfig], source: Any,
                  field: str) -> tuple[ResolvedTask, ...]:
    resolved = tuple(resolve_task(manager, t, source, f"{field}[{i}]") for i, t in enumerate(tasks))
    owner: dict[str, str] = {}
    for i, r in enumerate(resolved):
        for leaf in r.leaves:
            if leaf in owner:
                raise ConfigError(source, f"{field}[{i}].name", r.name,
                                  f"task {leaf!r} is already scored through {owner[leaf]!r}")
            owner[leaf] = r.name
    return resolved


def check_disjoint(manager: TaskManager, search: tuple[ResolvedTask, ...],
                   report: tuple[ResolvedTask, ...], source: Any, field: str) -> None:
    """Refuse a report task that scores the same data split as a search task."""
    seen: dict[tuple[str, ...], str] = {}
    for r in search:
        for leaf, cfg in _leaf_configs(manager, r.name):
            seen.setdefault(data_identity(leaf, cfg), leaf)
    for j, r in enumerate(report):
        for leaf, cfg in _leaf_configs(manager, r.name):
            key = data_identity(leaf, cfg)
            if key in seen:
                raise ConfigError(
                    source, f"{field}.report_tasks[{j}].name", r.name,
                    f"task {leaf!r} scores the same data as search task {seen[key]!r} "
                    f"({' '.join(key)}); searching on the data you report would overstate "
                    "the result: give the search and the report different splits",
                )


def resolve_lm_eval_config(config: LmEvalConfig, source: Any = "<config>",
                           field: str = "evaluation.lm_eval") -> ResolvedLmEval:
    """Check the whole lm-eval section; ConfigError on the first problem."""
    for i, folder in enumerate(config.include_paths):
        if not Path(folder).is_dir():
            raise ConfigError(source, f"{field}.include_paths[{i}]", folder,
                              f"task folder does not exist (relative to {Path.cwd()})")
    names = [t.name for t in [*config.search_tasks, *config.report_tasks]]
    manager = task_manager_for(config.include_paths, names)
    search = _resolve_list(manager, config.search_tasks, source, f"{field}.search_tasks")
    report = _resolve_list(manager, config.report_tasks, source, f"{field}.report_tasks")
    check_disjoint(manager, search, report, source, field)
    return ResolvedLmEval(search, report)
