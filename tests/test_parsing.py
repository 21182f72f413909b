"""Strict output parsers: tagged sections, [[A]]/[[B]] verdicts, [RESULT] scores and category labels."""

import pytest

from judgeloop.parsing import (
    MOD_CLOSE,
    MOD_OPEN,
    TagParse,
    Verdict,
    canonical_verdict_line,
    parse_category,
    parse_score,
    parse_tagged,
    parse_verdict,
)


def tagged(text, finish_reason="stop", prefilled=False):
    return parse_tagged(text, MOD_OPEN, MOD_CLOSE, finish_reason, prefilled=prefilled)


# --- parse_tagged ---------------------------------------------------------------------


def test_tagged_ok():
    out = tagged(f"Sure.\n{MOD_OPEN}\n  Write a poem about dogs.  \n{MOD_CLOSE}\nDone.")
    assert out == TagParse("Write a poem about dogs.", "ok")


def test_tagged_ok_keeps_inner_lines():
    out = tagged(f"{MOD_OPEN}line one\n\nline two{MOD_CLOSE}")
    assert out == TagParse("line one\n\nline two", "ok")


def test_tagged_prefilled():
    out = tagged(f" Write a poem about cats.{MOD_CLOSE} trailing", prefilled=True)
    assert out == TagParse("Write a poem about cats.", "ok")


def test_tagged_prefilled_but_model_repeats_open_tag():
    assert tagged(f"{MOD_OPEN}x{MOD_CLOSE}", prefilled=True).status == "duplicate"


def test_tagged_missing_close_truncated_when_length():
    assert tagged(f"{MOD_OPEN}Write a very long", finish_reason="length") == TagParse(None, "truncated")
    assert tagged("Write a very long", finish_reason="length", prefilled=True) == TagParse(None, "truncated")


def test_tagged_missing_close_unparsed_when_stop():
    assert tagged(f"{MOD_OPEN}Write something", finish_reason="stop") == TagParse(None, "unparsed")
    assert tagged("Write something", finish_reason="stop", prefilled=True) == TagParse(None, "unparsed")


@pytest.mark.parametrize("finish", ["stop", "length"])
def test_tagged_no_tags_is_unparsed(finish):
    assert tagged("I modified the instruction: write a poem.", finish_reason=finish) == TagParse(None, "unparsed")


def test_tagged_duplicate_sections():
    text = f"{MOD_OPEN}one{MOD_CLOSE}\n{MOD_OPEN}two{MOD_CLOSE}"
    assert tagged(text) == TagParse(None, "duplicate")


def test_tagged_duplicate_close():
    assert tagged(f"{MOD_OPEN}one{MOD_CLOSE}{MOD_CLOSE}") == TagParse(None, "duplicate")


@pytest.mark.parametrize("inner", ["", "   ", "\n\t\n"])
def test_tagged_empty_content(inner):
    assert tagged(f"{MOD_OPEN}{inner}{MOD_CLOSE}") == TagParse(None, "empty")


def test_tagged_close_before_open():
    assert tagged(f"{MOD_CLOSE} text {MOD_OPEN}") == TagParse(None, "unparsed")


def test_tagged_only_close_tag():
    assert tagged(f"text{MOD_CLOSE}") == TagParse(None, "unparsed")


def test_tagged_other_tags():
    out = parse_tagged("<a>x</a> <b> y </b>", "<b>", "</b>", "stop")
    assert out == TagParse("y", "ok")


# --- parse_verdict ----------------------------------------------------------------------


@pytest.mark.parametrize("v", ["A", "B"])
def test_verdict_single(v):
    assert parse_verdict(f"Reasoning here.\nFinal verdict: [[{v}]]") == Verdict(v, "ok")


def test_verdict_repeated_same():
    assert parse_verdict("I think [[B]] is right. Final verdict: [[B]]") == Verdict("B", "ok")


def test_verdict_both():
    assert parse_verdict("Maybe [[A]]... no, [[B]].") == Verdict(None, "both")


def test_verdict_both_with_length_is_still_both():
    assert parse_verdict("[[A]] [[B]]", finish_reason="length") == Verdict(None, "both")


def test_verdict_none():
    assert parse_verdict("Both answers are fine.") == Verdict(None, "none")
    assert parse_verdict("") == Verdict(None, "none")


def test_verdict_none_truncated():
    assert parse_verdict("Assistant A explains better because", finish_reason="length") == Verdict(None, "truncated")


def test_verdict_ok_even_when_truncated_after():
    assert parse_verdict("Final verdict: [[A]] and also", finish_reason="length") == Verdict("A", "ok")


