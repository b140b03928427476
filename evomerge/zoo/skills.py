"""Synthetic skills: seeded generators of prompt/answer examples.

Four skills train the experts (``add``, ``reverse``, ``sort``, ``read``) and one target
task needs two of them at once: ``foreign_add`` asks for a sum whose operands are written
in a made-up "foreign" numeral system, so it needs the foreign reading of ``read`` and the
arithmetic of ``add`` (in the spirit of merging a Japanese model with an English math model
to do Japanese math).

Every skill has a *target* convention (what is scored) and a *decoy* convention that does
the same work with a different output (descending instead of ascending sort, a copy
instead of a reversal, the digits of a sum written backwards, foreign numerals read in the
wrong direction). The base model is pre-trained on both, so it has the machinery of every
skill but commits to the target convention only part of the time; an expert is a light
fine-tune on one skill's target convention. That is the "half-knowing, capable base" on
which task vectors stay small and merging pays.

Each example carries four multiple-choice options: the answer, the decoy answer and near
misses of the same length, so a task can be scored by loglikelihood (partial credit) as
well as by exact match.

>>> import random
>>> ex = SKILLS["add"].example(random.Random(0))
>>> a, b = ex.prompt[len("add:"):-1].split("+")
>>> int(ex.answer) == int(a) + int(b) and ex.choices[ex.label] == ex.answer
True
>>> SKILLS["sort"].example(random.Random(0), decoy=True).answer == "".join(
...     sorted(SKILLS["sort"].example(random.Random(0)).answer, reverse=True))
True
>>> to_foreign(905), from_foreign("LKS")
('LKS', 905)

The ``proving`` preset uses three more tasks, written with the same foreign digits but
most significant digit first, so that reading them is a digit-by-digit translation:
``copy`` (``copy:4096=`` -> ``4096``, decimal, base pre-training only), ``glyph``
(``copy:BKSD=`` -> ``4096``) and the target ``glyph_add`` (``add:MR+TB=`` -> ``46``).

>>> to_glyphs(4096), from_glyphs("BKSD")
('BKSD', 4096)
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

#: Foreign digits 0..9. Foreign numbers are written least-significant digit first.
FOREIGN_DIGITS = "KMRTBLDGPS"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
N_CHOICES = 4


@dataclass(frozen=True)
class Example:
    """One document: ``prompt`` is the context, ``answer`` the expected continuation,
    ``choices[label] == answer``."""

    prompt: str
    answer: str
    choices: tuple[str, ...]
    label: int

    def to_row(self, doc_id: str) -> dict:
        return {"doc_id": doc_id, "prompt": self.prompt, "answer": self.answer,
                "choices": list(self.choices), "label": self.label}


@dataclass(frozen=True)
class Problem:
    """A drawn instance: the prompt, its target and decoy answers, and the alphabet near
    misses are made from (``numeric`` keeps a non-zero leading digit)."""

    prompt: str
    target: str
    decoy: str
    alphabet: str
    numeric: bool = False


def to_foreign(n: int) -> str:
    """Write ``n`` in the foreign numeral system (least-significant digit first)."""
    return "".join(FOREIGN_DIGITS[int(d)] for d in reversed(str(n)))


def from_foreign(s: str) -> int:
    """Inverse of :func:`to_foreign`."""
    return int("".join(str(FOREIGN_DIGITS.index(c)) for c in reversed(s)))


def to_glyphs(n: int) -> str:
    """Write ``n`` with the foreign digits, most significant digit first."""
    return "".join(FOREIGN_DIGITS[int(d)] for d in str(n))


def from_glyphs(s: str) -> int:
    """Inverse of :func:`to_glyphs`."""
    return int("".join(str(FOREIGN_DIGITS.index(c)) for c in s))


_GLYPH_TO_DIGIT = str.maketrans(FOREIGN_DIGITS, DIGITS)


def glyphs_to_decimal(text: str) -> str:
    """``text`` with every foreign digit replaced by its decimal digit, character for
    character (the rest unchanged): what the ``proving`` zoo's reader layer learns.

    >>> glyphs_to_decimal("add:MR+TB=")
    'add:12+34='
    """
    return text.translate(_GLYPH_TO_DIGIT)


def _misread_foreign(s: str) -> int:
    """The decoy reading: digits mapped but taken most-significant first."""
    return int("".join(str(FOREIGN_DIGITS.index(c)) for c in s))


def near_misses(answer: str, alphabet: str, rng: random.Random, k: int,
                numeric: bool = False, avoid: tuple[str, ...] = ()) -> list[str]:
    """``k`` distinct strings of the same length as ``answer`` that differ from it slightly
    (two neighbours swapped, or one character replaced), none equal to ``answer`` or in
    ``avoid``. Numbers keep a non-zero leading digit.

    >>> m = near_misses("123", DIGITS, random.Random(1), k=3, numeric=True)
    >>> len(set(m)) == 3 and "123" not in m and all(len(x) == 3 and x[0] != "0" for x in m)
    True
    """
    out: list[str] = []
    seen = {answer, *avoid}
    while len(out) < k:
        chars = list(answer)
        i = rng.randrange(len(chars))
        swappable = i + 1 < len(chars) and chars[i] != chars[i + 1]
        if swappable and not (numeric and i == 0 and chars[1] == "0") and rng.random() < 0.5:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        else:
            pool = alphabet[1:] if numeric and i == 0 and len(chars) > 1 else alphabet
            chars[i] = rng.choice([c for c in pool if c != chars[i]])
        candidate = "".join(chars)
        if candidate not in seen:
            seen.add(candidate)
            out.append(candidate)
    return out


def _operand(rng: random.Random) -> int:
    return rng.randint(10, 99)


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 6)))


def _add(rng: random.Random) -> Problem:
    a, b = _operand(rng), _operand(rng)
    s = str(a + b)
    return Problem(f"add:{a}+{b}=", s, s[::-1], DIGITS, numeric=True)


def _reverse(rng: random.Random) -> Problem:
    w = _word(rng)
    return Problem(f"rev:{w}=", w[::-1], w, LETTERS)


def _sort(rng: random.Random) -> Problem:
    w = _word(rng)
    return Problem(f"sort:{w}=", "".join(sorted(w)), "".join(sorted(w, reverse=True)),
                   LETTERS)


def _read(rng: random.Random) -> Problem:
    f = to_foreign(rng.randint(10, 9_999))
    return Problem(f"read:{f}=", str(from_foreign(f)), str(_misread_foreign(f)), DIGITS,
                   numeric=True)


def _foreign_add(rng: random.Random) -> Problem:
    fa, fb = to_foreign(_operand(rng)), to_foreign(_operand(rng))
    s = str(from_foreign(fa) + from_foreign(fb))
    # The decoy is the read skill's: operands read in the wrong direction. (Adding the add
    # skill's decoy too would give the true sum back whenever no digit carries.)
    wrong = str(_misread_foreign(fa) + _misread_foreign(fb))
    return Problem(f"add:{fa}+{fb}=", s, wrong, DIGITS, numeric=True)


def _number(rng: random.Random) -> int:
    return rng.randint(100, 9_999)


def _copy(rng: random.Random) -> Problem:
    s = str(_number(rng))
    return Problem(f"copy:{s}=", s, s[::-1], DIGITS, numeric=True)


def _glyph(rng: random.Random) -> Problem:
    n = _number(rng)
    return Problem(f"copy:{to_glyphs(n)}=", str(n), str(n)[::-1], DIGITS, numeric=True)


def _glyph_add(rng: random.Random) -> Problem:
    a, b = _operand(rng), _operand(rng)
    # decoy: the operands read backwards (as for foreign_add, the read skill's decoy)
    wrong = str(int(str(a)[::-1]) + int(str(b)[::-1]))
    return Problem(f"add:{to_glyphs(a)}+{to_glyphs(b)}=", str(a + b), wrong, DIGITS,
                   numeric=True)


@dataclass(frozen=True)
class Skill:
    """A named task. ``needs`` names the skills a cross-skill target combines (empty for a
    skill that an expert trains on)."""

    name: str
    draw: Callable[[random.Random], Problem]
    description: str
    needs: tuple[str, ...] = ()

    @property
    def is_target(self) -> bool:
        return bool(self.needs)

    def example(self, rng: random.Random, decoy: bool = False) -> Example:
        """Draw one example; ``decoy=True`` answers in the decoy convention (training
        only). The choices hold the target answer, the decoy answer when it differs and
        has the same length (so no choice wins by being shorter), and near misses."""
        p = self.draw(rng)
        avoid = (p.decoy,) if p.decoy != p.target and len(p.decoy) == len(p.target) else ()
        choices = [*avoid, *near_misses(p.target, p.alphabet, rng, N_CHOICES - 1 - len(avoid),
                                        p.numeric, avoid)]
        rng.shuffle(choices)
        label = rng.randrange(N_CHOICES)
        choices.insert(label, p.target)
        answer = p.decoy if decoy else p.target
        return Example(p.prompt, answer, tuple(choices), label)


SKILLS: dict[str, Skill] = {
    s.name: s
    for s in (
        Skill("add", _add, "sum of two 2-digit numbers (decoy: its digits reversed)"),
        Skill("reverse", _reverse, "reverse 3-6 letters (decoy: copy them)"),
        Skill("sort", _sort, "sort 3-6 letters ascending (decoy: descending)"),
        Skill("read", _read, "foreign numeral, least significant digit first, to decimal "
                             "(decoy: read most significant first)"),
        Skill("foreign_add", _foreign_add, "sum of two foreign numerals, in decimal",
              needs=("read", "add")),
        Skill("copy", _copy, "copy a 3-4 digit number (decoy: its digits reversed)"),
        Skill("glyph", _glyph, "3-4 foreign digits, most significant first, to decimal "
                               "(decoy: the decimal digits reversed)"),
        Skill("glyph_add", _glyph_add, "sum of two 2-digit numbers written in foreign "
                                       "digits, most significant first, in decimal",
              needs=("glyph", "add")),
    )
}

#: The tasks of the ``default``, ``tiny`` and ``large`` zoos (in this order).
DEFAULT_TASKS = ("add", "reverse", "sort", "read", "foreign_add")


def expert_skills(tasks: tuple[str, ...] = DEFAULT_TASKS) -> list[str]:
    """The skills among ``tasks`` that are not cross-skill targets.

    >>> expert_skills()
    ['add', 'reverse', 'sort', 'read']
    """
    return [name for name in tasks if not SKILLS[name].is_target]


def target_skills(tasks: tuple[str, ...] = DEFAULT_TASKS) -> list[str]:
    """The cross-skill targets among ``tasks``: scored, never trained on by an expert.

    >>> target_skills()
    ['foreign_add']
    """
    return [name for name in tasks if SKILLS[name].is_target]
