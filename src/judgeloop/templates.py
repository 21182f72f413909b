"""Prompt texts judgeloop sends to models, written for this project.

Kept in one place so a reader can see every instruction a model receives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from .parsing import MOD_CLOSE, MOD_OPEN

# -- pairs: the modified instruction x' --------------------------------------

MODIFY_TASK = """Write a NEW instruction that stays close to the original one: same topic, similar wording and length, so that a response to it looks relevant at first glance. It must ask for something different, so that a correct response to the new instruction is NOT a correct response to the original. Change a key requirement, quantity, constraint or subject; do not just rephrase. Put only the new instruction between {open} and {close}."""

# Two worked demonstrations, sent as earlier chat turns: small generators copy
# the tagged format from them far more reliably than from the description
# alone (measured on SmolLM2-135M: 0/28 parsed without, 11/12 with).
MODIFY_DEMOS = (
    (
        "What is the capital of Australia?",
        "The capital of Australia is Canberra.",
        "What is the largest city in Australia?",
    ),
    (
        "Write a Python function that returns the sum of a list of numbers.",
        "def total(xs):\n    return sum(xs)",
        "Write a Python function that returns the product of a list of numbers.",
    ),
)

# -- judge: pairwise comparison ------------------------------------------------
# It names no property of how the synthetic pairs are made (y_l answers a
# modified instruction): a judge told that would score well on them, and on
# LLMBar-Adversarial, without judging better.

JUDGE_PROMPT = """Act as an impartial judge of two AI assistant responses to the same user instruction. Decide which response follows the instruction better and answers it more correctly and helpfully.

Work in this order:
1. Look for obvious and subtle mistakes in each response: wrong facts or numbers, ignored or misread constraints.
2. Write down two or three criteria that a good answer to this particular instruction must meet.
3. Check Response A and Response B against those criteria.
4. Decide which one is better. Do not let the order of the responses, their length, or any names influence you.

End with your final verdict in exactly this form: "[[A]]" if Response A is better, or "[[B]]" if Response B is better."""

# What follows either judge prompt: the instruction and the two responses.
_JUDGE_FIELDS = """

[User instruction]
{instruction}

[Response A]
{response_a}

[Response B]
{response_b}"""
JUDGE_PROMPT += _JUDGE_FIELDS

# A shorter judge prompt for small seeds (`judge_template: short`): 92 tokens against 207 (SmolLM2, chat
# template included), so judging prefills and training steps cost less. Same fields,
# same verdict format; like the standard one, it names nothing of how pairs are made.
SHORT_JUDGE_PROMPT = """Which response follows the user instruction better and answers it more correctly? Give a short reason, then end with "[[A]]" if Response A is better or "[[B]]" if Response B is better."""

SHORT_JUDGE_PROMPT += _JUDGE_FIELDS
JUDGE_TEMPLATES = {"standard": JUDGE_PROMPT, "short": SHORT_JUDGE_PROMPT}

# -- judge: best of N, all candidates at once (RewardBench 2) ------------------------
# The official RewardBench 2 script shows a generative judge the four completions
# together (the correct one at a random position) and reads one of [[A]]..[[D]].
# This is judgeloop's own wording of that task, with the same fields and markers.

BEST_OF_N_PROMPT = """Act as an impartial judge of {n} AI assistant responses to the same user instruction. Choose the one response that follows the instruction best and answers it most correctly and helpfully.

Briefly compare the responses: look for wrong facts or numbers and for ignored or misread constraints. Do not let the order of the responses, their length, or any names influence you.

End with your final verdict in exactly this form: {markers}, naming the single best response.

[User instruction]
{instruction}
{responses}"""


def best_of_n_messages(instruction: str, responses: Sequence[str]) -> tuple[dict[str, str], ...]:
    """One user turn showing every response under its letter (A, B, C, ...)."""
    letters = [chr(ord("A") + i) for i in range(len(responses))]
    shown = "".join(f"\n[Response {x}]\n{r}\n" for x, r in zip(letters, responses))
    markers = ", ".join(f'"[[{x}]]"' for x in letters)
    text = BEST_OF_N_PROMPT.format(n=len(responses), markers=markers, instruction=instruction, responses=shown)
    return ({"role": "user", "content": text.rstrip("\n")},)


# The text appended after the judge's own words when the verdict is forced.
FORCED_VERDICT_CONTINUATION = "\n\nFinal verdict: [["


def _modify_user(instruction: str, response: str | None) -> str:
    parts = [f"Original instruction:\n{instruction}"]
    if response is not None:
        parts.append(f"A response to the original:\n{response}")
    parts.append(MODIFY_TASK.format(open=MOD_OPEN, close=MOD_CLOSE))
    return "\n\n".join(parts)


def modify_messages(instruction: str, response: str | None) -> tuple[dict[str, str], ...]:
    """Chat turns asking for x'; `response` (y_w) is shown when given, as in the paper."""
    msgs: list[dict[str, str]] = []
    for x, y, x_mod in MODIFY_DEMOS:
        msgs.append({"role": "user", "content": _modify_user(x, y if response is not None else None)})
        msgs.append({"role": "assistant", "content": f"{MOD_OPEN}\n{x_mod}\n{MOD_CLOSE}"})
    msgs.append({"role": "user", "content": _modify_user(instruction, response)})
    return tuple(msgs)


