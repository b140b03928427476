"""The ``proving`` preset: a build is deterministic, its experts share the base's frame
(embeddings, final norm, head) and move only the layers their plans train, its tasks load
through lm-eval and agree with the zoo's scorer document by document, and the routed
recipe composes two experts on the cross-skill target."""

from __future__ import annotations

import dataclasses

import pytest
from safetensors.torch import load_file
from zoo_support import assert_same_build, lm_eval_against_zoo_scoring

from evomerge.merge.routed_model import build_routed, load_sources
from evomerge.zoo.build import build_zoo
from evomerge.zoo.presets import ExpertPlan, Preset, get_preset
from evomerge.zoo.proving import READER, SOLVER, TARGET, Scorer, paired_ci, routed_recipe
from evomerge.zoo.train import ModelShape, deterministic


def scaled(preset: Preset, shape: ModelShape, base_steps: int, phase_steps: int,
           n_docs: int) -> Preset:
    """``preset`` with another model shape, fewer steps and fewer documents (its plans,
    phases and trainable layers as they are)."""
    def phase(p):
        return dataclasses.replace(p, settings=dataclasses.replace(p.settings,
                                                                   steps=phase_steps))
    return dataclasses.replace(
        preset, name=f"{preset.name}-scaled", shape=shape,
        base=dataclasses.replace(preset.base, steps=base_steps, warmup=2),
        plans=tuple(ExpertPlan(p.skill, tuple(map(phase, p.phases))) for p in preset.plans),
        n_search=n_docs, n_test=n_docs)


SMALL = scaled(get_preset("proving"), ModelShape(hidden=16, layers=4, heads=2),
               base_steps=8, phase_steps=3, n_docs=8)


@pytest.fixture(scope="module")
def small_proving(tmp_path_factory):
    return build_zoo(tmp_path_factory.mktemp("proving") / "a", preset=SMALL)


def test_a_proving_build_is_deterministic(small_proving, tmp_path):
    assert_same_build(small_proving, build_zoo(tmp_path / "b", preset=SMALL))


def test_experts_keep_the_base_frame_and_move_only_their_layers(small_proving):
    base = load_file(small_proving.base / "model.safetensors")
    for skill, folder in small_proving.experts.items():
        expert = load_file(folder / "model.safetensors")
        moved = {name for name, t in expert.items() if not t.equal(base[name])}
        assert all(name.startswith("model.layers.") for name in moved), skill
        layers = {int(name.split(".")[2]) for name in moved}
        assert layers == {0, 1, 2, 3}, (skill, layers)


@pytest.mark.slow
def test_proving_tasks_load_through_lm_eval_and_agree_with_the_zoo_scorer(small_proving):
    lm_eval_against_zoo_scoring(small_proving, small_proving.experts["glyph"],
                                ["glyph", "glyph_add"], "test", limit=8)


#: the routed recipe's two parents at the preset's own training, on a narrower model with
#: a shorter pre-training (a build of about half a minute)
COMPOSABLE = dataclasses.replace(
    get_preset("proving"), name="proving-composable",
    shape=ModelShape(hidden=64, layers=4, heads=2),
    base=dataclasses.replace(get_preset("proving").base, steps=400),
    plans=tuple(p for p in get_preset("proving").plans if p.skill in (READER, SOLVER)),
    tasks=(READER, SOLVER, TARGET), n_search=8, n_test=200)


@pytest.mark.slow
def test_the_routed_recipe_beats_each_parent_and_the_base_on_the_target(tmp_path):
    zoo = build_zoo(tmp_path / "zoo", preset=COMPOSABLE)
    with deterministic(seed=0):
        scorer = Scorer(zoo, [READER, SOLVER], [TARGET], {"test": None})
        sources = load_sources([str(zoo.experts[READER]), str(zoo.experts[SOLVER])])
        routed = scorer.score(build_routed(routed_recipe(zoo), sources), "test")
        parents = {name: scorer.score(scorer.recipe("task_arithmetic", weights), "test")
                   for name, weights in [("base", {}), (READER, {READER: 1.0}),
                                         (SOLVER, {SOLVER: 1.0})]}
    for name, scores in parents.items():
        gain, low, _ = paired_ci(routed, scores, [TARGET])
        # at least 10 points better, and 200 documents cannot put the gain at zero
        assert gain >= 0.10 and low > 0, (name, gain, low)
