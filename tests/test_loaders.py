"""Instruction sources: JSONL, CSV, Parquet, builtin and Hugging Face datasets."""

import csv
import json
import time
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from judgeloop.config import PromptSource
from judgeloop.loaders import InputError, builtin_path, load_source

ROWS = [
    {"qid": "q1", "text": "Explain photosynthesis simply.", "topic": "factual"},
    {"qid": "q2", "text": "Write a haiku about rain.", "topic": "writing"},
    {"qid": "q3", "text": "What is 17 * 23?", "topic": ""},
]
MAPPING = {"id_column": "qid", "instruction_column": "text", "category_column": "topic"}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def write_pq(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


WRITERS = {"jsonl": write_jsonl, "csv": write_csv, "parquet": write_pq}


def src(kind, path, **kw):
    return PromptSource(kind=kind, path=str(path), **kw)


def load_error(source) -> str:
    with pytest.raises(InputError) as ei:
        load_source(source)
    return str(ei.value)


# --- round trips ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet"])
def test_round_trip_with_column_mapping(tmp_path, kind):
    f = WRITERS[kind](tmp_path / f"in.{kind}", ROWS)
    recs = load_source(src(kind, f, **MAPPING))
    assert [r["id"] for r in recs] == ["q1", "q2", "q3"]
    assert [r["instruction"] for r in recs] == [r["text"] for r in ROWS]
    assert [r["category"] for r in recs] == ["factual", "writing", None]  # "" is no category
    assert [r["source_row"] for r in recs] == [0, 1, 2]
    assert {r["source"] for r in recs} == {str(f)}  # name defaults to the path
    assert set(recs[0]) == {"id", "instruction", "category", "source_row", "source"}


def test_name_is_recorded_as_source(tmp_path):
    f = write_jsonl(tmp_path / "in.jsonl", ROWS)
    recs = load_source(src("jsonl", f, name="mine", **MAPPING))
    assert {r["source"] for r in recs} == {"mine"}


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet"])
def test_id_column_null_gives_no_ids(tmp_path, kind):
    rows = [{"text": r["text"]} for r in ROWS]
    f = WRITERS[kind](tmp_path / f"in.{kind}", rows)
    recs = load_source(src(kind, f, id_column=None, instruction_column="text", category_column=None))
    assert [r["id"] for r in recs] == [None, None, None]
    assert [r["category"] for r in recs] == [None, None, None]


def test_missing_category_column_is_allowed(tmp_path):
    f = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "instruction": "Say hello politely."}])
    recs = load_source(src("jsonl", f))
    assert recs[0]["category"] is None


def test_numeric_ids_become_strings(tmp_path):
    f = write_pq(tmp_path / "in.parquet", [{"id": 7, "instruction": "x" * 10}, {"id": 8, "instruction": "y" * 10}])
    assert [r["id"] for r in load_source(src("parquet", f))] == ["7", "8"]


