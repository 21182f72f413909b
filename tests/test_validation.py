import json
import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from judgeloop.schemas import SCHEMAS, to_table
from judgeloop.validation import (
    DataValidationError,
    ValidationReport,
    build_suite,
    raise_on_failure,
    validate_files,
    validate_frame,
)


def base_row(kind: str, i: int) -> dict:
    """A row with every schema field filled by type, so new columns need no test edits."""
    fill = {pa.string(): "x", pa.int64(): i, pa.float64(): None, pa.bool_(): None}
    return {f.name: fill.get(f.type) for f in SCHEMAS[kind]}


def pair(i: int, **over) -> dict:
    row = {
        "pair_id": f"p{i}", "prompt_id": f"q{i}", "instruction": f"Write function {i}",
        "response_w": f"good answer {i}", "modified_instruction": f"Write function {i} badly",
        "response_l": f"bad answer {i}", "gen_status": "ok", "generator": "gen-model",
    }
    return {**base_row("pairs", i), **row, **over}


def judgment(i: int, **over) -> dict:
    verdict = "A" if i % 2 == 0 else "B"
    row = {
        "judgment_id": f"j{i}", "pair_id": f"p{i}", "iteration": "it1", "judge_model": "judge",
        "order": "wl" if verdict == "A" else "lw", "text": f"Reasoning... [[{verdict}]]",
        "verdict": verdict, "parse_status": "ok", "verdict_source": "parsed", "correct": True,
    }
    return {**base_row("judgments", i), **row, **over}


def sft(i: int, **over) -> dict:
    verdict = "A" if i % 2 == 0 else "B"
    row = {
        "example_id": f"e{i}", "pair_id": f"p{i}", "iteration": "it1", "order": "wl",
        "judgment_id": f"j{i}", "verdict": verdict, "verdict_source": "parsed",
        "prompt": f"Compare answers for {i}", "completion": f"Answer {verdict} wins. [[{verdict}]]",
    }
    return {**base_row("sft", i), **row, **over}


MAKERS = {"pairs": pair, "judgments": judgment, "sft": sft}


def frame(kind: str, rows: list[dict]) -> pd.DataFrame:
    """The frame the validate stage builds from a Parquet file (nullable booleans, as validation.py reads them)."""
    import pyarrow as pa

    return to_table(kind, rows).to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get)


def valid(kind: str, n: int = 6) -> pd.DataFrame:
    return frame(kind, [MAKERS[kind](i) for i in range(n)])


def assert_fails(report: ValidationReport, expectation: str, offending_id: str) -> None:
    assert not report.success
    msg = report.message()
    assert report.dataset in msg
    assert expectation in msg, msg
    assert offending_id in msg, msg
    failed = [r for r in report.failures() if r["expectation"] == expectation]
    assert failed and any(offending_id in r["examples"] for r in failed), report.failures()


@pytest.mark.parametrize("kind", ["pairs", "judgments", "sft"])
def test_valid_frames_pass(kind):
    report = validate_frame(kind, valid(kind))
    assert report.success, report.message()
    assert report.failures() == []
    assert all(set(r) >= {"expectation", "kwargs", "success", "unexpected_count", "examples"}
               for r in report.results)


@pytest.mark.parametrize("kind", ["pairs", "judgments", "sft"])
def test_empty_tables_pass(kind):
    report = validate_frame(kind, frame(kind, []))
    assert report.success, report.message()


def test_build_suite_returns_gx_suite():
    suite = build_suite("judgments", valid("judgments"))
    types = {e.expectation_type for e in suite.expectations}
    assert {"expect_column_values_to_be_unique", "expect_column_values_to_be_in_set"} <= types
    with pytest.raises(ValueError):
        build_suite("nope", valid("judgments"))


def test_duplicate_judgment_id():
    df = frame("judgments", [judgment(0), judgment(1), judgment(2, judgment_id="j1")])
    assert_fails(validate_frame("judgments", df), "expect_column_values_to_be_unique", "j1")


def test_null_pair_id():
    df = frame("judgments", [judgment(0), judgment(1, pair_id=None)])
    assert_fails(validate_frame("judgments", df), "expect_column_values_to_not_be_null", "j1")


def test_verdict_not_in_set():
    df = frame("judgments", [judgment(0), judgment(1, verdict="C")])
    assert_fails(validate_frame("judgments", df), "expect_column_values_to_be_in_set", "j1")
    assert "verdict" in validate_frame("judgments", df).message()


