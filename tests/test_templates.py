"""What the judge is told."""

import re

from judgeloop.templates import JUDGE_PROMPT, judge_messages


def test_the_judge_prompt_does_not_give_away_how_the_pairs_are_made():
    # y_l answers a modified instruction; telling the judge so inflates synthetic accuracy
    text = JUDGE_PROMPT.lower()
    assert not re.search(r"different (question|instruction)|slightly different|modified", text)


def test_the_judge_prompt_asks_for_the_verdict_format_and_holds_both_responses():
    (msg,) = judge_messages("Q?", "first", "second")
    assert msg["role"] == "user" and '"[[A]]"' in msg["content"] and '"[[B]]"' in msg["content"]
    assert msg["content"].index("first") < msg["content"].index("second")
