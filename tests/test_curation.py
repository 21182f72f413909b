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
    return CurationConfig(**({"balance": "none", "per": "pair", "dpo_balance": None} | kw))


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


def test_forced_text_drop_trains_the_verdict_line_alone():
    """curation.forced_text: drop: a forced verdict's completion is the canonical line without the judge's
    text (SFT and DPO's chosen side); a verdict the judge wrote is kept as written."""
    forced = J("p", "wl", 0, "A", source="forced", status="none") | {"text": "The answer is 4."}
    rows, _ = curate_sft([forced], PAIRS, cfg(forced_text="drop"), "it1")
    assert rows[0]["completion"] == "Final verdict: [[A]]" == training_completion("The answer is 4.", "A", "forced", "drop")
    assert training_completion("A is right. [[A]]", "A", "parsed", "drop") == "A is right. [[A]]"
    wrong = J("p", "wl", 1, "B") | {"text": "B is right. [[B]]"}
    (d,), _ = curate_dpo([forced, wrong], PAIRS, cfg(forced_text="drop", dpo_chosen="parsed_or_forced"), "it1")
    assert d["chosen"] == "Final verdict: [[A]]" and d["rejected"] == "B is right. [[B]]"


def test_both_orders_keeps_a_pair_only_with_a_correct_judgment_in_each_order():
    js = [J("p", "wl", 0, "A"), J("p", "lw", 0, "A"), J("p", "lw", 1, "B"),  # p: right in both orders
          J("q", "wl", 0, "A"), J("q", "lw", 0, "A")]  # q: right only when the better one is shown first
    rows, funnel = curate_sft(js, PAIRS, cfg(per="both_orders", balance="truncate"), "it1")
    assert sorted((r["pair_id"], r["order"], r["verdict"]) for r in rows) == [("p", "lw", "B"), ("p", "wl", "A")]
    assert funnel["pairs_missing_an_order"] == 1 and funnel["removed_by_balance"] == 0
    assert curate_sft(js, PAIRS, cfg(per="pair_order"), "it1")[1]["pairs_missing_an_order"] == 0


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


# --- the columnar entry point (curate_files) and the documented draws


import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from judgeloop.curation import curate_files  # noqa: E402
from judgeloop.rowstore import PY_WHITESPACE  # noqa: E402
from judgeloop.schemas import SCHEMAS, to_table  # noqa: E402
from judgeloop.templates import judge_messages  # noqa: E402


def _full(kind: str, row: dict) -> dict:
    """A row of `kind` with every schema column (the ones a test does not set are null)."""
    return {f.name: None for f in SCHEMAS[kind]} | row


def _write_inputs(tmp_path, js, pairs=PAIRS):
    jp, pp = tmp_path / "judgments.parquet", tmp_path / "pairs.parquet"
    pq.write_table(to_table("judgments", [_full("judgments", j | {"iteration": "it1"}) for j in js]), jp, row_group_size=3)
    pq.write_table(to_table("pairs", [_full("pairs", p) for p in pairs.values()]), pp)
    return jp, pp


def _mixed_judgments():
    js = []
    for p in "pqrst":
        for o in ("wl", "lw"):
            for i in range(4):
                k = (ord(p) * 7 + i * 3 + (o == "lw")) % 5
                v = None if k == 0 else ("A" if k in (1, 2) else "B")
                js.append(J(p, o, i, v, source="forced" if k == 2 else "parsed", status="none" if k in (0, 2) else "ok"))
    return js


@pytest.mark.parametrize("kw", [{}, {"per": "pair_order"}, {"balance": "truncate"}, {"pairs_per_input": 3},
                                {"per": "pair_order", "balance": "truncate", "dpo_balance": "none", "seed": 5}])
def test_curate_files_equals_the_list_api(tmp_path, kw):
    js = _mixed_judgments()
    jp, pp = _write_inputs(tmp_path, js)
    sft_f, dpo_f = curate_files(jp, pp, cfg(**kw), "it1", tmp_path / "sft.parquet", tmp_path / "dpo.parquet")
    sft_rows, sft_f2 = curate_sft(js, PAIRS, cfg(**kw), "it1")
    dpo_rows, dpo_f2 = curate_dpo(js, PAIRS, cfg(**kw), "it1")
    assert (sft_f, dpo_f) == (sft_f2, dpo_f2)
    assert pq.read_table(tmp_path / "sft.parquet").to_pylist() == sft_rows
    assert pq.read_table(tmp_path / "dpo.parquet").to_pylist() == dpo_rows
    assert pq.read_schema(tmp_path / "sft.parquet") == SCHEMAS["sft"] and pq.read_schema(tmp_path / "dpo.parquet") == SCHEMAS["dpo"]


