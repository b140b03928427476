"""Every use of lm-eval beyond its public API, in one module, each checked before use.

evomerge scores a live model with lm-eval's own code, and three steps of that need parts
of lm-eval that are not its public API:

* reading the task index: the entry kinds live in the private module
  ``lm_eval.tasks._index`` (``Kind``; entries with ``kind``, ``cfg`` and ``tags``);
* tokenizing loglikelihood requests once per worker and running them per candidate:
  ``TemplateLM._encode_pair`` and ``HFLM._loglikelihood_tokens``, with the empty-context
  rule of ``TemplateLM.loglikelihood`` (``prefix_token_id``) copied here;
* scoring with per-document templates memoized: a task class's ``process_results``
  called with a stand-in ``self`` that forwards every attribute to the task.

No other module of evomerge touches these. Each function checks, once per process, that
the installed lm-eval still has what it relies on, and raises :class:`LmEvalApiError`
naming the lm-eval version and the missing piece otherwise; ``tests/evaluate/
test_lm_eval_private.py`` checks the same, and the behaviour behind each name.
``pyproject.toml`` bounds lm-eval to the versions this was checked against
(:data:`CHECKED_VERSIONS`).

>>> api_problems("index")
[]
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

CHECKED_VERSIONS = ("0.4.12", "0.4.13")
"""lm-eval releases this module matches. The tests run on 0.4.13. In 0.4.12 the task index
is the same file, and ``_encode_pair``, ``_loglikelihood_tokens``, ``prefix_token_id`` and
``ConfigurableTask.process_results`` read the same (compared source to source; not run);
0.4.11 and older have no ``lm_eval.tasks._index`` at all."""

Part = Literal["index", "model", "task"]
PARTS: tuple[Part, ...] = ("index", "model", "task")

EntryKind = Literal["task", "python_task", "group", "tag"]
_KINDS: dict[str, EntryKind] = {
    "TASK": "task", "PY_TASK": "python_task", "GROUP": "group", "TAG": "tag",
}
_ENTRY_FIELDS = ("kind", "cfg", "tags")


class LmEvalApiError(RuntimeError):
    """The installed lm-eval lacks (or changed) a private API evomerge relies on."""


def lm_eval_version() -> str:
    return version("lm_eval")


def _params(func: Any) -> list[str] | None:
    try:
        return list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return None


def _index_problems(index_module: Any = None) -> list[str]:
    if index_module is None:
        try:
            import lm_eval.tasks._index as index_module
        except ImportError as err:
            return [f"module lm_eval.tasks._index cannot be imported ({err})"]
    problems = []
    kind = getattr(index_module, "Kind", None)
    if kind is None:
        problems.append("lm_eval.tasks._index.Kind is missing")
    else:
        missing = [m for m in _KINDS if m not in getattr(kind, "__members__", {})]
        if missing:
            problems.append(f"lm_eval.tasks._index.Kind lacks members {missing}")
    entry = getattr(index_module, "Entry", None)
    if entry is None or not dataclasses.is_dataclass(entry):
        problems.append("lm_eval.tasks._index.Entry is missing or not a dataclass")
    else:
        fields = {f.name for f in dataclasses.fields(entry)}
        missing = [f for f in _ENTRY_FIELDS if f not in fields]
        if missing:
            problems.append(f"lm_eval.tasks._index.Entry lacks fields {missing}")
    return problems


def _model_problems(lm_class: Any = None) -> list[str]:
    if lm_class is None:
        from lm_eval.models.huggingface import HFLM as lm_class
    name = f"{lm_class.__module__}.{lm_class.__qualname__}"
    problems = []
    expected = {
        "_encode_pair": ["self", "context", "continuation"],
        "_loglikelihood_tokens": ["self", "requests", "disable_tqdm"],
        "tok_encode": ["self", "string", "add_special_tokens"],
    }
    for method, params in expected.items():
        found = _params(getattr(lm_class, method, None))
        if found is None:
            problems.append(f"{name}.{method} is missing")
        elif found[:len(params)] != params:
            problems.append(f"{name}.{method} takes {found}, not {params} first")
    if not hasattr(lm_class, "prefix_token_id"):
        problems.append(f"{name}.prefix_token_id is missing")
    return problems


def _task_problems(task_class: Any = None) -> list[str]:
    if task_class is None:
        from lm_eval.api.task import ConfigurableTask as task_class
    name = f"{task_class.__module__}.{task_class.__qualname__}"
    method = inspect.getattr_static(task_class, "process_results", None)
    if not inspect.isfunction(method):
        return [f"{name}.process_results is not a plain method"]
    if _params(method) != ["self", "doc", "results"]:
        return [f"{name}.process_results takes {_params(method)}, not ['self', 'doc', 'results']"]
    return []


def api_problems(part: Part, target: Any = None) -> list[str]:
    """What lm-eval lacks of the private API one part relies on; empty when all is there.

    ``target`` replaces the lm-eval object checked (the index module, the model class or
    the task class), so the check itself can be tested.
    """
    check = {"index": _index_problems, "model": _model_problems, "task": _task_problems}[part]
    return check(target)


def api_error(problems: list[str]) -> LmEvalApiError:
    """The error for lm-eval problems: the installed version, each problem, what to install."""
    return LmEvalApiError(
        f"lm-eval {lm_eval_version()} changed private APIs evomerge uses: "
        + "; ".join(problems)
        + f". evomerge is checked against lm-eval {', '.join(CHECKED_VERSIONS)}: "
        "install one of those"
    )


@functools.cache
def require(part: Part) -> None:
    """Raise :class:`LmEvalApiError` if lm-eval lacks what ``part`` uses (checked once)."""
    problems = api_problems(part)
    if problems:
        raise api_error(problems)


@dataclass(frozen=True)
class IndexEntry:
    """One entry of lm-eval's task index: a task, a Python task, a group or a tag."""

    kind: EntryKind
    cfg: dict[str, Any] | None
    tags: frozenset[str]