def test_verdict_inside_fenced_code_ignored():
    text = "The answer prints the marker:\n```python\nprint('[[B]]')\n```\nFinal verdict: [[A]]"
    assert parse_verdict(text) == Verdict("A", "ok")


def test_verdict_only_in_fenced_code_is_none():
    assert parse_verdict("```\n[[A]]\n```") == Verdict(None, "none")


def test_verdict_in_backticks_is_a_verdict():
    assert parse_verdict("Final verdict: `[[B]]`") == Verdict("B", "ok")
    assert parse_verdict("The format is `[[A]]` or `[[B]]`. Final verdict: [[B]]") == Verdict("B", "ok")


def test_verdict_after_an_unclosed_fence_is_a_verdict():
    text = "Response A's code:\n```python\ndef f(x):\n    return x\n\nA answers the question. Final verdict: [[A]]"
    assert parse_verdict(text) == Verdict("A", "ok")
    # an unclosed fence hides nothing, so a marker on each side is ambiguous
    assert parse_verdict("Final verdict: [[A]]\n```\ncode [[B]] never closed") == Verdict(None, "both")


@pytest.mark.parametrize("text", [
    'End with your final verdict in exactly this form: "[[A]]" if Response A',  # truncated echo of the format line
    "I will output [[A]] if",
    'output "[[A]]" if Response A is better, or "[[B]]" if Response B is better.',
])
def test_echo_of_the_answer_format_is_not_a_verdict(text):
    assert parse_verdict(text, finish_reason="length") == Verdict(None, "truncated")
    assert parse_verdict(text + "\nFinal verdict: [[B]]") == Verdict("B", "ok")


def test_verdict_inline_code_does_not_span_lines():
    # a lone backtick must not hide a verdict on the next line
    assert parse_verdict("Use the ` key.\nFinal verdict: [[A]] and `x`") == Verdict("A", "ok")


def test_verdict_two_fences():
    text = "```\n[[A]]\n```\nverdict [[B]]\n```\n[[A]]\n```"
    assert parse_verdict(text) == Verdict("B", "ok")


@pytest.mark.parametrize("text", ["[[a]]", "[[b]]", "[[A]", "[A]]", "[A]", "[[ A ]]", "[[C]]", "[[AB]]", "((A))"])
def test_verdict_malformed_markers_not_accepted(text):
    assert parse_verdict(f"Final verdict: {text}") == Verdict(None, "none")


def test_verdict_lowercase_does_not_mask_real_one():
    assert parse_verdict("not [[a]] but [[B]]") == Verdict("B", "ok")


@pytest.mark.parametrize("v", ["A", "B"])
def test_canonical_verdict_line_round_trips(v):
    line = canonical_verdict_line(v)
    assert line == f"Final verdict: [[{v}]]"
    assert parse_verdict(line) == Verdict(v, "ok")


# --- parse_score ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,finish,expected",
    [
        ("Good answer. [RESULT] 4", "stop", (4, "ok")),
        ("[RESULT]5", "stop", (5, "ok")),
        ("Feedback... [RESULT] 3.", "stop", (3, "ok")),
        ("[RESULT] 2 ... to repeat: [RESULT] 2", "stop", (2, "ok")),
        ("[RESULT] 2 no wait [RESULT] 4", "stop", (None, "multiple")),
        ("[RESULT] 6", "stop", (None, "out_of_range")),
        ("[RESULT] 0", "stop", (None, "out_of_range")),
        ("[RESULT] four", "stop", (None, "out_of_range")),
        ("[RESULT] 3.5", "stop", (None, "out_of_range")),
        ("I think it deserves a 4", "stop", (None, "none")),
        ("The response is", "length", (None, "truncated")),
    ],
)
def test_parse_score(text, finish, expected):
    assert parse_score(text, finish) == expected


# --- parse_category -----------------------------------------------------------------------

LABELS = ["reasoning", "math", "coding", "writing", "factual", "advice", "safety"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("math", "math"),
        ("Math", "math"),
        ("  CODING.\n", "coding"),
        ("Category: reasoning", "reasoning"),
        ("The category is **writing**.", "writing"),
        ("math, or maybe reasoning", "math"),  # the first label in the answer wins
        ("reasoning (not math)", "reasoning"),
        ("mathematics", None),  # whole words only
        ("poetry", None),
        ("", None),
    ],
)
def test_parse_category(text, expected):
    assert parse_category(text, LABELS) == expected


def test_parse_category_returns_label_as_configured():
    assert parse_category("reasoning", ["Reasoning", "Math"]) == "Reasoning"


@pytest.mark.parametrize("label", ["role-play", "step2", "código"])
def test_parse_category_label_with_non_letters(label):
    assert parse_category(label, ["math", label]) == label