def test_parse_status_not_in_set():
    df = frame("judgments", [judgment(0, parse_status="weird"), judgment(1)])
    report = validate_frame("judgments", df)
    assert_fails(report, "expect_column_values_to_be_in_set", "j0")
    assert "parse_status" in report.message()


def test_parsed_verdict_with_bad_parse_status():
    df = frame("judgments", [judgment(0), judgment(3, parse_status="none", verdict_source="parsed")])
    report = validate_frame("judgments", df)
    assert_fails(report, "expect_column_values_to_be_in_set", "j3")
    assert "_parsed_needs_parse_ok" in report.message()


def test_forced_consistency_correct_without_verdict():
    df = frame("judgments", [
        judgment(0),
        judgment(1, verdict=None, parse_status="none", verdict_source=None, correct=True),
        judgment(2, verdict="A", parse_status="none", verdict_source="forced", p_a=0.7, p_b=0.3),
    ])
    report = validate_frame("judgments", df)
    assert_fails(report, "expect_column_values_to_be_in_set", "j1")
    assert "_correct_null_iff_verdict_null" in report.message()
    assert "j2" not in report.message()  # a forced verdict after a failed parse is fine


def test_correct_is_recomputed_from_verdict_order_and_winner():
    """Flipping `correct` (an audit --output file could) is caught: it must be what verdict and order say."""
    df = frame("judgments", [judgment(0), judgment(1, correct=False), judgment(2, order="lw", correct=True)])
    report = validate_frame("judgments", df)
    flag = next(r for r in report.results if r["kwargs"].get("column") == "_correct_matches_verdict")
    assert flag["unexpected_count"] == 2 and sorted(flag["examples"]) == ["j1", "j2"]


def test_a_judgment_with_both_markers_and_no_verdict_passes():
    """No verdict and no `correct` (a text with [[A]] and [[B]] is never forced): used to crash on pandas' NA."""
    df = frame("judgments", [judgment(0), judgment(1, verdict=None, parse_status="both", verdict_source=None, correct=None)])
    assert validate_frame("judgments", df).success


def test_text_too_long():
    df = frame("judgments", [judgment(0), judgment(1, text="x" * 50)])
    report = validate_frame("judgments", df, max_text_chars=40)
    assert_fails(report, "expect_column_value_lengths_to_be_between", "j1")


def test_sft_completion_without_tag():
    df = frame("sft", [sft(0), sft(1, completion="B is better, no tag")])
    report = validate_frame("sft", df)
    assert_fails(report, "expect_column_values_to_be_in_set", "e1")
    assert "_parses_to_verdict" in report.message()


def test_sft_tag_must_match_verdict():
    df = frame("sft", [sft(0, completion="B wins [[B]]"), sft(1)])
    assert_fails(validate_frame("sft", df), "expect_column_values_to_be_in_set", "e0")


@pytest.mark.parametrize("completion", [
    "A is better [[A]] but maybe B [[B]]",      # both markers: contains its own tag, parses to no verdict
    "Output [[A]] if A is better, [[B]] if B",  # the format echoed back
    "```\n[[A]]\n```",                          # a marker inside a closed code block
])
def test_every_sft_completion_parses_to_its_own_verdict(completion):
    df = frame("sft", [sft(0, completion=completion), sft(1)])
    assert_fails(validate_frame("sft", df), "expect_column_values_to_be_in_set", "e0")


def test_sft_imbalance():
    rows = [sft(2 * i) for i in range(9)] + [sft(1)]  # 9 A, 1 B
    report = validate_frame("sft", frame("sft", rows))
    assert_fails(report, "expect_column_mean_to_be_between", "e0")
    assert validate_frame("sft", frame("sft", rows), ab_tolerance=0.45).success
    assert validate_frame("sft", frame("sft", rows[:3])).success  # too few rows to judge balance


def test_sft_empty_completion():
    df = frame("sft", [sft(0), sft(1, completion="")])
    assert_fails(validate_frame("sft", df), "expect_column_value_lengths_to_be_between", "e1")


def test_pairs_same_responses_on_ok_row():
    df = frame("pairs", [pair(0), pair(1, response_l="good answer 1")])
    report = validate_frame("pairs", df)
    assert_fails(report, "expect_column_values_to_be_in_set", "p1")
    assert "_w_differs_l" in report.message() and "pairs_ok" in report.message()


def test_pairs_rules_apply_only_to_ok_rows():
    df = frame("pairs", [pair(0), pair(1, gen_status="empty_l", response_l="", modified_instruction=None),
                         pair(2, gen_status="same_as_w", response_l="good answer 2")])
    assert validate_frame("pairs", df).success


