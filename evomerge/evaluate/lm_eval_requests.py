"""Build lm-eval requests once per worker and run them against each candidate model.

This follows lm-eval's own ``evaluator.simple_evaluate`` / ``evaluator.evaluate`` step by
step (task overrides, ``Task.build_all_requests``, one model call per request type over
all tasks, ``repeats`` copies), but splits it in two: :class:`RequestPlan` does the part
that does not depend on the weights (task objects, documents, prompts, tokenized
loglikelihood requests) once, and :meth:`RequestPlan.run` does only the model calls for
each candidate. Keeping the order and batching of lm-eval's calls keeps the numbers equal
to those of the ``lm_eval`` command line on a saved copy of the model.

The two steps that need lm-eval's private API (tokenizing loglikelihood requests ahead
of the model call, and that call) live in :mod:`~evomerge.evaluate.lm_eval_private`.

Caches: ``HFLM(logits_cache=True)`` only shares logits between requests of one call, and
no response cache (``use_cache`` / ``CachingLM``) or request cache is ever used, so
nothing computed for one candidate is reused for the next. Responses stored on the
request instances are cleared before every run.

Example (``model`` and ``tokenizer`` are a Hugging Face causal LM and its tokenizer)::

    plan = RequestPlan(lm_eval_config, resolved.search, model, tokenizer)
    model_seconds = plan.run(model)     # fills each instance's resps
    plan.runs[0].task.apply_filters()   # then score with lm-eval's process_results
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evomerge.errors import ConfigError
from evomerge.evaluate.config import LmEvalConfig, TaskConfig
from evomerge.evaluate.lm_eval_private import encode_loglikelihood, loglikelihood_tokens
from evomerge.evaluate.lm_eval_tasks import ResolvedTask, task_manager_for

if TYPE_CHECKING:
    from lm_eval.api.instance import Instance
    from lm_eval.api.task import Task
    from lm_eval.models.huggingface import HFLM

ID_FIELD = "id"
"""A document field that, when every scored document has a distinct one, names it."""


@dataclass
class TaskRun:
    """One leaf task with its documents and request instances, built once."""

    spec: ResolvedTask
    leaf: str
    task: Task
    docs: list[tuple[int, Any]]
    doc_keys: list[str]
    by_doc: dict[int, list[Instance]] = field(default_factory=dict)
    view: Any = None  # the task as scoring sees it (see lm_eval_scoring.StaticDocView)


def wrap_model(model: Any, tokenizer: Any, config: LmEvalConfig) -> HFLM:
    """lm-eval's Hugging Face model class around a live model (no copy, no disk)."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=config.batch_size,
                max_length=config.max_length)


def _configure(task: Task, spec: TaskConfig, config: LmEvalConfig) -> None:
    """Apply the per-task overrides exactly as ``simple_evaluate`` applies its arguments."""
    if task.get_config("output_type") == "generate_until" and spec.generation_overrides():
        task.set_config(key="generation_kwargs", value=spec.generation_overrides(), update=True)
    if spec.num_fewshot is not None:
        # lm-eval never overrides a task whose own config pins num_fewshot to 0.
        if task.get_config("num_fewshot") != 0:
            task.set_config(key="num_fewshot", value=spec.num_fewshot)
    elif task.get_config("num_fewshot") is None:
        task.set_config(key="num_fewshot", value=0)
    task.set_fewshot_seed(seed=config.fewshot_seed)


def _selection(task: Task, spec: TaskConfig, leaf: str) -> tuple[int | None, list[int] | None]:
    """(limit, sorted document indices) as lm-eval's ``limit`` / ``samples`` arguments."""
    from lm_eval.evaluator_utils import get_sample_size

    n = len(task.eval_docs)
    if spec.subsample is not None:
        if spec.subsample.size > n:
            raise ConfigError(None, f"{spec.name}.subsample.size", spec.subsample.size,
                              f"task {leaf!r} has only {n} documents")
        chosen = random.Random(spec.subsample.seed).sample(range(n), spec.subsample.size)
        return None, sorted(chosen)
    if spec.doc_ids is not None:
        if max(spec.doc_ids) >= n:
            raise ConfigError(None, f"{spec.name}.doc_ids", max(spec.doc_ids),
                              f"task {leaf!r} has documents 0..{n - 1}")
        # lm-eval maps positions back to ids assuming the ids are in dataset order.
        return None, sorted(spec.doc_ids)
    return get_sample_size(task, spec.limit), None


