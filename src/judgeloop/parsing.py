"""Strict parsers for model outputs: tagged sections and `[[A]]`/`[[B]]` verdicts.

Nothing here guesses: an output that does not follow the format gets a
status saying why, and callers keep that status instead of a made-up value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ---------------------------------------------------------------------------
# Tagged sections (the pairs stage's modified instruction)

MOD_OPEN, MOD_CLOSE = "<modified_instruction>", "</modified_instruction>"


@dataclass(frozen=True)
class TagParse:
    content: str | None
    status: str  # ok | unparsed | truncated | empty | duplicate


def parse_tagged(text: str, open_tag: str, close_tag: str, finish_reason: str, prefilled: bool = False) -> TagParse:
    """Extract the one section between `open_tag` and `close_tag`.

    `prefilled`: the opening tag was part of the prompt, so `text` starts
    inside the section. A missing closing tag is `truncated` when generation
    hit its token limit and `unparsed` otherwise.
    """
    body = open_tag + text if prefilled else text
    n_open, n_close = body.count(open_tag), body.count(close_tag)
    if n_open == 0:
        return TagParse(None, "unparsed")
    if n_open > 1 or n_close > 1:
        return TagParse(None, "duplicate")
    if n_close == 0:
        return TagParse(None, "truncated" if finish_reason == "length" else "unparsed")
    start = body.index(open_tag) + len(open_tag)
    end = body.index(close_tag)
    if end < start:
        return TagParse(None, "unparsed")
    content = body[start:end].strip()
    return TagParse(content, "ok") if content else TagParse(None, "empty")


# ---------------------------------------------------------------------------
# Pairwise verdicts

# a closed code block (a response quoted by the judge); an unclosed fence hides nothing
_CLOSED_FENCE_RE = re.compile(r"```.*?```", re.S)
# the answer format echoed back, e.g. '"[[A]]" if Response A is better, or "[[B]]" if ...'
_FORMAT_ECHO_RE = re.compile(r"\[\[[A-Z]\]\][\"'`\u201d]?\s*(?:if|or)\b", re.I)


@dataclass(frozen=True)
class Verdict:
    verdict: str | None  # A | B | None (best-of-N: one of its letters)
    status: str  # ok | none | both (two or more letters) | truncated


def parse_choice(text: str, letters: str, finish_reason: str = "stop") -> Verdict:
    """Exactly one of the markers `[[X]]` for X in `letters` (possibly repeated) is a verdict.

    Not verdicts: markers inside a closed code block, and the answer format
    echoed back ("[[A]]" if ..., [[A]] or [[B]]). A marker in inline
    backticks is one (`[[A]]`), and so is a marker after a code fence that
    was never closed. Two different markers -> `both`; none -> `none`, or
    `truncated` when the text was cut by the token limit.
    """
    visible = _FORMAT_ECHO_RE.sub(" ", _CLOSED_FENCE_RE.sub(" ", text))
    found = set(re.findall(rf"\[\[([{letters}])\]\]", visible))
    if len(found) == 1:
        return Verdict(found.pop(), "ok")
    if len(found) > 1:
        return Verdict(None, "both")
    return Verdict(None, "truncated" if finish_reason == "length" else "none")


def parse_verdict(text: str, finish_reason: str = "stop") -> Verdict:
    """A pairwise verdict: :func:`parse_choice` over A and B."""
    return parse_choice(text, "AB", finish_reason)


def canonical_verdict_line(verdict: str) -> str:
    return f"Final verdict: [[{verdict}]]"


# ---------------------------------------------------------------------------
# Likert scores and instruction categories

_RESULT_RE = re.compile(r"\[RESULT\]\s*([^\s\]\[]*)")


def parse_score(text: str, finish_reason: str = "stop") -> tuple[int | None, str]:
    """(score, status): ok | none | truncated | multiple | out_of_range.

    Repeating the same score is fine; two different scores are `multiple`.
    A `[RESULT]` followed by anything but an integer 1..5 is `out_of_range`.
    """
    found = _RESULT_RE.findall(text)
    if not found:
        return None, "truncated" if finish_reason == "length" else "none"
    values = []
    for tok in found:
        m = re.match(r"^(\d+)(?:\.0+)?[.,;:!)]*$", tok)
        if not m or not 1 <= int(m.group(1)) <= 5:
            return None, "out_of_range"
        values.append(int(m.group(1)))
    if len(set(values)) > 1:
        return None, "multiple"
    return values[0], "ok"


def parse_category(text: str, labels: list[str]) -> str | None:
    """The label that appears earliest, as a whole word, in the model's answer."""
    folded = text.casefold()
    best: tuple[int, str] | None = None
    for lab in labels:
        m = re.search(rf"(?<!\w){re.escape(lab.casefold())}(?!\w)", folded)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), lab)
    return best[1] if best else None
