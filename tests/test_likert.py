"""Self-Rationalization pieces: loaders, [RESULT] parsing, curation, metrics."""

from __future__ import annotations

import json

import pytest

from judgeloop.likert import (
    RubricItem,
    curate_likert,
    likert_metrics,
    parse_items,
    rubric_rows,
    synthetic_items,
    training_text,
)
from judgeloop.loaders import InputError

DESCS = {f"score{k}_description": f"desc {k}" for k in range(1, 6)}


def test_builtin_rubrics_load_with_spread_gold():
    where, rows = rubric_rows("builtin", None)
    items = parse_items(rows, "judgeloop", where, "builtin")
    assert len(items) >= 60
    golds = [i.gold_score for i in items]
    assert all(golds.count(g) >= 10 for g in range(1, 6))
    assert len({i.item_id for i in items}) == len(items)


def test_prometheus_layout(tmp_path):
    row = {"orig_instruction": "q", "orig_response": "r", "orig_reference_answer": "ref", "orig_criteria": "c",
           "orig_score": "4", **{f"orig_{k}": v for k, v in DESCS.items()}}
    p = tmp_path / "fc.jsonl"
    p.write_text(json.dumps(row) + "\n")
    where, rows = rubric_rows("jsonl", str(p))
    (item,) = parse_items(rows, "prometheus", where, "fc")
    assert item.gold_score == 4 and item.reference_answer == "ref" and item.descriptions[4] == "desc 5"
    assert item.item_id == "fc:0"


def test_biggen_layout_nested_rubric(tmp_path):
    row = {"id": "b1", "capability": "reasoning", "input": "q", "response": "r", "reference_answer": None,
           "human_score": 2, "score_rubric": {"criteria": "c", **DESCS}}
    (item,) = parse_items([row], "biggen", "mem", "bg")
    assert item.item_id == "bg:b1" and item.gold_score == 2 and item.reference_answer is None and item.capability == "reasoning"


@pytest.mark.parametrize("bad,msg", [({"human_score": 7}, "must be an integer from 1 to 5, got a number 7"),
                                     ({"human_score": "x"}, "must be an integer from 1 to 5, got text 'x'"),
                                     ({"human_score": 3.5}, "got a number 3.5"), ({"human_score": True}, "got a boolean True"),
                                     ({"human_score": float("nan")}, "got a number nan"),
                                     ({"input": ""}, "'input' is empty"), ({"input": 5}, "'input' must be a string, got a number 5"),
                                     ({"id": ["x"]}, "'id' must be a non-empty id")])
def test_layout_errors_name_row_and_field(bad, msg):
    row = {"id": "b1", "input": "q", "response": "r", "human_score": 2, "score_rubric": {"criteria": "c", **DESCS}} | bad
    with pytest.raises(InputError, match=msg) as e:
        parse_items([row], "biggen", "file.jsonl", "bg")
    assert "file.jsonl: row 0" in str(e.value)


def test_missing_rubric_description():
    row = {"id": "b1", "input": "q", "response": "r", "human_score": 2, "score_rubric": {"criteria": "c"}}
    with pytest.raises(InputError, match="score_rubric.score1_description"):
        parse_items([row], "biggen", "f", "bg")


def test_synthetic_items_gold_high_for_w_low_for_l():
    pairs = [{"pair_id": "p", "gen_status": "ok", "instruction": "x", "response_w": "w", "response_l": "l", "category": "math"},
             {"pair_id": "q", "gen_status": "unparsed", "instruction": "x", "response_w": "w", "response_l": None, "category": ""}]
    items = synthetic_items(pairs, 5, 1)
    assert [(i.item_id, i.gold_score) for i in items] == [("synthetic:p:w", 5), ("synthetic:p:l", 1)]


ITEM = RubricItem("i", "q", "r", None, "c", ("1", "2", "3", "4", "5"), 4, "", "t")


def J(idx: int, score: int | None, source: str | None = "parsed", item: str = "i", gold: int = 4):
    return {"judgment_id": f"it1:{item}:{idx}", "item_id": item, "score": score, "gold_score": gold,
            "score_source": source if score else None, "text": f"rationale {idx}" + (f" [RESULT] {score}" if source == "parsed" and score else "")}


def test_curation_chosen_closest_rejected_farthest_or_unparsed():
    js = [J(0, 4), J(1, 2), J(2, 3), J(3, None, None)]
    dpo, sft, funnel = curate_likert(js, {"i": ITEM}, "it1", 0, pairs_per_input=1)
    (row,) = dpo
    assert row["chosen_judgment_id"] == "it1:i:0"
    assert row["rejected_judgment_id"] == "it1:i:3" and row["rejected_reason"] == "unparsed"  # unparsed is the farthest
    assert len(sft) == 1 and sft[0]["verdict"] == "4"


def test_curation_no_contrast_and_all_unparsed():
    items = {"i": ITEM, "k": ITEM}
    js = [J(0, 3), J(1, 5)] + [J(0, None, None, item="k"), J(1, None, None, item="k")]  # equal distance; none parsed
    dpo, sft, funnel = curate_likert(js, items, "it1", 0, pairs_per_input=1)
    assert dpo == [] and funnel["no_contrast"] == 1 and funnel["no_parsed"] == 1 and "empty_reason" in funnel


