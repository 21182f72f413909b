"""Synthetic pairs: which generations become a judged pair, and why the others do not."""

import pytest

from judgeloop.pairs import _status, same_text

X = "Name three rivers in Europe."


@pytest.mark.parametrize(("x_mod", "y_l", "mod_status", "expected"), [
    ("Name three mountains in Europe.", "Alps, Pyrenees, Carpathians.", "ok", "ok"),
    ("name three rivers in europe", "Rhine.", "ok", "same_instruction"),
    ("Write a Python function that returns the sum of a list of numbers.", "def f(xs): return sum(xs)", "ok", "copied_demo"),
    ("What is the largest city in Australia?", "Sydney.", "ok", "copied_demo"),
    ("Name three mountains in Europe.", "", "ok", "empty_l"),
    ("Name three mountains in Europe.", "The Rhine, the Danube, the Seine.", "ok", "same_as_w"),
    (None, None, "truncated", "truncated"),
    (None, None, "unparsed", "unparsed"),
])
def test_status_of_a_generated_pair(x_mod, y_l, mod_status, expected):
    assert _status(X, "The Rhine, the Danube, the Seine.", mod_status, x_mod, y_l) == expected


def test_an_instruction_that_is_a_demonstration_may_be_modified_into_the_other_demo_text():
    demo_x = "Write a Python function that returns the sum of a list of numbers."
    assert _status(demo_x, "def total(xs): ...", "ok", "Write a Python function that returns the product of a list of numbers.",
                   "def p(xs): ...") == "copied_demo"
    assert _status(demo_x, "def total(xs): ...", "ok", "Write a Python function that returns the mean of a list.",
                   "def m(xs): ...") == "ok"


def test_same_text_ignores_case_space_and_punctuation():
    assert same_text("Calculate 2^10.", "calculate 2^10") and not same_text("2^10", "2^11")
