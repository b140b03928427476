"""lm-eval's private API, all of it used through ``evomerge.evaluate.lm_eval_private``.

Each name is checked to exist with the parameters we pass, and each behaviour we rely on
is checked against lm-eval's public path or a direct computation. A failure names the
installed lm-eval version and the API that changed: adapt ``lm_eval_private`` to it, or
keep lm-eval's bound in pyproject.toml below that version.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
from importlib.metadata import version
from pathlib import Path

import pytest
import torch
from eval_support import MC_TASK, write_task
from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest itself depends on tomli there
    import tomli as tomllib

from evomerge.evaluate.lm_eval_private import (
    CHECKED_VERSIONS,
    PARTS,
    LmEvalApiError,
    api_error,
    api_problems,
    encode_loglikelihood,
    index_entry,
    lm_eval_version,
    loglikelihood_tokens,
    process_results_as,
)

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
LL_TOLERANCE = {"rel": 1e-4, "abs": 1e-4}  # float32 sums in another order (see exactness)


def _requirement(name: str) -> Requirement:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    found = [Requirement(d) for d in deps if Requirement(d).name == name]
    assert len(found) == 1, f"pyproject.toml lists {name} {len(found)} times"
    return found[0]


@pytest.mark.parametrize("part", PARTS)
def test_installed_lm_eval_has_every_private_api_we_use(part):
    problems = api_problems(part)
    assert not problems, str(api_error(problems))


@pytest.mark.parametrize("name", ["lm-eval", "transformers"])
def test_installed_versions_are_within_the_tested_bounds(name):
    req = _requirement(name)
    assert any(s.operator == "<" for s in req.specifier), f"{req} has no upper bound"
    installed = version(name)
    assert req.specifier.contains(installed), (
        f"{name} {installed} is outside pyproject.toml's {req}: test it, then move the bound")


def test_the_lm_eval_bound_is_the_versions_checked():
    spec = _requirement("lm-eval").specifier
    assert all(spec.contains(v) for v in CHECKED_VERSIONS), (spec, CHECKED_VERSIONS)
    lower = [Version(s.version) for s in spec if s.operator == ">="]
    assert lower == [min(map(Version, CHECKED_VERSIONS))], (spec, CHECKED_VERSIONS)


def test_a_missing_or_changed_api_is_named_with_the_lm_eval_version():
    class Kind(enum.Enum):
        TASK = 1
        GROUP = 2

    @dataclasses.dataclass
    class Entry:
        kind: Kind
        cfg: dict

    index = types.SimpleNamespace(Kind=Kind, Entry=Entry)
    assert api_problems("index", types.SimpleNamespace()) == [
        "lm_eval.tasks._index.Kind is missing",
        "lm_eval.tasks._index.Entry is missing or not a dataclass"]
    assert api_problems("index", index) == [
        "lm_eval.tasks._index.Kind lacks members ['PY_TASK', 'TAG']",
        "lm_eval.tasks._index.Entry lacks fields ['tags']"]

    class LM:
        def _encode_pair(self, context, target):
            raise NotImplementedError

        def tok_encode(self, string, add_special_tokens=None):
            raise NotImplementedError

    problems = "\n".join(api_problems("model", LM))
    assert "LM._encode_pair takes ['self', 'context', 'target']" in problems
    assert "LM._loglikelihood_tokens is missing" in problems
    assert "LM.prefix_token_id is missing" in problems
    assert "tok_encode" not in problems

    class Task:
        @staticmethod
        def process_results(doc, results):
            raise NotImplementedError

    assert api_problems("task", Task) == [
        f"{__name__}.{Task.__qualname__}.process_results is not a plain method"]

    err = api_error(["X.y is missing"])
    assert isinstance(err, LmEvalApiError)
    assert f"lm-eval {version('lm_eval')} " in str(err)
    assert "X.y is missing" in str(err)
    assert lm_eval_version() == version("lm_eval")


def test_index_entries_of_each_kind(tmp_path):
    from lm_eval.tasks import TaskManager

    write_task(tmp_path, "mc_one", "tiny_mc", tag=["tiny_tag"])
    (tmp_path / "group.yaml").write_text("group: tiny_group\ntask: [mc_one]\n")
    (tmp_path / "py.yaml").write_text("task: py_task\nclass: !function nowhere.Task\n")
    manager = TaskManager(include_path=[str(tmp_path)], include_defaults=False)

    task = index_entry(manager, "mc_one")
    assert (task.kind, task.cfg["task"], task.tags) == ("task", "mc_one", {"tiny_tag"})
    tag = index_entry(manager, "tiny_tag")
    assert (tag.kind, tag.tags) == ("tag", {"mc_one"})
    group = index_entry(manager, "tiny_group")
    assert (group.kind, group.cfg["task"]) == ("group", ["mc_one"])
    assert index_entry(manager, "py_task").kind == "python_task"


def _hflm(tiny):
    from lm_eval.models.huggingface import HFLM

    model, tokenizer = tiny
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=2)


def _requests():
    from lm_eval.api.instance import Instance

    pairs = [("Q: 5+2=\nA:", " 7"), ("Q: 5+9=\nA: ", "14"), ("", "copy cat"), ("ab", "c")]
    return [Instance("loglikelihood", {}, pair, idx=i) for i, pair in enumerate(pairs)]


def test_requests_are_tokenized_as_lm_eval_tokenizes_them(tiny):
    lm, requests = _hflm(tiny), _requests()
    seen = []
    # lm-eval's public loglikelihood tokenizes, then hands the triples to this method
    lm._loglikelihood_tokens = lambda reqs, **kwargs: seen.extend(reqs) or [(0.0, True)] * len(reqs)
    lm.loglikelihood(requests, disable_tqdm=True)
    assert encode_loglikelihood(lm, requests) == seen
    for (context, continuation), ctx, cont in seen:
        if context:  # a causal model's pair is the whole text, split after the context
            assert ctx + cont == lm.tok_encode(context + continuation)
            assert ctx == lm.tok_encode(context.rstrip())
        else:
            assert ctx == [lm.prefix_token_id]


def _direct(model, ctx, cont):
    """(sum of the continuation's log-probabilities, greedy?, smallest top-2 logit margin)."""
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logits = model(ids).logits[0, len(ctx) - 1:-1].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    target = torch.tensor(cont)
    top2 = logits.topk(2, dim=-1).values
    return (logprobs[torch.arange(len(cont)), target].sum().item(),
            bool((logits.argmax(-1) == target).all()),
            (top2[:, 0] - top2[:, 1]).min().item())


def test_loglikelihood_tokens_scores_each_continuation(tiny):
    model, _ = tiny
    lm, requests = _hflm(tiny), _requests()
    encoded = encode_loglikelihood(lm, requests)
    ours = loglikelihood_tokens(lm, encoded)
    public = lm.loglikelihood(requests, disable_tqdm=True)
    assert len(ours) == len(public) == len(requests)
    for (pair, ctx, cont), (ll, greedy), (their_ll, their_greedy) in zip(encoded, ours, public):
        assert ll == pytest.approx(their_ll, **LL_TOLERANCE), pair
        assert greedy == their_greedy, pair
        direct_ll, direct_greedy, margin = _direct(model, ctx, cont)
        assert ll == pytest.approx(direct_ll, **LL_TOLERANCE), pair
        if margin > LL_TOLERANCE["abs"]:  # no near-tie that reordered sums could flip
            assert greedy == direct_greedy, pair


def test_process_results_runs_with_a_stand_in_for_the_task(task_dir):
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=[str(task_dir)], include_defaults=False)
    task = manager.load([MC_TASK])["tasks"][MC_TASK]
    doc = task.eval_docs[0]
    gold = doc["answer"]
    results = [(-1.0 if i == gold else -5.0, i == gold) for i in range(len(doc["choices"]))]

    class OtherGold:
        """Forwards everything to the task but names another choice as the answer."""

        def __getattr__(self, name):
            return getattr(task, name)

        def doc_to_target(self, doc):
            return (gold + 1) % len(doc["choices"])

    assert process_results_as(task, task, doc, results) == task.process_results(doc, results)
    assert task.process_results(doc, results)["acc"] == 1.0
    assert process_results_as(OtherGold(), task, doc, results)["acc"] == 0.0