def test_curation_ties_broken_by_seeded_draw_or_meta_judge():
    js = [J(0, 4), J(1, 4), J(2, 4), J(3, 1)]
    picks = {curate_likert(js, {"i": ITEM}, "it1", s, 1)[0][0]["chosen_judgment_id"] for s in range(12)}
    assert len(picks) > 1
    dpo, _, funnel = curate_likert(js, {"i": ITEM}, "it1", 0, 1, tie_break="meta_judge", meta_judge=lambda item, c: c[-1])
    assert dpo[0]["chosen_judgment_id"] == "it1:i:2" and funnel["ties_broken_meta_judge"] == 1


def test_curation_forced_score_is_never_chosen_by_default():
    js = [J(0, 4, "forced"), J(1, 2), J(2, 1)]  # the forced 4 is the gold score, but not the judge's own
    dpo, _, _ = curate_likert(js, {"i": ITEM}, "it1", 0, pairs_per_input=3)
    assert {r["chosen_judgment_id"] for r in dpo} == {"it1:i:1"}
    forced = next(r for r in dpo if r["rejected_judgment_id"] == "it1:i:0")
    assert forced["rejected_reason"] == "unparsed" and forced["rejected"] == "rationale 0"  # as written, no line added
    dpo, _, _ = curate_likert(js, {"i": ITEM}, "it1", 0, pairs_per_input=3, dpo_chosen="parsed_or_forced")
    assert {r["chosen_judgment_id"] for r in dpo} == {"it1:i:0"}


def test_forced_score_gets_canonical_line():
    assert training_text("why", 3, "forced") == "why\n\n[RESULT] 3"
    assert training_text("why [RESULT] 3", 3, "parsed") == "why [RESULT] 3"


def test_metrics_hand_computed():
    pred, gold = [1, 2, 3, 4, 5], [1, 3, 2, 4, 5]
    m = likert_metrics(pred, gold, ["ok"] * 5)
    # pearson: dx=[-2,-1,0,1,2], dy=[-2,0,-1,1,2]: cov=4+0+0+1+4=9, var=10 each -> 0.9
    assert m["pearson"] == pytest.approx(0.9)
    assert m["spearman"] == pytest.approx(0.9)  # no ties: ranks = values
    # kendall: 10 pairs, one discordant (2,3 vs 3,2) -> (9 - 1) / 10
    assert m["kendall_tau"] == pytest.approx(0.8)
    assert m["exact"] == pytest.approx(0.6) and m["within_1"] == pytest.approx(1.0) and m["parse_rate"] == 1.0


def test_metrics_unscored_and_constant():
    m = likert_metrics([None, 3, 3], [1, 3, 4], ["none", "ok", "ok"])
    assert m["n_scored"] == 2 and m["exact"] == pytest.approx(1 / 3, abs=1e-4) and m["within_1"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["pearson"] is None  # predictions constant: correlation undefined, not 0
    assert m["parse_rate"] == pytest.approx(2 / 3, abs=1e-4)


class _MetaBackend:
    """A meta-judge engine: `prefers` picks the rationale it votes for, given (A text, B text)."""

    model_name, model_hash = "scripted", "0"

    def __init__(self, prefers):
        self.prefers = prefers

    def generate(self, requests, desc=""):
        from judgeloop.backends import Completion

        out = []
        for r in requests:
            text = r.messages[0]["content"]
            a = text.split("[Rationale A]\n")[1].split("\n\n[Rationale B]")[0]
            b = text.split("[Rationale B]\n")[1].split("\n\nEnd with")[0]
            out.append([Completion(r.request_id, 0, f"[[{self.prefers(a, b)}]]", 5, 3, "stop")])
        return out

    def choice_logprobs(self, contexts, choices):
        raise AssertionError("every meta verdict here is parsed")


def test_meta_judge_sees_both_orders():
    from judgeloop.likert import make_meta_judge

    cands = [{"judgment_id": f"it1:i:{k}", "text": t} for k, t in enumerate(["weak rationale", "good rationale"])]
    # a judge that prefers the good rationale wherever it is shown picks it, even as the challenger
    pick = make_meta_judge(_MetaBackend(lambda a, b: "A" if "good" in a else "B"))
    assert pick(ITEM, cands)["text"] == "good rationale"
    assert pick(ITEM, cands[::-1])["text"] == "good rationale"
    # a judge that always says A has no preference: the incumbent does not win by position; seeded draws decide
    winners = {make_meta_judge(_MetaBackend(lambda a, b: "A"), seed=s)(ITEM, cands)["text"] for s in range(16)}
    assert winners == {"weak rationale", "good rationale"}
    assert make_meta_judge(_MetaBackend(lambda a, b: "A"), seed=3)(ITEM, cands) == make_meta_judge(_MetaBackend(lambda a, b: "A"), seed=3)(ITEM, cands)
