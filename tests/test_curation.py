"""Rejection-sampling rules on hand-built judgment tables."""

from __future__ import annotations

import pytest

from judgeloop.config import CurationConfig
from judgeloop.curation import curate_sft, training_completion


def J(pair: str, order: str, idx: int, verdict: str | None, source: str | None = "parsed", status: str = "ok"):
    winner = "A" if order == "wl" else "B"
    return {
        "judgment_id": f"it1:{pair}:{order}:{idx}",
        "pair_id": pair,
        "order": order,
        "verdict": verdict,
        "verdict_source": source if verdict else None,
        "parse_status": status,
        "correct": None if verdict is None else verdict == winner,
        "text": f"reasoning for {pair} {order} {idx}" + (f" [[{verdict}]]" if source == "parsed" and verdict else ""),
    }


PAIRS = {p: {"pair_id": p, "instruction": f"q{p}", "response_w": f"good {p}", "response_l": f"bad {p}"} for p in "pqrst"}


def cfg(**kw) -> CurationConfig:
    return CurationConfig(**({"balance": "none"} | kw))


def test_keeps_only_correct_and_one_per_pair():
    js = [J("p", "wl", 0, "A"), J("p", "wl", 1, "B"), J("p", "lw", 0, "B"), J("q", "wl", 0, "B"), J("q", "lw", 0, None, status="none")]
    rows, funnel = curate_sft(js, PAIRS, cfg(), "it1")
    assert [r["pair_id"] for r in rows] == ["p"]  # q has no correct judgment
    assert rows[0]["judgment_id"] in {"it1:p:wl:0", "it1:p:lw:0"}
    assert funnel["judgments"] == 5 and funnel["correct"] == 2 and funnel["removed_incorrect_or_no_verdict"] == 3
    assert funnel["groups_without_correct"] == 1 and funnel["one_per_group"] == 1 and funnel["kept"] == 1


def test_choice_is_seeded_and_deterministic():
    js = [J("p", o, i, "A" if o == "wl" else "B") for o in ("wl", "lw") for i in range(5)]
    picks = {curate_sft(js, PAIRS, cfg(seed=s), "it1")[0][0]["judgment_id"] for s in range(20)}
    assert len(picks) > 1  # different seeds pick different samples
    again = [curate_sft(js, PAIRS, cfg(seed=7), "it1")[0][0]["judgment_id"] for _ in range(3)]
    assert len(set(again)) == 1


def test_per_pair_order_keeps_one_per_order():
    js = [J("p", "wl", 0, "A"), J("p", "wl", 1, "A"), J("p", "lw", 0, "B")]
    rows, _ = curate_sft(js, PAIRS, cfg(per="pair_order"), "it1")
    assert sorted(r["order"] for r in rows) == ["lw", "wl"]


def test_min_correct_fraction_drops_uncertain_groups():
    js = [J("p", "wl", i, "A" if i < 3 else "B") for i in range(4)]  # 3/4 correct
    js += [J("q", "wl", i, "A" if i < 1 else "B") for i in range(4)]  # 1/4 correct
    rows, funnel = curate_sft(js, PAIRS, cfg(min_correct_fraction=0.5), "it1")
    assert [r["pair_id"] for r in rows] == ["p"]
    assert funnel["groups_below_min_correct_fraction"] == 1


def test_balance_truncate_equalises_sides():
    js = [J(p, "wl", 0, "A") for p in "pqrs"] + [J("t", "lw", 0, "B")]
    rows, funnel = curate_sft(js, PAIRS, cfg(balance="truncate"), "it1")
    assert sorted(r["verdict"] for r in rows) == ["A", "B"]
    assert funnel["a_wins_before_balance"] == 4 and funnel["removed_by_balance"] == 3


def test_balance_that_empties_the_set_names_the_missing_side():
    js = [J(p, "wl", 0, "A") for p in "pqr"] + [J("p", "lw", 0, "A")]  # position-biased judge: always A
    rows, funnel = curate_sft(js, PAIRS, cfg(balance="truncate"), "it1")
    assert rows == []
    assert "no kept judgment says 'B wins'" in funnel["empty_reason"]


def test_balance_none_keeps_imbalance():
    js = [J(p, "wl", 0, "A") for p in "pqr"]
    rows, _ = curate_sft(js, PAIRS, cfg(balance="none"), "it1")
    assert len(rows) == 3


def test_forced_verdict_gets_canonical_line_and_prompt_matches_order():
    js = [J("p", "lw", 0, "B", source="forced", status="none")]
    rows, _ = curate_sft(js, PAIRS, cfg(), "it1")
    r = rows[0]
    assert r["completion"].endswith("Final verdict: [[B]]")
    # order lw: the worse response is shown as A
    assert r["prompt"].index("bad p") < r["prompt"].index("good p")
    assert training_completion("text [[A]]", "A", "parsed") == "text [[A]]"


def test_no_judgments():
    rows, funnel = curate_sft([], PAIRS, cfg(), "it1")
    assert rows == [] and funnel["empty_reason"] == "no judgments to curate"


@pytest.mark.parametrize("bad", [{"per": "prompt"}, {"balance": "oversample"}, {"min_correct_fraction": 1.5}])
def test_invalid_curation_config(bad):
    with pytest.raises(ValueError):
        CurationConfig(**bad)