def test_pairs_bad_gen_status_and_empty_ok_text():
    df = frame("pairs", [pair(0, gen_status="exploded"), pair(1, response_w="")])
    report = validate_frame("pairs", df)
    assert_fails(report, "expect_column_values_to_be_in_set", "p0")
    assert_fails(report, "expect_column_value_lengths_to_be_between", "p1")


def test_missing_column_fails():
    df = valid("sft").drop(columns=["completion"])
    report = validate_frame("sft", df)
    assert not report.success
    assert "expect_table_columns_to_match_set" in report.message()
    assert "completion" in report.message()


def write(tmp_path, kind, df):
    path = tmp_path / f"{kind}.parquet"
    pq.write_table(to_table(kind, df.to_dict("records")) if len(df) else
                   SCHEMAS[kind].empty_table(), path)
    return str(path)


def test_validate_files_writes_results_and_docs(tmp_path):
    bad = frame("judgments", [judgment(0), judgment(1, verdict="C")])
    files = {"pairs": write(tmp_path, "pairs", valid("pairs")),
             "judgments": write(tmp_path, "judgments", bad),
             "sft": write(tmp_path, "sft", frame("sft", []))}
    out = tmp_path / "validation"
    reports = validate_files(files, str(out))
    assert [r.dataset for r in reports] == ["pairs", "judgments", "sft"]
    assert [r.success for r in reports] == [True, False, True]

    saved = json.loads((out / "results.json").read_text())
    assert [r["dataset"] for r in saved] == ["pairs", "judgments", "sft"]
    assert saved[1]["path"] == files["judgments"] and saved[1]["success"] is False
    assert (out / "docs" / "index.html").is_file()
    assert not [p for p in os.listdir(out) if p.startswith(".")]  # no temp leftovers

    validate_files(files, str(out))  # rebuilding replaces the site
    assert (out / "docs" / "index.html").is_file()

    with pytest.raises(DataValidationError) as err:
        raise_on_failure(reports)
    msg = str(err.value)
    assert "judgments" in msg and "expect_column_values_to_be_in_set" in msg and "j1" in msg
    assert "pairs (" not in msg


def test_validate_files_unreadable_file_is_a_failed_report(tmp_path):
    reports = validate_files({"sft": str(tmp_path / "missing.parquet")}, str(tmp_path / "out"))
    assert not reports[0].success and "read_parquet" in reports[0].message()


def test_raise_on_failure_quiet_when_all_pass():
    raise_on_failure([validate_frame("sft", valid("sft"))])


def test_balance_check_skipped_when_curation_does_not_balance():
    rows = [sft(2 * i) for i in range(9)] + [sft(1)]  # 9 A, 1 B
    assert not validate_frame("sft", frame("sft", rows)).success
    assert validate_frame("sft", frame("sft", rows), ab_tolerance=None).success


def test_dpo_and_likert_kinds():
    from judgeloop.schemas import SCHEMAS

    dpo = {n: None for n in SCHEMAS["dpo"].names} | {
        "example_id": "d1", "pair_id": "p", "iteration": "it1", "order": "wl", "prompt": "q", "chosen": "good [[A]]",
        "rejected": "bad [[B]]", "chosen_judgment_id": "j1", "rejected_judgment_id": "j2", "chosen_verdict": "A",
        "rejected_verdict": "B", "rejected_reason": "wrong"}
    assert validate_frame("dpo", pd.DataFrame([dpo])).success
    report = validate_frame("dpo", pd.DataFrame([dpo | {"rejected": "good [[A]]"}]))
    assert_fails(report, "expect_column_values_to_be_in_set", "d1")
    # a chosen judgment that did not pick the known winner (order wl: A wins)
    report = validate_frame("dpo", pd.DataFrame([dpo | {"chosen_verdict": "B", "chosen": "good [[B]]"}]))
    assert_fails(report, "expect_column_values_to_be_in_set", "d1")
    assert "_chosen_is_the_winner" in report.message()
    lj = {n: None for n in SCHEMAS["likert_judgments"].names} | {
        "judgment_id": "l1", "item_id": "i", "iteration": "it1", "judge_model": "m", "text": "t", "score": 7,
        "parse_status": "ok", "score_source": "parsed", "gold_score": 3}
    assert_fails(validate_frame("likert_judgments", pd.DataFrame([lj])), "expect_column_values_to_be_in_set", "l1")