def test_curate_files_is_deterministic_and_ignores_input_order(tmp_path):
    js = _mixed_judgments()
    outs = []
    for n, order in enumerate([js, js, list(reversed(js))]):
        d = tmp_path / str(n)
        d.mkdir()
        jp, pp = _write_inputs(d, order)
        funnels = curate_files(jp, pp, cfg(pairs_per_input=2), "it1", d / "sft.parquet", d / "dpo.parquet")
        outs.append((funnels, pq.read_table(d / "sft.parquet").to_pylist(), pq.read_table(d / "dpo.parquet").to_pylist()))
    assert outs[0] == outs[1] == outs[2]
    assert (tmp_path / "0" / "sft.parquet").read_bytes() == (tmp_path / "1" / "sft.parquet").read_bytes()
    assert outs[0][1] and outs[0][2]


def test_curate_files_empty_input(tmp_path):
    jp, pp = _write_inputs(tmp_path, [])
    sft_f, dpo_f = curate_files(jp, pp, cfg(balance="truncate"), "it1", tmp_path / "sft.parquet", tmp_path / "dpo.parquet")
    assert sft_f["empty_reason"] == dpo_f["empty_reason"] == "no judgments to curate"
    assert sft_f["judgments"] == sft_f["groups"] == sft_f["kept"] == 0 and sft_f["keep_rate_pairs"] == 0
    assert pq.read_table(tmp_path / "sft.parquet").num_rows == 0 and pq.read_table(tmp_path / "dpo.parquet").num_rows == 0
    rows, funnel = curate_dpo([], PAIRS, cfg(), "it1")
    assert rows == [] and funnel["empty_reason"] == "no judgments to curate" and funnel["groups"] == 0


def test_curate_files_balance_that_empties_the_sets(tmp_path):
    js = [J(p, "wl", i, "A") for p in "pqr" for i in range(2)] + [J("p", "wl", 2, "B")]  # always 'A wins' when correct
    jp, pp = _write_inputs(tmp_path, js)
    sft_f, dpo_f = curate_files(jp, pp, cfg(balance="truncate"), "it1", tmp_path / "sft.parquet", tmp_path / "dpo.parquet")
    assert "no kept judgment says 'B wins' (3 say 'A wins')" in sft_f["empty_reason"]
    assert sft_f["kept"] == 0 and sft_f["removed_by_balance"] == 3
    assert "no DPO pair has a chosen judgment saying 'B wins'" in dpo_f["empty_reason"] and dpo_f["combinations"] == 1
    assert pq.read_table(tmp_path / "sft.parquet").num_rows == 0


def test_all_correct_group_keeps_one_and_no_correct_group_none():
    js = [J("p", "wl", i, "A") for i in range(3)] + [J("q", "lw", i, "A") for i in range(3)]
    rows, funnel = curate_sft(js, PAIRS, cfg(per="pair_order"), "it1")
    assert [r["pair_id"] for r in rows] == ["p"]
    assert funnel["groups"] == 2 and funnel["groups_without_correct"] == 1 and funnel["one_per_group"] == 1
    assert funnel["keep_rate_pairs"] == 0.5


def test_sft_draw_is_the_documented_one():
    """Smallest u = rng.random(n) over the rows sorted by judgment_id, rng seeded with sha256(seed:iteration:sft)."""
    import hashlib

    js = [J("p", "wl", i, "A") for i in range(6)]
    for seed in range(5):
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(f"{seed}:it1:sft".encode()).digest(), "big"))
        u = rng.random(len(js))
        ids = sorted(j["judgment_id"] for j in js)
        want = ids[int(np.argmin(u))]
        got = curate_sft(list(reversed(js)), PAIRS, cfg(seed=seed), "it1")[0][0]["judgment_id"]
        assert got == want


