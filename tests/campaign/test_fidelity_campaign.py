"""Multi-fidelity campaigns: candidates scored level by level, stopped ones PRUNED with
their scores and never the best, promoted ones scored as a direct evaluation scores
them, and a resume between levels neither losing nor repeating one."""

from __future__ import annotations

import json

import optuna
import pytest
from campaign_support import write_campaign

from evomerge.campaign.choice import best_trials
from evomerge.campaign.config import load_campaign
from evomerge.campaign.folder import new_folder, open_folder
from evomerge.campaign.loop import CampaignLoop
from evomerge.campaign.runner import open_executor
from evomerge.campaign.study import JOURNAL
from evomerge.errors import ConfigError
from evomerge.evaluate.config import EvaluationConfig
from evomerge.execute.base import WorkerSpec
from evomerge.execute.worker import Worker

LEVELS = [0.25, 0.5, 1.0]


def _fidelity_campaign(tiny_zoo, path, **changes):
    return write_campaign(
        path, tiny_zoo,
        evaluation__lm_eval__search_tasks=[{"name": "zoo_mc_search", "limit": 8}],
        evaluation__fidelity={"levels": LEVELS, "rule": "median",
                              "options": {"n_startup_trials": 2}},
        budget__evaluations=8, **changes)


class Recording:
    """The campaign's executor, keeping each (candidate, level) whose result it returned;
    ``stop_at_level``: Ctrl-C the first time a job of that level is about to run."""

    def __init__(self, executor, stop_at_level=None):
        self.inner, self.stop_at_level = executor, stop_at_level
        self.jobs, self.returned = {}, []
        self.workers = executor.workers

    def submit(self, uid, recipe, split="search", job=None):
        self.jobs[uid] = None if job is None else job.level
        self.inner.submit(uid, recipe, split, job)

    @property
    def pending(self):
        return self.inner.pending

    def results(self, timeout=None):
        if self.stop_at_level is not None and self.stop_at_level in self.jobs.values():
            self.stop_at_level = None
            raise KeyboardInterrupt
        out = self.inner.results(timeout)
        self.returned += [(uid, self.jobs[uid]) for uid, _ in out]
        return out

    def close(self):
        self.inner.close()


def _run(folder, resume=False, stop_at_level=None):
    executor = Recording(open_executor(folder), stop_at_level)
    status = CampaignLoop(folder, executor).run(resume=resume)
    return status, executor.returned


def _trials(out, name="tiny-test"):
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / JOURNAL)))
    return optuna.load_study(study_name=name, storage=storage).trials


@pytest.fixture(scope="module")
def whole_run(tiny_zoo, tmp_path_factory):
    """One uninterrupted fidelity campaign: (its file, folder, status, levels returned)."""
    work = tmp_path_factory.mktemp("fidelity")
    file = _fidelity_campaign(tiny_zoo, work / "c.yaml")
    folder = new_folder(work / "whole", load_campaign(file), None)
    return (file, folder, *_run(folder))


def test_candidates_go_level_by_level_and_stopped_ones_are_pruned(whole_run):
    _, folder, status, returned = whole_run
    trials = _trials(folder.out)
    states = [t.state.name for t in trials]
    assert len(trials) == 8 and set(states) == {"COMPLETE", "PRUNED"}, states
    assert status.pruned == states.count("PRUNED") and status.evaluations == 8

    steps = [250, 500]
    for t in trials:
        levels = [level for uid, level in returned if uid == t.user_attrs["uid"]]
        assert levels == list(range(len(levels)))  # each level once, in order
        if t.state.name == "PRUNED":  # stopped after a level below the last, with its scores
            assert len(levels) < 3 and sorted(t.intermediate_values) == steps[:len(levels)]
            assert t.user_attrs["fidelity"]["level"] == len(levels) - 1
            assert t.user_attrs["metrics"]["score"] == t.intermediate_values[steps[len(levels) - 1]]
        else:
            assert levels == [0, 1, 2] and sorted(t.intermediate_values) == steps
    # documents: each scored once per candidate, the pruned ones fewer than all 32
    assert status.documents == sum(
        {0: 8, 1: 16, 2: 32}[max(lv for u, lv in returned if u == t.user_attrs["uid"])]
        for t in trials)

    # a stopped candidate is never the best, however its low-fidelity score compares
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert status.best_uid in {t.user_attrs["uid"] for t in complete}
    record = folder.open_record()
    chosen = best_trials(record.trials(), folder.campaign.objectives, 3)
    assert {c.state for c in chosen} == {"COMPLETE"}
    for t in chosen:  # the worker's time on all three levels, not the last one only
        timings = t.fitness.timings
        assert timings["busy_s"] > timings["ended"] - timings["began"] > 0
        assert timings["documents"] == 32

    # a promoted candidate's score is that of a direct evaluation on every document
    best = max(complete, key=lambda t: t.values[0])
    direct_eval = EvaluationConfig.model_validate(
        {**folder.campaign.evaluation.model_dump(), "fidelity": None})
    spec = WorkerSpec(base=folder.campaign.base, sources=tuple(folder.campaign.sources),
                      evaluation=direct_eval, device="cpu")
    recipe = folder.trial_recipe(next(r for r in record.trials() if r.number == best.number))
    direct = Worker(spec).evaluate(recipe.to_dict())
    assert direct.objectives["score"] == best.values[0]
    assert direct.sample_scores == json.loads(best.system_attrs["evomerge:sample_scores"])


