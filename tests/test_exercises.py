"""Every exercise of every lesson has a checker, and its reference solution passes it.

The checkers live in `lessons/support/exercises.py`, the reference solutions in `lessons/solutions.py`.
Each solution is run through its checker (it must be accepted), and a plausible wrong answer too
(it must be rejected), so a checker that accepts anything fails here. A lesson in COVERED must
have a checker for each numbered item of its "## Exercises" section, and its text must tell the
learner how to call it.
"""
import importlib.util
import re
from pathlib import Path

import pytest

import minims
from lessons.support.exercises import CHECKERS, check, help_for, patched

ROOT = Path(__file__).resolve().parent.parent
COVERED = ("00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12")


def _solutions():
    spec = importlib.util.spec_from_file_location("lesson_solutions", ROOT / "lessons" / "solutions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SOL = _solutions()


def _exercises(number):
    lesson = next((ROOT / "lessons").glob(f"{number}_*.py"))
    text = lesson.read_text(encoding="utf-8")
    section = text[text.index("# ## Exercises"):]
    return lesson, section, [int(n) for n in re.findall(r"^# (\d+)\. \*\*", section, re.M)]


@pytest.mark.parametrize("number", COVERED)
def test_every_exercise_has_a_checker_the_lesson_names(number):
    lesson, section, items = _exercises(number)
    assert items, f"{lesson.name}: no numbered exercises found"
    for i in items:
        ex = f"{number}.{i}"
        assert ex in CHECKERS, f"{lesson.name}: exercise {i} has no checker {ex!r} in lessons.support.exercises"
        assert f'check("{ex}"' in section, f"{lesson.name}: exercise {i} should show check(\"{ex}\", ...)"
        assert help_for(ex), f"{ex}: the checker needs a docstring saying what the answer is"


@pytest.mark.parametrize("ex", sorted(SOL.SOLUTIONS))
def test_reference_solution_passes_and_a_wrong_answer_fails(ex, capsys):
    assert ex in CHECKERS
    assert check(ex, SOL.SOLUTIONS[ex]()) is True, capsys.readouterr().out
    assert ex in SOL.WRONG, f"{ex}: give a wrong answer too, to show the checker can fail"
    assert check(ex, SOL.WRONG[ex]()) is False, f"{ex}: the checker accepted a wrong answer"
    out = capsys.readouterr().out
    assert "right" in out and "not yet" in out


def test_every_checker_has_a_solution_except_the_measured_one():
    assert set(CHECKERS) - set(SOL.SOLUTIONS) == {"12.1"}


def test_gpu_speed_checker_on_both_kinds_of_numbers(capsys):
    # made-up numbers of the two shapes a learner can bring back (no measurement in a test)
    gaining = {"vanilla": {128: 9e4, 512: 5e4, 2048: 1e4}, "retina": {128: 8e4, 512: 6e4, 2048: 3e4}}
    losing = {"vanilla": {128: 9e4, 512: 5e4, 2048: 1e4}, "retina": {128: 9e4, 512: 4e4, 2048: 5e3}}
    assert check("12.1", gaining) is True
    assert check("12.1", losing) is False
    assert check("12.1", {"vanilla": {128: 1.0}, "retina": {128: 1.0}}) is False


def test_unknown_exercise_is_a_clear_error():
    with pytest.raises(KeyError, match="known"):
        check("99.1", None)


def test_an_answer_that_raises_is_reported_not_raised(capsys):
    assert check("00.1", lambda a: 1 / 0) is False
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_patched_keeps_getsource_and_leaves_the_original():
    import inspect
    original = minims.Tensor.backward
    copy = patched(original, "grads[key] + pg", "pg")
    assert "grads[key] = pg if key in grads" in inspect.getsource(copy)
    assert "grads[key] + pg" in inspect.getsource(original)
    assert minims.Tensor.backward is original
    with pytest.raises(ValueError, match="exactly once"):
        patched(original, "no such text", "x")


# Exercises whose answer is, or holds, a word from a fixed set: compared without case or
# surrounding space (lessons.support.exercises.same_word), so "Delay" is "delay".
WORD_ANSWERS = ("04.3", "06.1", "07.2")


def _respelled(answer):
    """The answer as a learner might type it: each word in the other case, with spaces around."""
    if isinstance(answer, str):
        return f"  {answer.swapcase()} "
    if isinstance(answer, dict):
        return {k: _respelled(v) if isinstance(v, str) else v for k, v in answer.items()}
    return answer


@pytest.mark.parametrize("ex", WORD_ANSWERS)
def test_words_are_compared_without_case_or_surrounding_space(ex, capsys):
    right, wrong = SOL.SOLUTIONS[ex](), SOL.WRONG[ex]()
    assert _respelled(right) != right
    assert check(ex, _respelled(right)) is True, capsys.readouterr().out
    assert check(ex, _respelled(wrong)) is False


def test_delay_with_a_capital_passes_and_other_words_are_named(capsys):
    from lessons.support.exercises import same_word
    assert check("07.2", "Delay") is True
    assert check("07.2", "later") is False
    assert '"delay" or "shift"' in capsys.readouterr().out
    assert same_word(" Mul\n", "mul") and not same_word(3, "3") and not same_word("de lay", "delay")


def test_a_number_typed_as_text_is_named_not_called_wrong(capsys):
    # "4" for the section number 4: the line says to give the number, and the check still fails
    right = SOL.SOLUTIONS["02.3"]()
    assert isinstance(right, int) and check("02.3", f" {right} ") is False
    assert f"give it as a number, {right!r}, not as the text ' {right} '" in capsys.readouterr().out
    assert check("02.3", "three") is False and "as a number" not in capsys.readouterr().out


def test_an_answer_with_missing_keys_is_not_right(capsys):
    right = SOL.SOLUTIONS["03.3"]()
    assert check("03.3", right) is True
    partial = {k: v for k, v in right.items() if k in ("-cos", "sin")}
    assert check("03.3", partial) is False
    assert "missing or not a bool: +cos" in capsys.readouterr().out
    assert check("03.3", {"cos": False, **partial}) is True       # "cos" is the same backward as "+cos"