def index_entry(manager: TaskManager, name: str) -> IndexEntry:
    """The index entry of ``name`` (which must be in ``manager.task_index``)."""
    require("index")
    entry = manager.task_index[name]
    kind = _KINDS.get(entry.kind.name)
    if kind is None:
        raise api_error([f"the task index lists {name!r} as a {entry.kind.name}"])
    return IndexEntry(kind, entry.cfg, frozenset(entry.tags))


def encode_loglikelihood(lm: HFLM, instances: list[Instance]) -> list[tuple]:
    """Tokenize loglikelihood requests as ``TemplateLM.loglikelihood`` does, once.

    Returns the ``((context, continuation), context_tokens, continuation_tokens)``
    triples that ``TemplateLM.loglikelihood`` hands to ``_loglikelihood_tokens``.
    """
    require("model")
    encoded = []
    for inst in instances:
        context, continuation = inst.args
        if context == "":
            cont = lm.tok_encode(continuation, add_special_tokens=False)
            prefix = lm.prefix_token_id
            ctx, cont = ([prefix], cont) if prefix != cont[0] else (cont[:1], cont[1:])
        else:
            ctx, cont = lm._encode_pair(context, continuation)
        encoded.append(((context, continuation), ctx, cont))
    return encoded


def loglikelihood_tokens(lm: HFLM, encoded: list[tuple]) -> list[tuple[float, bool]]:
    """(log-likelihood, is greedy) per request of :func:`encode_loglikelihood`."""
    require("model")
    return lm._loglikelihood_tokens(encoded, disable_tqdm=True)


def process_results_as(view: Any, task: Any, doc: Any, results: list[Any]) -> dict[str, Any]:
    """The task's ``process_results`` with ``view`` standing in for the task as ``self``."""
    require("task")
    return type(task).process_results(view, doc, results)


def apply_filters_to(task: Any, instances: list[Instance]) -> None:
    """The task's filter ensembles (``Task._filters``) applied to ``instances`` only, as
    ``Task.apply_filters`` applies them to all: a fidelity level scores some documents
    of a task, and the others hold no responses for this candidate."""
    ensembles = getattr(task, "_filters", None)
    if ensembles is None:
        raise api_error([f"{type(task).__qualname__} has no _filters (its filter ensembles)"])
    if instances:
        for ensemble in ensembles:
            ensemble.apply(instances)
