import random

import pytest

from evomerge.zoo.skills import (
    N_CHOICES,
    SKILLS,
    expert_skills,
    from_foreign,
    from_glyphs,
    near_misses,
    target_skills,
    to_foreign,
    to_glyphs,
)


def _solve(task: str, prompt: str) -> str:
    """An independent solver of every task, from the prompt alone."""
    body = prompt.split(":", 1)[1][:-1]
    if task == "add":
        a, b = body.split("+")
        return str(int(a) + int(b))
    if task == "foreign_add":
        a, b = body.split("+")
        return str(from_foreign(a) + from_foreign(b))
    if task == "reverse":
        return body[::-1]
    if task == "sort":
        return "".join(sorted(body))
    if task == "read":
        return str(from_foreign(body))
    if task == "copy":
        return body
    if task == "glyph":
        return str(from_glyphs(body))
    if task == "glyph_add":
        a, b = body.split("+")
        return str(from_glyphs(a) + from_glyphs(b))
    raise AssertionError(task)


@pytest.mark.parametrize("task", sorted(SKILLS))
def test_examples_are_correct_and_choices_well_formed(task):
    rng = random.Random(task)
    for _ in range(200):
        ex = SKILLS[task].example(rng)
        assert ex.answer == _solve(task, ex.prompt)
        assert len(ex.choices) == N_CHOICES == len(set(ex.choices))
        assert ex.choices[ex.label] == ex.answer
        assert all(len(c) == len(ex.answer) for c in ex.choices)


@pytest.mark.parametrize("task", sorted(SKILLS))
def test_decoy_answers_differ_from_target_but_share_the_prompt(task):
    rng_a, rng_b = random.Random(1), random.Random(1)
    differ = 0
    for _ in range(100):
        target, decoy = SKILLS[task].example(rng_a), SKILLS[task].example(rng_b, decoy=True)
        assert target.prompt == decoy.prompt and target.choices == decoy.choices
        differ += target.answer != decoy.answer
    assert differ > 80  # only palindromes and the like coincide


def test_generators_are_seeded():
    a = [SKILLS["read"].example(random.Random(7)) for _ in range(3)]
    b = [SKILLS["read"].example(random.Random(7)) for _ in range(3)]
    assert a == b


def test_foreign_numerals_round_trip_and_read_backwards():
    for n in (0, 7, 10, 905, 123456):
        assert from_foreign(to_foreign(n)) == n
    assert to_foreign(12) == to_foreign(2) + to_foreign(1)


def test_near_misses_keep_numbers_well_formed():
    rng = random.Random(0)
    for answer in ("10", "100", "1998", "7"):
        for miss in near_misses(answer, "0123456789", rng, k=3, numeric=True):
            assert miss != answer and len(miss) == len(answer)
            assert miss[0] != "0" or len(miss) == 1


def test_glyphs_are_foreign_digits_most_significant_first():
    for n in (0, 7, 10, 905, 4096):
        assert from_glyphs(to_glyphs(n)) == n
        assert to_glyphs(n) == to_foreign(n)[::-1]


def test_skill_sets():
    assert len(expert_skills()) >= 3
    everything = tuple(SKILLS)
    assert set(target_skills(everything)) == {"foreign_add", "glyph_add"}
    for t in target_skills(everything):
        assert len(SKILLS[t].needs) == 2
        assert set(SKILLS[t].needs) <= set(expert_skills(everything))
