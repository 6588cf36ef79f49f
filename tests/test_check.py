"""Every exercise's self-check: the computed answer passes, a wrong one gets a hint."""

from __future__ import annotations

import pytest

from ambientlab.book.check import EXERCISES, answer, solution


@pytest.mark.parametrize("exercise", sorted(EXERCISES))
def test_right_answer_passes_and_wrong_answer_gets_a_hint(exercise: str) -> None:
    right = solution(exercise)
    assert answer(exercise, right) == "Correct."
    assert answer(exercise, str(right)) == "Correct."
    wrong = right + 1 if isinstance(right, int) else f"{right}x"
    verdict = answer(exercise, wrong)
    assert verdict.startswith("Not yet. Hint: ") and len(verdict) > 40


def test_hex_and_decimal_answers_are_the_same_number() -> None:
    assert answer("02-xmark", "0x250") == answer("02-xmark", 592) == "Correct."