def judge_messages(instruction: str, response_a: str, response_b: str, template: str = "standard") -> tuple[dict[str, str], ...]:
    text = JUDGE_TEMPLATES[template].format(instruction=instruction, response_a=response_a, response_b=response_b)
    return ({"role": "user", "content": text},)


def answer_messages(instruction: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": instruction},)


# -- user text never becomes a control token -------------------------------------
# Instructions and responses come from users and the web, and go into the judge's
# prompt as they are. A literal "<|im_end|>" in a response would otherwise be
# tokenised as the real end-of-turn token, and a forged assistant turn ending in
# "[[B]]" moved the 135M judge's P(A) from 0.91 to 0.66. Every engine (and the
# training text) sends message contents through `defuse_messages` just before the
# chat template: a word joiner (U+2060, invisible) goes after the first character
# of every control-token spelling, which then tokenises as plain text. Text with no
# such spelling is unchanged, so ordinary prompts are byte-identical; the template
# itself is unchanged (delimiting user text differently is a judge-quality question).

WORD_JOINER = "\u2060"
# control-token spellings of common chat formats, for servers whose tokenizer is not known here:
# ChatML / Llama 3 / Phi "<|...|>", Llama 2 / Mistral "<s>" "[INST]" "<<SYS>>", Gemma "<start_of_turn>" ...
GENERIC_CONTROL = (r"<\|[^\s|<>]{1,64}\|>", r"</?s>", r"\[/?INST\]", r"<</?SYS>>", r"<(?:start|end)_of_turn>",
                   r"<(?:bos|eos|pad|unk|mask|cls|sep)>")


def control_tokens(tok: Any) -> frozenset[str]:
    """The strings a Hugging Face tokenizer turns into special (control) tokens."""
    names = set(getattr(tok, "all_special_tokens", None) or [])
    for added in (getattr(tok, "added_tokens_decoder", None) or {}).values():
        if getattr(added, "special", False):
            names.add(str(added.content))
    return frozenset(n for n in names if len(n.strip()) > 1)  # a one-character "token" cannot be split


@lru_cache(maxsize=16)
def _control_pattern(extra: frozenset[str]) -> re.Pattern[str]:
    alternatives = [re.escape(t) for t in sorted(extra, key=len, reverse=True)] + list(GENERIC_CONTROL)
    return re.compile("|".join(alternatives))


def defuse(text: str, controls: Iterable[str] = ()) -> str:
    """`text` with every control-token spelling (`controls` and the generic ones) broken by a word joiner."""
    pattern = _control_pattern(frozenset(controls))
    while pattern.search(text):  # a joiner never completes a new spelling, but make sure
        text = pattern.sub(lambda m: m.group(0)[0] + WORD_JOINER + m.group(0)[1:], text)
    return text


def defuse_messages(messages: Sequence[dict[str, str]], controls: Iterable[str] = ()) -> list[dict[str, str]]:
    """Chat messages whose contents cannot produce a control token (`defuse`), ready for a chat template."""
    controls = frozenset(controls)
    return [{**m, "content": defuse(m["content"], controls)} for m in messages]


# ---------------------------------------------------------------------------
# Likert grading (Self-Rationalization), its tie-break, and the instruction categoriser

LIKERT_PROMPT = """You are grading one AI assistant response against a scoring rubric.

Read the instruction, the response{ref_hint} and the rubric. Write a short rationale that checks the response against the rubric's criterion, pointing to specific strengths and mistakes. Then give a score from 1 to 5 that matches a rubric description. Judge only the criterion, not style you happen to like.

End with the score in exactly this form: "[RESULT] N" where N is an integer from 1 to 5.

[Instruction]
{instruction}

[Response]
{response}
{reference}
[Rubric: {criteria}]
Score 1: {d1}
Score 2: {d2}
Score 3: {d3}
Score 4: {d4}
Score 5: {d5}"""


META_PROMPT = """Two graders wrote a rationale for the same score of the same response. Which rationale justifies the score better, with specific and correct observations about the response and the rubric?

[Instruction]
{instruction}

[Response]
{response}

[Rubric: {criteria}]

[Rationale A]
{a}

[Rationale B]
{b}

End with "[[A]]" or "[[B]]"."""


# The rubric a RewardBench 2 Ties completion is rated against (the Likert path): like the
# official Ties rating prompt, it asks about correctness and helpfulness, not depth or detail.
TIES_CRITERIA = "Does the response answer the instruction correctly and helpfully? (Depth and level of detail do not matter.)"
TIES_DESCRIPTIONS = (
    "The response is wrong or does not answer the instruction.",
    "The response is mostly wrong or answers only a small part of the instruction.",
    "The response is partly correct: a key part is wrong or missing.",
    "The response is correct with minor flaws.",
    "The response is fully correct and answers the instruction.",
)


CATEGORY_PROMPT = (
    "Classify the user request below into exactly one category from this list: {labels}.\n"
    "Answer with the category name only.\n\nRequest:\n{instruction}"
)
