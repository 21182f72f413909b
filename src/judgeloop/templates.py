"""Prompt texts judgeloop sends to models, written for this project.

Kept in one place so a reader can see every instruction a model receives.
"""

from __future__ import annotations

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

End with your final verdict in exactly this form: "[[A]]" if Response A is better, or "[[B]]" if Response B is better.

[User instruction]
{instruction}

[Response A]
{response_a}

[Response B]
{response_b}"""

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


def judge_messages(instruction: str, response_a: str, response_b: str) -> tuple[dict[str, str], ...]:
    text = JUDGE_PROMPT.format(instruction=instruction, response_a=response_a, response_b=response_b)
    return ({"role": "user", "content": text},)


def answer_messages(instruction: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": instruction},)