def test_columnar_completion_and_prompt_match_the_python_ones():
    assert set(PY_WHITESPACE) == {c for c in map(chr, range(0x110000)) if c.isspace()}
    texts = ["plain", "trailing spaces  ", "unicode ws\u3000\u2028\x1c\n", "", "  ", "tag [[A]]\t"]
    js = [J("p", "wl", i, "A", source="forced") | {"text": t} for i, t in enumerate(texts)]
    pairs = {"p": {"pair_id": "p", "instruction": "use {braces} and {{x}}", "response_w": "good {0}", "response_l": "bad %s"}}
    rows, _ = curate_sft(js, pairs, cfg(per="pair_order", pairs_per_input=1), "it1")
    (row,) = rows
    j = next(x for x in js if x["judgment_id"] == row["judgment_id"])
    assert row["completion"] == training_completion(j["text"], "A", "forced")
    assert row["prompt"] == judge_messages("use {braces} and {{x}}", "good {0}", "bad %s")[0]["content"]
    for t in texts:  # every text through the DPO path (rejected = unparsed keeps its text as is)
        dj = [J("p", "wl", 0, "A", source="forced") | {"text": t}, J("p", "wl", 1, None, status="none") | {"text": t}]
        (d,), _ = curate_dpo(dj, pairs, cfg(dpo_chosen="parsed_or_forced"), "it1")
        assert d["chosen"] == training_completion(t, "A", "forced") and d["rejected"] == t


def test_dpo_chosen_is_never_a_forced_verdict_by_default():
    """RAM's rule: an unparsed judgment is a negative, never the chosen side; a forced verdict is not the judge's own."""
    forced_right = J("p", "wl", 0, "A", source="forced", status="none") | {"text": "no verdict written"}
    parsed_right = J("p", "wl", 1, "A") | {"text": "A is right. [[A]]"}
    parsed_wrong = J("p", "wl", 2, "B") | {"text": "B is right. [[B]]"}
    rows, funnel = curate_dpo([forced_right, parsed_right, parsed_wrong], PAIRS, cfg(pairs_per_input=5), "it1")
    assert funnel["correct_but_forced"] == 1
    assert {r["chosen_judgment_id"] for r in rows} == {parsed_right["judgment_id"]}
    by_rejected = {r["rejected_judgment_id"]: r for r in rows}
    # the forced one is a negative, as the judge wrote it (no verdict line added), and called unparsed
    forced_row = by_rejected[forced_right["judgment_id"]]
    assert forced_row["rejected"] == "no verdict written" and forced_row["rejected_reason"] == "unparsed"
    assert by_rejected[parsed_wrong["judgment_id"]]["rejected_reason"] == "wrong"
    # only forced verdicts right: nothing to choose, and the funnel says why
    rows, funnel = curate_dpo([forced_right, parsed_wrong], PAIRS, cfg(), "it1")
    assert rows == [] and "no pair and order" in funnel["empty_reason"]
    # the opt-in for a seed that writes no verdict at all
    rows, _ = curate_dpo([forced_right, parsed_wrong], PAIRS, cfg(dpo_chosen="parsed_or_forced"), "it1")
    assert [r["chosen_judgment_id"] for r in rows] == [forced_right["judgment_id"]]


def test_judged_pair_missing_from_pairs_is_an_error():
    with pytest.raises(ValueError, match="missing from the pairs table"):
        curate_sft([J("z", "wl", 0, "A")], PAIRS, cfg(), "it1")


def test_curate_files_in_many_slabs_and_batches(tmp_path, monkeypatch):
    import judgeloop.curation as c

    js = _mixed_judgments()
    jp, pp = _write_inputs(tmp_path, list(reversed(js)))  # a file far from judgment_id order
    want = curate_sft(js, PAIRS, cfg(pairs_per_input=2), "it1"), curate_dpo(js, PAIRS, cfg(pairs_per_input=2), "it1")
    monkeypatch.setattr(c, "SLAB_BYTES", 1)  # one batch per slab
    monkeypatch.setattr(c, "OUT_BATCH", 2)
    funnels = curate_files(jp, pp, cfg(pairs_per_input=2), "it1", tmp_path / "sft.parquet", tmp_path / "dpo.parquet")
    assert funnels == (want[0][1], want[1][1])
    assert pq.read_table(tmp_path / "sft.parquet").to_pylist() == want[0][0]
    assert pq.read_table(tmp_path / "dpo.parquet").to_pylist() == want[1][0]
    assert pq.ParquetFile(tmp_path / "sft.parquet").metadata.num_row_groups == (len(want[0][0]) + 1) // 2