def test_level_documents_come_from_the_search_split_only(tiny_zoo, tmp_path):
    campaign = load_campaign(_fidelity_campaign(tiny_zoo, tmp_path / "c.yaml"))
    spec = WorkerSpec(base=campaign.base, sources=tuple(campaign.sources),
                      evaluation=campaign.evaluation, device="cpu")
    evaluator = Worker(spec).evaluators["search"]
    evaluator.setup(*_model_and_tokenizer(spec))
    for level in range(3):
        for leaf, docs in evaluator.level_documents(level).items():
            task = leaf.removeprefix("zoo_").removesuffix("_mc_search")
            rows = _rows(tiny_zoo.split_file(task, "search"))
            test_prompts = {r["prompt"] for r in _rows(tiny_zoo.split_file(task, "test"))}
            assert len(docs) == -(-8 * LEVELS[level] // 1)
            assert all(rows[int(d)]["prompt"] not in test_prompts for d in docs)


def test_a_resume_between_levels_neither_loses_nor_repeats_one(whole_run, tmp_path):
    file, whole, _, whole_returned = whole_run
    folder = new_folder(tmp_path / "cut", load_campaign(file), None)
    first, before = _run(folder, stop_at_level=1)  # Ctrl-C as a level-1 job is due
    assert first.stopped == "interrupted"
    running = [t for t in _trials(folder.out) if t.state.name == "RUNNING"]
    assert len(running) == 1 and running[0].user_attrs["fidelity"]["level"] == 0
    _, after = _run(open_folder(folder.out), resume=True)

    cut = _by_trial(folder.out, before + after)
    assert len(set(cut)) == len(cut)  # no level twice
    assert sorted(cut) == sorted(_by_trial(whole.out, whole_returned))  # none lost
    summary = [(t.state.name, t.values, t.params) for t in _trials(folder.out)]
    assert summary == [(t.state.name, t.values, t.params) for t in _trials(whole.out)]


def _by_trial(out, returned):
    """(trial number, level) of each returned result (uids differ between runs)."""
    number = {t.user_attrs["uid"]: t.number for t in _trials(out)}
    return [(number[uid], level) for uid, level in returned]


def test_fidelity_needs_one_objective_and_options_its_pruner_takes(tiny_zoo, tmp_path):
    with pytest.raises(ConfigError, match="compares one number"):
        load_campaign(_fidelity_campaign(
            tiny_zoo, tmp_path / "a.yaml", objectives=["zoo_mc_search/acc", "score"]))
    with pytest.raises(ConfigError, match="options.n_startup") as err:
        load_campaign(write_campaign(
            tmp_path / "b.yaml", tiny_zoo,
            evaluation__fidelity={"levels": LEVELS, "options": {"n_startup": 1}}))
    assert "SuccessiveHalvingPruner takes" in str(err.value)
    with pytest.raises(ConfigError, match="last level must be 1.0"):
        load_campaign(write_campaign(tmp_path / "c.yaml", tiny_zoo,
                                     evaluation__fidelity={"levels": [0.2, 0.5]}))


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _model_and_tokenizer(spec):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(spec.base),
            AutoTokenizer.from_pretrained(spec.base))