def test_blank_jsonl_lines_are_skipped(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text('{"id": "a", "instruction": "one"}\n\n   \n{"id": "b", "instruction": "two"}\n', encoding="utf-8")
    assert [r["id"] for r in load_source(src("jsonl", f))] == ["a", "b"]


def test_crlf_jsonl(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_bytes(b'{"id": "a", "instruction": "one"}\r\n{"id": "b", "instruction": "two"}\r\n')
    assert [r["instruction"] for r in load_source(src("jsonl", f))] == ["one", "two"]


def test_csv_multiline_quoted_field(tmp_path):
    rows = [{"id": "a", "instruction": "line one\nline two, with comma"}]
    f = write_csv(tmp_path / "in.csv", rows)
    assert load_source(src("csv", f))[0]["instruction"] == "line one\nline two, with comma"


# --- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet"])
def test_missing_instruction_column_lists_columns(tmp_path, kind):
    f = WRITERS[kind](tmp_path / f"in.{kind}", ROWS)
    msg = load_error(src(kind, f, id_column="qid"))  # instruction_column defaults to "instruction"
    assert str(f) in msg
    assert "missing column 'instruction'" in msg
    for col in ("qid", "text", "topic"):
        assert col in msg


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet"])
def test_missing_id_column(tmp_path, kind):
    f = WRITERS[kind](tmp_path / f"in.{kind}", [{"instruction": "hello there"}])
    msg = load_error(src(kind, f))
    assert "missing column 'id'" in msg


def test_empty_jsonl(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text("", encoding="utf-8")
    msg = load_error(src("jsonl", f))
    assert str(f) in msg and "no rows" in msg


def test_whitespace_only_jsonl(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text("\n  \n\n", encoding="utf-8")
    assert "no rows" in load_error(src("jsonl", f))


@pytest.mark.parametrize("content", ["", "id,instruction\n"])
def test_empty_csv(tmp_path, content):
    f = tmp_path / "in.csv"
    f.write_text(content, encoding="utf-8")
    msg = load_error(src("csv", f))
    assert str(f) in msg and "no rows" in msg


def test_empty_parquet_table(tmp_path):
    f = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "instruction": pa.array([], pa.string())}), f)
    msg = load_error(src("parquet", f))
    assert str(f) in msg and "no rows" in msg


def test_zero_byte_parquet(tmp_path):
    f = tmp_path / "in.parquet"
    f.write_bytes(b"")
    msg = load_error(src("parquet", f))
    assert str(f) in msg and "Parquet" in msg


def test_garbage_parquet(tmp_path):
    f = tmp_path / "in.parquet"
    f.write_bytes(b"this is not parquet at all" * 10)
    msg = load_error(src("parquet", f))
    assert str(f) in msg and "not a readable Parquet file" in msg


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet"])
def test_file_not_found(tmp_path, kind):
    f = tmp_path / f"missing.{kind}"
    msg = load_error(src(kind, f))
    assert str(f) in msg and "not found" in msg


def test_invalid_utf8_jsonl_names_line(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_bytes(
        b'{"id": "a", "instruction": "fine"}\n'
        b'{"id": "b", "instruction": "also fine"}\n'
        b'{"id": "c", "instruction": "caf\xe9 latin-1"}\n'
    )
    msg = load_error(src("jsonl", f))
    assert str(f) in msg
    assert "line 3" in msg and "UTF-8" in msg


def test_invalid_utf8_csv_names_line(tmp_path):
    f = tmp_path / "in.csv"
    f.write_bytes(b"id,instruction\na,fine\nb,\xff\xfe broken\n")
    msg = load_error(src("csv", f))
    assert str(f) in msg
    assert "line 3" in msg and "UTF-8" in msg


def test_invalid_json_line_names_line(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text('{"id": "a", "instruction": "ok"}\n{"id": "b", "instruction": \n', encoding="utf-8")
    msg = load_error(src("jsonl", f))
    assert str(f) in msg and "line 2" in msg and "invalid JSON" in msg


def test_json_line_that_is_not_an_object(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text('{"id": "a", "instruction": "ok"}\n["b", "list"]\n', encoding="utf-8")
    msg = load_error(src("jsonl", f))
    assert "line 2" in msg and "JSON object" in msg


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet"])
def test_duplicate_ids_name_both_rows(tmp_path, kind):
    rows = [
        {"id": "x1", "instruction": "first"},
        {"id": "x2", "instruction": "second"},
        {"id": "x1", "instruction": "third"},
    ]
    f = WRITERS[kind](tmp_path / f"in.{kind}", rows)
    msg = load_error(src(kind, f, category_column=None))
    assert "duplicate id 'x1'" in msg
    assert "row 2" in msg and "row 0" in msg
    assert "id_column: null" in msg  # how to fix it


def test_ids_are_compared_after_stripping(tmp_path):
    f = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "instruction": "one"}, {"id": " a ", "instruction": "two"}])
    assert "duplicate id 'a'" in load_error(src("jsonl", f))


@pytest.mark.parametrize("bad", [None, "", "   "])
def test_empty_id(tmp_path, bad):
    f = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "instruction": "one"}, {"id": bad, "instruction": "two"}])
    msg = load_error(src("jsonl", f))
    assert "row 1" in msg and "'id'" in msg and "empty" in msg