def test_curate_files_writes_both_sets_or_neither(tmp_path, monkeypatch):
    import judgeloop.curation as c

    jp, pp = _write_inputs(tmp_path, _mixed_judgments())
    (tmp_path / "out").mkdir()

    def broken(*a, **k):
        yield from []
        raise ValueError("dpo build failed")

    monkeypatch.setattr(c, "_dpo_batches", broken)
    with pytest.raises(ValueError, match="dpo build failed"):
        curate_files(jp, pp, cfg(), "it1", tmp_path / "out" / "sft.parquet", tmp_path / "out" / "dpo.parquet")
    assert list((tmp_path / "out").iterdir()) == []  # no sft.parquet alone, no temporaries


def test_curate_files_small_row_groups_shared_by_both_sets(tmp_path, monkeypatch):
    """Both builders share decoded row groups (rowstore.RowGroups): in order, reversed, with slabs of any size."""
    import judgeloop.curation as c

    js = _mixed_judgments()
    want = curate_sft(js, PAIRS, cfg(pairs_per_input=2), "it1"), curate_dpo(js, PAIRS, cfg(pairs_per_input=2), "it1")
    for rows, slab in ((js, 1), (list(reversed(js)), 1), (js, c.SLAB_BYTES)):
        jp, pp = _write_inputs(tmp_path, rows)
        pq.write_table(pq.read_table(jp), jp, row_group_size=3)
        monkeypatch.setattr(c, "SLAB_BYTES", slab)
        funnels = curate_files(jp, pp, cfg(pairs_per_input=2), "it1", tmp_path / "sft.parquet", tmp_path / "dpo.parquet")
        assert funnels == (want[0][1], want[1][1])
        assert pq.read_table(tmp_path / "sft.parquet").to_pylist() == want[0][0]
        assert pq.read_table(tmp_path / "dpo.parquet").to_pylist() == want[1][0]


def test_a_column_of_the_wrong_type_is_a_schema_error_naming_file_and_column(tmp_path):
    """`correct` stored as text: one line naming the file and the column, before any curation."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from judgeloop.curation import curate_files
    from judgeloop.schemas import SCHEMAS

    rows = [J("p", "wl", 0, "A") | {"iteration": "it1", "judge_model": "m", "text": "[[A]]"}]
    table = pa.Table.from_pylist(rows, schema=SCHEMAS["judgments"])
    bad = table.set_column(table.schema.get_field_index("correct"), "correct", pa.array(["yes"]))
    jpath = tmp_path / "judgments.parquet"
    pq.write_table(bad, jpath)
    ppath = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist([PAIRS["p"]]), ppath)
    with pytest.raises(ValueError) as e:
        curate_files(jpath, ppath, cfg(), "it1", tmp_path / "sft.parquet", tmp_path / "dpo.parquet")
    assert str(jpath) in str(e.value) and "'correct'" in str(e.value) and "bool" in str(e.value)
    assert not (tmp_path / "sft.parquet").exists()


@pytest.mark.parametrize("template", ["standard", "short"])
def test_curated_prompts_are_the_judge_template_the_judge_saw(tmp_path, template):
    """curate_files renders the training prompt column-wise from the same template judging used."""
    js = [J("p", "wl", 0, "A") | {"text": "fine [[A]]"}, J("p", "lw", 0, "B") | {"text": "fine [[B]]"}]
    pairs = {"p": {"pair_id": "p", "instruction": "q {x}", "response_w": "good", "response_l": "bad"}}
    jp, pp = _write_inputs(tmp_path, js, pairs)
    curate_files(jp, pp, cfg(per="pair_order", balance="none"), "it1", tmp_path / "sft.parquet", tmp_path / "dpo.parquet",
                 template=template)
    rows = {r["order"]: r["prompt"] for r in pq.read_table(tmp_path / "sft.parquet").to_pylist()}
    assert rows["wl"] == judge_messages("q {x}", "good", "bad", template)[0]["content"]
    assert rows["lw"] == judge_messages("q {x}", "bad", "good", template)[0]["content"]
