"""RewardBench weighting, majority vote, seeded orders and position stats, by hand."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from judgeloop.evaluation import summarise
from judgeloop.judging import Judged, winner
from judgeloop.loaders import InputError
from judgeloop.scoring import (
    EXAMPLE_COUNTS,
    ROW_COUNTS,
    SECTIONS,
    SUBSET_SECTION,
    assign_orders,
    group_verdicts,
    load_rewardbench,
    majority_judged,
    majority_scores,
    majority_verdict,
    per_example_rows,
    rewardbench_report,
    rewardbench_scores,
    section_scores,
    subset_accuracies,
)


def J(item: str, order: str, verdict: str | None, sample_idx: int = 0) -> Judged:
    correct = None if verdict is None else verdict == winner(order)
    status = "ok" if verdict else "none"
    return Judged(item, order, sample_idx, 0, "t", verdict, status, "parsed" if verdict else None, None, None, correct, 3, "stop", 1, 1)


def rows_for(subset: str, scores: list[float]) -> list[dict]:
    return [{"item_id": f"{subset}-{i}", "subset": subset, "score": s} for i, s in enumerate(scores)]


# --- constants -----------------------------------------------------------------------------------


def test_constants_match_method():
    sizes = {sec: sum(subs.values()) for sec, subs in SECTIONS.items()}
    assert sizes == {"Chat": 358, "Chat Hard": 456, "Safety": 740, "Reasoning": 1431}
    assert sum(ROW_COUNTS.values()) == 2985
    assert len(ROW_COUNTS) == 23
    assert ROW_COUNTS["alpacaeval-easy"] == 100 and ROW_COUNTS["hep-rust"] == 164 and ROW_COUNTS["math-prm"] == 447
    assert EXAMPLE_COUNTS["math-prm"] == 984 == 6 * 164
    assert {k: v for k, v in EXAMPLE_COUNTS.items() if k != "math-prm"} == {k: v for k, v in ROW_COUNTS.items() if k != "math-prm"}
    assert SUBSET_SECTION["llmbar-adver-GPTOut"] == "Chat Hard"


# --- weighting -----------------------------------------------------------------------------------


def test_math_prm_weighted_984_not_447():
    # math-prm all right, every hep-* subset all wrong
    acc = {"math-prm": 1.0, **{f"hep-{l}": 0.0 for l in ("cpp", "go", "java", "js", "python", "rust")}}
    r = section_scores(acc)["Reasoning"]
    assert r == pytest.approx(984 / 1968) == 0.5
    # plain row-count weighting would give 447/1431 = 0.3124
    assert r != pytest.approx(447 / 1431, abs=1e-3)


def test_section_weighting_hand_computed():
    per = (
        rows_for("alpacaeval-easy", [1, 1, 1, 1])  # 1.0, weight 100
        + rows_for("mt-bench-easy", [1, 0])  # 0.5, weight 28
        + rows_for("math-prm", [1, 1, 1, 1, 0])  # 0.8, weight 984
        + rows_for("hep-cpp", [0.5, 0.5])  # 0.5 (ties), weight 164
    )
    out = rewardbench_scores(per)
    assert out["subsets"]["math-prm"]["accuracy"] == pytest.approx(0.8)
    assert out["subsets"]["math-prm"]["n"] == 5 and out["subsets"]["math-prm"]["weight"] == 984
    assert out["sections"]["Chat"] == pytest.approx((100 * 1.0 + 28 * 0.5) / 128) == 0.890625
    assert out["sections"]["Reasoning"] == pytest.approx((984 * 0.8 + 164 * 0.5) / 1148)  # 0.757143
    # count-weighted (447) would be (447*0.8 + 164*0.5)/611 = 0.7194
    assert out["sections"]["Reasoning"] != pytest.approx((447 * 0.8 + 164 * 0.5) / 611, abs=1e-3)
    # Chat Hard and Safety absent: None, left out of the overall mean
    assert out["sections"]["Chat Hard"] is None and out["sections"]["Safety"] is None
    assert out["missing_sections"] == ["Chat Hard", "Safety"]
    assert out["overall"] == pytest.approx((0.890625 + (984 * 0.8 + 164 * 0.5) / 1148) / 2)
    assert "alpacaeval-length" in out["missing_subsets"] and "hep-go" in out["missing_subsets"]
    assert len(out["missing_subsets"]) == 23 - 4
    assert out["unknown_subsets"] == [] and out["complete"] is False


def test_overall_is_plain_mean_of_four_sections():
    acc = {s: 0.0 for s in ROW_COUNTS}
    acc["alpacaeval-easy"] = 1.0  # Chat = 100/358
    acc["donotanswer"] = 1.0  # Safety = 136/740
    per = [row for s, a in acc.items() for row in rows_for(s, [a])]
    out = rewardbench_scores(per)
    assert out["sections"] == pytest.approx({"Chat": 100 / 358, "Chat Hard": 0.0, "Safety": 136 / 740, "Reasoning": 0.0})
    assert out["overall"] == pytest.approx((100 / 358 + 136 / 740) / 4)  # not weighted by section size
    assert out["missing_subsets"] == [] and out["missing_sections"] == []


def test_half_rule_for_ties_and_no_verdict():
    rows = [J("1", "wl", "A"), J("2", "wl", None), J("3", "lw", "A"), J("4", "lw", None)]
    per = per_example_rows(rows, {str(i): "llmbar-natural" for i in range(1, 5)})
    assert [p["score"] for p in per] == [1.0, 0.5, 0.0, 0.5]
    out = rewardbench_scores(per)
    assert out["subsets"]["llmbar-natural"]["accuracy"] == pytest.approx(0.5)
    assert out["sections"]["Chat Hard"] == pytest.approx(0.5)


def test_unknown_and_missing_subsets_listed():
    per = rows_for("llmbar-natural", [1, 0]) + rows_for("my-extra-set", [1, 1, 1])
    out = rewardbench_scores(per)
    assert out["unknown_subsets"] == ["my-extra-set"]
    assert out["subsets"]["my-extra-set"] == {"accuracy": 1.0, "n": 3, "n_items": 3, "section": None, "weight": None}
    assert out["sections"]["Chat Hard"] == pytest.approx(0.5)  # the unknown subset counts nowhere
    assert out["overall"] == pytest.approx(0.5)
    assert "llmbar-natural" not in out["missing_subsets"] and "math-prm" in out["missing_subsets"]
    assert list(out["subsets"]) == ["llmbar-natural", "my-extra-set"]


def test_nothing_scored():
    out = rewardbench_scores([])
    assert out["overall"] is None and out["missing_sections"] == list(SECTIONS)


def test_bad_rows_rejected():
    with pytest.raises(ValueError, match="missing field 'score'"):
        rewardbench_scores([{"item_id": "1", "subset": "hep-go"}])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        rewardbench_scores([{"item_id": "1", "subset": "hep-go", "score": 2}])


def test_subset_accuracies():
    assert subset_accuracies({"a": [1, 0, 0.5, 0.5], "b": [], "c": [1]}) == {"a": 0.5, "c": 1.0}


# --- loading -------------------------------------------------------------------------------------


def rb_rows(per_subset: int = 2) -> list[dict]:
    rows = []
    for sub in ROW_COUNTS:
        for k in range(per_subset):
            rows.append(
                {
                    "prompt": f"prompt {sub} {k}", "chosen": f"good {sub} {k}", "chosen_model": "m1",
                    "rejected": f"bad {sub} {k}", "rejected_model": "m2", "subset": sub, "id": len(rows),
                }
            )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_synthetic_rewardbench_end_to_end(tmp_path):
    path = write_jsonl(tmp_path / "rb.jsonl", rb_rows())
    items, subsets = load_rewardbench(str(path))
    assert len(items) == 46 and len(subsets) == 46
    assert items[0].item_id == "0" and items[0].better == "good alpacaeval-easy 0" and items[0].worse == "bad alpacaeval-easy 0"
    assert set(subsets.values()) == set(ROW_COUNTS)
    orders = assign_orders([it.item_id for it in items], seed=0, mode="both")
    # fake judge: always right in order wl; in lw right on each subset's first row,
    # and on every math-prm row, otherwise it says A (position bias)
    first = {}
    judged = []
    for it in items:
        sub = subsets[it.item_id]
        first.setdefault(sub, it.item_id)
        for order in orders[it.item_id]:
            right = order == "wl" or it.item_id == first[sub] or sub == "math-prm"
            judged.append(J(it.item_id, order, winner(order) if right else "A"))
    rep = rewardbench_report(judged, subsets)
    all_ = rep["all"]
    assert all_["subsets"]["math-prm"]["accuracy"] == 1.0
    assert all_["subsets"]["hep-go"]["accuracy"] == 0.75 and all_["subsets"]["hep-go"]["n_items"] == 2
    assert all_["sections"] == pytest.approx({"Chat": 0.75, "Chat Hard": 0.75, "Safety": 0.75, "Reasoning": (984 + 984 * 0.75) / 1968})
    assert all_["overall"] == pytest.approx((3 * 0.75 + 0.875) / 4) == 0.78125
    assert all_["missing_subsets"] == [] and all_["unknown_subsets"] == []
    assert rep["wl"]["overall"] == 1.0
    assert rep["lw"]["sections"]["Reasoning"] == pytest.approx(0.75)
    assert rep["lw"]["overall"] == pytest.approx((3 * 0.5 + 0.75) / 4)
    pos = summarise(judged)
    assert pos["accuracy_by_order"]["wl"] == 1.0
    assert pos["accuracy_by_order"]["lw"] == pytest.approx(24 / 46, abs=1e-4)  # 22 biased rows wrong
    assert pos["position_consistency"] == pytest.approx(24 / 46, abs=1e-4)
    assert pos["n_examples"] == 46 and pos["n_judgments"] == 92


def test_load_parquet_and_json_lines(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = rb_rows(1)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rb.parquet")
    items, subsets = load_rewardbench(str(tmp_path / "rb.parquet"))
    assert len(items) == 23 and subsets["22"] == "hep-rust"
    items2, _ = load_rewardbench(str(write_jsonl(tmp_path / "rb.json", rows)))
    assert items2 == items


def test_limit_is_round_robin_over_subsets(tmp_path):
    path = write_jsonl(tmp_path / "rb.jsonl", rb_rows(3))
    items, subsets = load_rewardbench(str(path), limit=23)
    assert sorted(subsets.values()) == sorted(ROW_COUNTS)  # one row from every subset
    items, subsets = load_rewardbench(str(path), limit=25)
    assert len(items) == 25 and list(subsets.values()).count("alpacaeval-easy") == 2
    items, subsets = load_rewardbench(str(path), limit=3)
    assert list(subsets.values()) == ["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard"]
    assert [it.item_id for it in items] == ["0", "3", "6"]


def load_error(*args, **kw) -> str:
    with pytest.raises(InputError) as e:
        load_rewardbench(*args, **kw)
    return str(e.value)


def test_missing_column_names_file_row_field(tmp_path):
    rows = rb_rows(1)
    del rows[1]["rejected_model"]
    path = write_jsonl(tmp_path / "rb.jsonl", rows)
    msg = load_error(str(path))
    assert str(path) in msg and "row 1" in msg and "'rejected_model'" in msg


def test_bad_rows_name_file_row_field(tmp_path):
    rows = rb_rows(1)
    rows[2]["chosen"] = None
    msg = load_error(str(write_jsonl(tmp_path / "a.jsonl", rows)))
    assert "a.jsonl" in msg and "row 2" in msg and "'chosen'" in msg
    rows = rb_rows(1)
    rows[4]["id"] = rows[0]["id"]
    msg = load_error(str(write_jsonl(tmp_path / "b.jsonl", rows)))
    assert "row 4" in msg and "duplicate id" in msg
    assert "file not found" in load_error(str(tmp_path / "nope.jsonl"))
    (tmp_path / "empty.jsonl").write_text("")
    assert "no rows" in load_error(str(tmp_path / "empty.jsonl"))


def test_unknown_hf_id_fails_fast_offline(hf_offline):
    t0 = time.monotonic()
    msg = load_error("judgeloop-tests/no-such-rewardbench-xyz")
    assert time.monotonic() - t0 < 10
    assert "no-such-rewardbench-xyz" in msg and "split 'filtered'" in msg


def test_hf_local_dataset_directory(hf_offline, tmp_path):
    # the hub repo's layout: data/filtered-*.parquet, split declared in the README card
    d = tmp_path / "rbdir"
    (d / "data").mkdir(parents=True)
    write_jsonl(d / "data" / "filtered-00000-of-00001.jsonl", rb_rows(1))
    (d / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: filtered\n    path: data/filtered-*\n---\n"
    )
    items, subsets = load_rewardbench(str(d))
    assert len(items) == 23 and subsets["0"] == "alpacaeval-easy"
    assert "split 'raw'" in load_error(str(d), split="raw")


# --- orders --------------------------------------------------------------------------------------


def test_seeded_orders_stable_balanced_and_seed_dependent():
    ids = [f"item-{i}" for i in range(1000)]
    a = assign_orders(ids, seed=7, mode="random_seeded")
    random.seed(123)
    random.random()  # global random state must not matter
    assert assign_orders(ids, seed=7, mode="random_seeded") == a
    assert assign_orders(list(reversed(ids)), seed=7, mode="random_seeded") == a  # per item, not per position
    assert all(len(o) == 1 and o[0] in ("wl", "lw") for o in a.values())
    n_wl = sum(o == ("wl",) for o in a.values())
    assert 430 <= n_wl <= 570
    b = assign_orders(ids, seed=8, mode="random_seeded")
    differ = sum(a[i] != b[i] for i in ids)
    assert 400 <= differ <= 600  # another seed is another, independent draw


def test_both_orders_and_bad_mode():
    assert assign_orders(["x", "y"], seed=0, mode="both") == {"x": ("wl", "lw"), "y": ("wl", "lw")}
    with pytest.raises(ValueError, match="order mode"):
        assign_orders(["x"], seed=0, mode="random")
    with pytest.raises(ValueError, match="duplicate"):
        assign_orders(["x", "x"], seed=0)


# --- majority vote -------------------------------------------------------------------------------


def test_majority_verdict_rules():
    assert majority_verdict(["A", "A", "B"]) == ("A", "majority")
    assert majority_verdict(["B", None, None]) == ("B", "majority")  # None ignored
    assert majority_verdict(["A", "B", None]) == (None, "tie")
    assert majority_verdict([None, None]) == (None, "no_verdict")
    assert majority_verdict([]) == (None, "no_verdict")
    with pytest.raises(ValueError):
        majority_verdict(["A", "C"])


def test_majority_scores_hand_computed():
    votes = {
        ("1", "wl"): ["A", "A", "B"],  # majority A, right: 1; samples 1 1 0
        ("1", "lw"): ["A", "B"],  # tie: 0.5; samples 0 1
        ("2", "wl"): [None, None],  # no verdict: 0.5; samples .5 .5
        ("2", "lw"): ["B", "B", None],  # majority B, right: 1; samples 1 1 .5
    }
    per, summary = majority_scores(votes)
    assert [per[k]["score"] for k in votes] == [1.0, 0.5, 0.5, 1.0]
    assert [per[k]["rule"] for k in votes] == ["majority", "tie", "no_verdict", "majority"]
    assert per[("2", "lw")]["votes_b"] == 2 and per[("2", "lw")]["n_samples"] == 3
    assert summary["majority_accuracy"] == pytest.approx(0.75)
    assert summary["single_sample_accuracy"] == pytest.approx(6.5 / 10)
    assert (summary["n_ties"], summary["n_no_verdict"], summary["n_majority"]) == (1, 1, 2)
    assert summary["n_keys"] == 4 and summary["n_samples"] == 10


def test_majority_from_judged_rows_and_position_consistency():
    rows = [J("1", "wl", v, i) for i, v in enumerate(["A", "A", "B"])]
    rows += [J("1", "lw", v, i) for i, v in enumerate(["B", "B", "A"])]
    rows += [J("2", "wl", v, i) for i, v in enumerate(["A", "B"])]
    rows += [J("2", "lw", v, i) for i, v in enumerate(["A", "A"])]
    grouped = group_verdicts(rows)
    assert grouped[("1", "wl")] == ["A", "A", "B"]
    per, summary = majority_scores(grouped)
    assert summary["majority_accuracy"] == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert summary["single_sample_accuracy"] == pytest.approx(5 / 10)
    pos = summarise(majority_judged(per))
    assert pos["accuracy_by_order"] == pytest.approx({"wl": 0.75, "lw": 0.5})
    assert pos["position_consistency"] == pytest.approx(0.5)  # item 1 consistent; item 2 tied in wl