def test_no_other_module_uses_lm_eval_private_names():
    """Outside lm_eval_private, evomerge reaches lm-eval through public names only."""
    import evomerge

    package = Path(evomerge.__file__).parent
    private = re.compile(r"lm_eval(\.\w+)*\._\w+|\._encode_pair|\._loglikelihood_tokens"
                         r"|\._index\b|\.process_results\(self\b")
    found = [f"{path.relative_to(package)}:{n}: {line.strip()}"
             for path in sorted(package.rglob("*.py")) if path.name != "lm_eval_private.py"
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if private.search(line)]
    assert not found, "\n".join(found)


def test_a_changed_lm_eval_fails_the_setup_not_each_candidate(monkeypatch, tiny, task_dir):
    import evomerge.evaluate.lm_eval_adapter as adapter
    from evomerge.evaluate import LmEvalConfig, LmEvalEvaluator, TaskConfig

    def changed(part):
        raise api_error([f"{part}: HFLM._loglikelihood_tokens is missing"])

    evaluator = LmEvalEvaluator(LmEvalConfig(include_paths=[str(task_dir)],
                                             search_tasks=[TaskConfig(name=MC_TASK, limit=2)]))
    monkeypatch.setattr(adapter, "require", changed)
    with pytest.raises(LmEvalApiError, match=r"lm-eval \S+ changed .*_loglikelihood_tokens"):
        evaluator.evaluate(*tiny)
    monkeypatch.undo()
    assert evaluator.evaluate(*tiny).is_ok