# --- files validated in parts: narrow columns whole, long texts chunk by chunk


def _results(report: ValidationReport) -> list[tuple]:
    return [(r["batch"], r["expectation"], json.dumps(r["kwargs"], sort_keys=True, default=str), r["success"],
             r["unexpected_count"], r["examples"]) for r in report.results]


def test_chunked_file_validation_equals_frame_validation(tmp_path, monkeypatch):
    import judgeloop.validation as v

    rows = [judgment(i) for i in range(30)]
    rows[1]["judgment_id"] = rows[28]["judgment_id"] = "dup"
    rows[3]["text"] = "x" * 50  # too long, first chunk
    rows[25]["text"] = "y" * 60  # too long, a later chunk
    rows[20]["judgment_id"] = None  # null key: examples say "<row 20>"
    rows[20]["text"] = "z" * 70
    rows[25]["verdict"] = "C"
    rows[12]["text"] = None
    df = frame("judgments", rows)
    path = tmp_path / "judgments.parquet"
    pq.write_table(to_table("judgments", rows), path, row_group_size=4)
    monkeypatch.setattr(v, "CHUNK_BYTES", 1)  # every row group is a chunk of its own
    got = validate_files({"judgments": str(path)}, str(tmp_path / "out"), max_text_chars=40)[0]
    want = validate_frame("judgments", df, str(path), max_text_chars=40)
    assert _results(got) == _results(want)
    assert not got.success
    lengths = next(r for r in got.results if r["expectation"] == "expect_column_value_lengths_to_be_between")
    assert lengths["unexpected_count"] == 3 and lengths["examples"] == ["j3", "<row 20>", "j25"]
    null_text = next(r for r in got.results if r["expectation"] == "expect_column_values_to_not_be_null"
                     and r["kwargs"]["column"] == "text")
    assert null_text["unexpected_count"] == 1 and null_text["examples"] == ["j12"]
    unique = next(r for r in got.results if r["expectation"] == "expect_column_values_to_be_unique")
    assert unique["examples"] == ["dup"] and unique["unexpected_count"] == 2


def test_chunked_pairs_ok_and_sft_flags(tmp_path, monkeypatch):
    import judgeloop.validation as v

    monkeypatch.setattr(v, "CHUNK_BYTES", 1)
    prs = [pair(i) for i in range(10)]
    prs[2] = pair(2, gen_status="empty_l", response_l="")  # not an ok row: its empty text is fine
    prs[7] = pair(7, response_l="good answer 7")  # an ok row with y_w == y_l, in a later chunk
    sfts = [sft(i) for i in range(10)]
    sfts[9] = sft(9, completion="no tag here")
    files = {"pairs": tmp_path / "pairs.parquet", "sft": tmp_path / "sft.parquet"}
    pq.write_table(to_table("pairs", prs), files["pairs"], row_group_size=3)
    pq.write_table(to_table("sft", sfts), files["sft"], row_group_size=3)
    reports = validate_files({k: str(p) for k, p in files.items()}, str(tmp_path / "out"))
    for r, kind, rows in zip(reports, ["pairs", "sft"], [prs, sfts]):
        assert _results(r) == _results(validate_frame(kind, frame(kind, rows), str(files[kind])))
    assert_fails(reports[0], "expect_column_values_to_be_in_set", "p7")
    assert "_w_differs_l" in reports[0].message() and "p2" not in reports[0].message()
    assert_fails(reports[1], "expect_column_values_to_be_in_set", "e9")


def test_empty_file_reports_every_expectation(tmp_path):
    path = tmp_path / "sft.parquet"
    pq.write_table(SCHEMAS["sft"].empty_table(), path)
    report = validate_files({"sft": str(path)}, str(tmp_path / "out"))[0]
    assert report.success
    assert len(report.results) == len(build_suite("sft", frame("sft", [])).expectations)


def test_gx_fingerprint_setting_is_restored():
    from great_expectations.execution_engine import pandas_execution_engine as e

    before = e.HASH_THRESHOLD
    validate_frame("sft", valid("sft"))
    assert e.HASH_THRESHOLD == before


def test_verdict_check_with_non_string_completions():
    df = frame("sft", [sft(0), sft(1)])
    df["completion"] = pd.Series([123, "Answer B wins. [[B]]"], dtype=object)
    flag = next(r for r in validate_frame("sft", df).results if r["kwargs"].get("column") == "_parses_to_verdict")
    assert flag["unexpected_count"] == 1 and flag["examples"] == ["e0"]
