"""Rejection-sampling rules on hand-built judgment tables."""

from __future__ import annotations

import pytest

from judgeloop.config import CurationConfig
from judgeloop.curation import curate_dpo, curate_sft, training_completion


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


# --- DPO pairs: chosen = correct, rejected = wrong / unparsed / tie of the same pair and order


def test_dpo_no_correct_sample_gives_no_pair():
    js = [J("p", "wl", i, "B") for i in range(3)] + [J("p", "wl", 3, None, status="none")]
    rows, funnel = curate_dpo(js, PAIRS, cfg(), "it1")
    assert rows == [] and funnel["groups_none_correct"] == 1
    assert funnel["empty_reason"] == "no pair and order has both a correct and an incorrect judgment"


def test_dpo_all_correct_gives_no_pair():
    js = [J("p", "wl", i, "A") for i in range(4)]
    rows, funnel = curate_dpo(js, PAIRS, cfg(), "it1")
    assert rows == [] and funnel["groups_all_correct"] == 1 and funnel["kept"] == 0


def test_dpo_tie_and_unparsed_are_rejected_with_reason():
    # both tags written: a tie, no verdict; counts as a rejected candidate
    js = [J("p", "wl", 0, "A"), J("p", "wl", 1, None, status="both"), J("p", "wl", 2, "B")]
    rows, funnel = curate_dpo(js, PAIRS, cfg(pairs_per_input=5), "it1")
    assert funnel["groups_mixed"] == 1 and funnel["combinations"] == 2 and len(rows) == 2
    by_rejected = {r["rejected_judgment_id"]: r for r in rows}
    assert by_rejected["it1:p:wl:1"]["rejected_reason"] == "unparsed"
    assert by_rejected["it1:p:wl:1"]["rejected_verdict"] is None
    assert by_rejected["it1:p:wl:2"]["rejected_reason"] == "wrong"
    assert all(r["chosen_judgment_id"] == "it1:p:wl:0" and r["chosen_verdict"] == "A" for r in rows)
    assert rows[0]["chosen"].endswith("[[A]]") and rows[0]["chosen"] != rows[0]["rejected"]


def test_dpo_combinations_are_seeded_distinct_and_capped():
    js = [J("p", "lw", i, "B") for i in range(3)] + [J("p", "lw", i, "A") for i in range(3, 6)]  # 3 x 3 = 9
    rows, funnel = curate_dpo(js, PAIRS, cfg(pairs_per_input=4), "it1")
    ids = [(r["chosen_judgment_id"], r["rejected_judgment_id"]) for r in rows]
    assert len(ids) == len(set(ids)) == 4 and funnel["combinations"] == 4
    assert ids == [(r["chosen_judgment_id"], r["rejected_judgment_id"]) for r in curate_dpo(js, PAIRS, cfg(pairs_per_input=4), "it1")[0]]
    other = {tuple((r["chosen_judgment_id"], r["rejected_judgment_id"]) for r in curate_dpo(js, PAIRS, cfg(pairs_per_input=4, seed=s), "it1")[0]) for s in range(10)}
    assert len(other) > 1
    # the shown prompt follows the order: lw shows the worse response as A
    assert rows[0]["prompt"].index("bad p") < rows[0]["prompt"].index("good p")


def test_dpo_balance_follows_balance_unless_dpo_balance_is_set():
    # a position-biased judge: the only mixed groups are ones where 'B wins' is correct
    js = [J("p", "lw", 0, "B"), J("p", "lw", 1, "A"), J("q", "lw", 0, "B"), J("q", "lw", 1, "A")]
    rows, funnel = curate_dpo(js, PAIRS, cfg(balance="truncate"), "it1")
    assert rows == [] and "no DPO pair has a chosen judgment saying 'A wins'" in funnel["empty_reason"]
    rows, funnel = curate_dpo(js, PAIRS, cfg(balance="truncate", dpo_balance="none"), "it1")
    assert len(rows) == 2 and funnel["b_wins_before_balance"] == 2 and "empty_reason" not in funnel
    rows, _ = curate_dpo(js, PAIRS, cfg(balance="none", dpo_balance="truncate"), "it1")
    assert rows == []


def test_dpo_truncate_equalises_chosen_verdicts():
    js = [J("p", "wl", 0, "A"), J("p", "wl", 1, "B"), J("q", "lw", 0, "B"), J("q", "lw", 1, "A"),
          J("r", "lw", 0, "B"), J("r", "lw", 1, "A")]
    rows, funnel = curate_dpo(js, PAIRS, cfg(balance="truncate"), "it1")
    assert sorted(r["chosen_verdict"] for r in rows) == ["A", "B"]
    assert funnel["a_wins_before_balance"] == 1 and funnel["b_wins_before_balance"] == 2 and funnel["kept"] == 2


def test_dpo_balance_value_is_checked():
    with pytest.raises(ValueError, match="dpo_balance"):
        CurationConfig(dpo_balance="oversample")