@pytest.mark.parametrize("bad,kind", [(42, "a number 42"), (None, "null"), (["a", "list"], "a list"),
                                      ({"k": "v"}, "an object"), (True, "a boolean True")])
def test_non_string_instruction(tmp_path, bad, kind):
    f = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "instruction": "fine"}, {"id": "b", "instruction": bad}])
    msg = load_error(src("jsonl", f))
    assert "row 1" in msg and "'instruction'" in msg and "must be a string" in msg
    assert msg.endswith(f"got {kind}")


def test_non_string_instruction_parquet(tmp_path):
    f = write_pq(tmp_path / "in.parquet", [{"id": "a", "instruction": 1}, {"id": "b", "instruction": 2}])
    msg = load_error(src("parquet", f))
    assert "row 0" in msg and "must be a string, got a number 1" in msg


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x85"])
def test_jsonl_with_unicode_line_separator_inside_string(tmp_path, sep):
    f = tmp_path / "in.jsonl"
    rows = [{"id": "a", "instruction": f"line one{sep}line two"}, {"id": "b", "instruction": "plain"}]
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    recs = load_source(src("jsonl", f))
    assert [r["instruction"] for r in recs] == [rows[0]["instruction"], "plain"]


def test_csv_with_utf8_bom(tmp_path):
    f = tmp_path / "in.csv"
    f.write_bytes("id,instruction\na,Say hello politely.\n".encode("utf-8-sig"))
    recs = load_source(src("csv", f))
    assert recs[0]["id"] == "a"


def test_whitespace_only_category_is_missing(tmp_path):
    f = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "instruction": "Say hello politely.", "category": "   "}])
    assert load_source(src("jsonl", f))[0]["category"] is None


# --- builtin ---------------------------------------------------------------------------


def test_builtin_source():
    recs = load_source(PromptSource(kind="builtin"))
    assert len(recs) >= 300
    cats = Counter(r["category"] for r in recs)
    assert set(cats) == {"reasoning", "math", "coding", "writing", "factual", "advice", "safety"}
    assert all(n > 0 for n in cats.values())
    assert len({r["id"] for r in recs}) == len(recs)
    assert all(isinstance(r["instruction"], str) and r["instruction"].strip() for r in recs)
    assert {r["source"] for r in recs} == {"builtin"}
    assert builtin_path().is_file()


def test_source_kind_needs_path():
    with pytest.raises(ValueError, match="needs `path`"):
        PromptSource(kind="csv")


# --- Hugging Face datasets -----------------------------------------------------------------


def test_hf_unknown_dataset_fails_quickly_offline(hf_offline):
    t0 = time.monotonic()
    msg = load_error(PromptSource(kind="hf", path="judgeloop-tests/no-such-dataset-xyz"))
    assert time.monotonic() - t0 < 10
    assert "no-such-dataset-xyz" in msg
    assert "split 'train'" in msg


def test_hf_local_data_directory(hf_offline, tmp_path):
    d = tmp_path / "ds"
    d.mkdir()
    write_jsonl(d / "train.jsonl", ROWS)
    recs = load_source(PromptSource(kind="hf", path=str(d), **MAPPING))
    assert [r["id"] for r in recs] == ["q1", "q2", "q3"]
    assert [r["category"] for r in recs] == ["factual", "writing", None]
    assert {r["source"] for r in recs} == {str(d)}


def test_hf_missing_split(hf_offline, tmp_path):
    d = tmp_path / "ds"
    d.mkdir()
    write_jsonl(d / "train.jsonl", ROWS)
    msg = load_error(PromptSource(kind="hf", path=str(d), hf_split="validation", **MAPPING))
    assert "split 'validation'" in msg