def _doc_keys(docs: list[tuple[int, Any]], samples: list[int] | None) -> list[str]:
    """Stable document ids: the documents' own ``id`` when distinct, else dataset indices."""
    own = [doc.get(ID_FIELD) if isinstance(doc, dict) else None for _, doc in docs]
    if all(v is not None for v in own) and len({str(v) for v in own}) == len(own):
        return [str(v) for v in own]
    return [str(samples[pos] if samples else pos) for pos, _ in docs]


class RequestPlan:
    """Tasks, documents and requests for a list of resolved tasks, reused per candidate."""

    def __init__(self, config: LmEvalConfig, tasks: tuple[ResolvedTask, ...], model: Any,
                 tokenizer: Any):
        self.config = config
        self.tokenizer = tokenizer
        self.lm = wrap_model(model, tokenizer, config)
        manager = task_manager_for(config.include_paths, [t.name for t in tasks])
        self.runs: list[TaskRun] = []
        for spec in tasks:
            for leaf, task in manager.load([spec.name])["tasks"].items():
                self.runs.append(self._build(spec, leaf, task))
        # One call per request type over all tasks, in task order, as lm-eval batches them.
        self.requests: dict[str, list[Instance]] = {}
        #: per request, (leaf task, document position): what a fidelity level selects by
        self.request_docs: dict[str, list[tuple[str, int]]] = {}
        for run in self.runs:
            for inst in run.task.instances:
                self.requests.setdefault(inst.request_type, []).extend([inst] * inst.repeats)
                self.request_docs.setdefault(inst.request_type, []).extend(
                    [(run.leaf, inst.doc_id)] * inst.repeats)
        self.encoded = encode_loglikelihood(self.lm, self.requests.get("loglikelihood", []))
        self.samples_randomly = any(
            inst.args[1].get("do_sample", False)
            for inst in self.requests.get("generate_until", [])
        )

    def _build(self, spec: ResolvedTask, leaf: str, task: Task) -> TaskRun:
        _configure(task, spec.config, self.config)
        limit, samples = _selection(task, spec.config, leaf)
        apply_chat = (spec.config.apply_chat_template
                      if spec.config.apply_chat_template is not None
                      else self.config.apply_chat_template)
        multiturn = (self.config.fewshot_as_multiturn
                     if self.config.fewshot_as_multiturn is not None else True)
        task.build_all_requests(
            limit=limit, samples=samples, rank=0, world_size=1, cache_requests=False,
            system_instruction=self.config.system_instruction,
            apply_chat_template=apply_chat, fewshot_as_multiturn=multiturn,
            chat_template=self.lm.apply_chat_template if apply_chat else None,
            tokenizer_name=self.lm.tokenizer_name if apply_chat else "",
        )
        docs = list(task.doc_iterator(rank=0, limit=limit, world_size=1, samples=samples))
        run = TaskRun(spec, leaf, task, docs, _doc_keys(docs, samples))
        for inst in task.instances:
            run.by_doc.setdefault(inst.doc_id, []).append(inst)
        for insts in run.by_doc.values():
            insts.sort(key=lambda inst: inst.idx)
        return run

    def run(self, model: Any, only: dict[str, set[int]] | None = None) -> float:
        """Run the requests against ``model`` (``only``: those of these documents, by leaf
        task and position, in the same order); returns the seconds spent in model calls."""
        if self.lm.model is not model:
            # A worker normally rebuilds candidates into one module; a new module only
            # needs a new wrapper, the requests stay valid for the same tokenizer.
            self.lm = wrap_model(model, self.tokenizer, self.config)
        model.eval()
        chosen = {reqtype: self._chosen(reqtype, only) for reqtype in self.requests}
        for reqtype, picks in chosen.items():
            for i in picks:
                inst = self.requests[reqtype][i]
                inst.resps, inst.filtered_resps = [], {}
        if self.samples_randomly:
            import torch

            torch.manual_seed(self.config.sampling_seed)
        start = time.perf_counter()
        for reqtype, picks in chosen.items():
            insts = [self.requests[reqtype][i] for i in picks]
            if not insts:
                continue
            if reqtype == "loglikelihood":
                resps = loglikelihood_tokens(self.lm, [self.encoded[i] for i in picks])
            else:
                resps = getattr(self.lm, reqtype)(insts, disable_tqdm=True)
            for resp, inst in zip(resps, insts, strict=True):
                inst.resps.append(resp)
        return time.perf_counter() - start

    def _chosen(self, reqtype: str, only: dict[str, set[int]] | None) -> list[int]:
        docs = self.request_docs[reqtype]
        if only is None:
            return list(range(len(docs)))
        return [i for i, (leaf, pos) in enumerate(docs) if pos in only.get(leaf, ())]
