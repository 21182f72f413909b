"""Bad prompts files, through the real `prompts` stage: empty, missing columns, not UTF-8,
duplicate ids, invalid JSON, a 1 MB instruction.

Each: exit 1 with the file and the row / line / field named, no
data/prompts.parquet (or the previous one unchanged), and after the file is
fixed the same command completes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import assert_fails, assert_ok, assert_untouched, run_in

GOOD = [
    {"id": "q1", "instruction": "Explain why the sky is blue.", "category": "factual"},
    {"id": "q2", "instruction": "Write a haiku about autumn.", "category": "writing"},
    {"id": "q3", "instruction": "What is 17 times 3?", "category": "math"},
]


def write(path: Path, kind: str, rows: list[dict] | None = None, raw: bytes | None = None) -> Path:
    if raw is not None:
        path.write_bytes(raw)
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows or []), encoding="utf-8")
    elif kind == "csv":
        cols = list(rows[0]) if rows else ["id", "instruction", "category"]
        lines = [",".join(cols)] + [",".join(json.dumps(str(r.get(c, ""))) for c in cols) for r in rows or []]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        cols = list(rows[0]) if rows else ["id", "instruction", "category"]
        pq.write_table(pa.table({c: [r.get(c) for r in rows or []] for c in cols},
                                schema=None if rows else pa.schema([(c, pa.string()) for c in cols])), path)
    return path


def use(project, kind: str, name: str, **extra) -> None:
    project.set_params({"prompts": {"sources": [{"kind": kind, "path": name, **extra}]}})


BAD = [
    # (id, kind, rows or raw bytes, words the message must contain)
    ("empty-jsonl", "jsonl", b"", ["no rows"]),
    ("blank-lines-jsonl", "jsonl", b"\n\n  \n", ["no rows"]),
    ("empty-csv", "csv", b"", ["no rows"]),
    ("header-only-csv", "csv", b"id,instruction,category\n", ["no rows"]),
    ("empty-parquet", "parquet", [], ["no rows"]),
    ("zero-byte-parquet", "parquet", b"", ["not a readable Parquet file"]),
    ("missing-instruction-jsonl", "jsonl", [{"id": "a", "text": "Explain gravity."}], ["missing column 'instruction'", "'text'"]),
    ("missing-instruction-csv", "csv", [{"id": "a", "prompt": "Explain gravity."}], ["missing column 'instruction'", "'prompt'"]),
    ("missing-id-parquet", "parquet", [{"key": "a", "instruction": "Explain gravity."}], ["missing column 'id'"]),
    ("not-utf8-jsonl", "jsonl",
     b'{"id": "a", "instruction": "fine text here"}\n{"id": "b", "instruction": "caf\xe9 au lait"}\n',
     ["line 2: not valid UTF-8"]),
    ("not-utf8-csv", "csv", b"id,instruction\na,fine text here\nb,\xff\xfe broken\n", ["line 3: not valid UTF-8"]),
    ("duplicate-id-jsonl", "jsonl", [GOOD[0], GOOD[1], {**GOOD[2], "id": "q1"}],
     ["row 2 (line 3): duplicate id 'q1'", "first seen at row 0 (line 1);"]),
    ("duplicate-id-csv", "csv", [GOOD[0], {**GOOD[1], "id": "q1"}], ["row 1 (line 3): duplicate id 'q1'"]),
    ("duplicate-id-parquet", "parquet", [GOOD[0], {**GOOD[1], "id": "q1"}], ["row 1: duplicate id 'q1'"]),
    ("invalid-json", "jsonl", b'{"id": "a", "instruction": "fine text here"}\n{"id": "b", "instruction": }\n',
     ["line 2: invalid JSON"]),
    ("not-an-object", "jsonl", b'["a", "list"]\n', ["line 1: expected a JSON object"]),
    ("instruction-not-a-string", "jsonl", [GOOD[0], {"id": "b", "instruction": 42}],
     ["row 1 (line 2): field 'instruction' must be a string, got a number 42"]),
    ("empty-id", "jsonl", [GOOD[0], {"id": "  ", "instruction": "Explain gravity."}], ["row 1 (line 2): field 'id' is empty"]),
]


@pytest.mark.parametrize("case_id,kind,content,needles", BAD, ids=[c[0] for c in BAD])
def test_bad_prompts_file_is_named_then_fixed(project, case_id, kind, content, needles, caplog, monkeypatch):
    name = f"mine.{kind}"
    f = project.root / name
    write(f, kind, *((content, None) if isinstance(content, list) else (None, content)))
    use(project, kind, name)
    before = project.outputs()
    assert_fails(project.stage("prompts"), f"stage prompts failed: {name}: ", *needles)
    assert_untouched(project, before)

    write(f, kind, GOOD)  # the fix; the rerun in process (the same run_stage the script calls)
    assert run_in(project.root, "prompts", caplog=caplog, monkeypatch=monkeypatch) == (0, "")
    got = pq.read_table(project.root / "data/prompts.parquet").column("prompt_id").to_pylist()
    assert sorted(got) == ["q1", "q2", "q3"]


def test_missing_file(project):
    use(project, "jsonl", "nowhere.jsonl")
    assert_fails(project.stage("prompts"), "nowhere.jsonl: file not found")
    assert project.outputs() == {}


def test_failure_keeps_the_previous_output(project):
    """A good run, then a bad file: the earlier data/prompts.parquet is left exactly as it was."""
    write(project.root / "mine.jsonl", "jsonl", GOOD)
    use(project, "jsonl", "mine.jsonl")
    assert_ok(project.stage("prompts"))
    before = project.outputs()
    write(project.root / "mine.jsonl", "jsonl", raw=b'{"id": "q1", "instruction": "caf\xe9"}\n')
    assert_fails(project.stage("prompts"), "mine.jsonl: line 1: not valid UTF-8")
    assert_untouched(project, before)


def test_duplicate_id_across_two_sources(project):
    write(project.root / "a.jsonl", "jsonl", GOOD)
    write(project.root / "b.jsonl", "jsonl", [{"id": "q2", "instruction": "Name three rivers in Africa."}])
    project.set_params({"prompts": {"sources": [{"kind": "jsonl", "path": "a.jsonl"}, {"kind": "jsonl", "path": "b.jsonl"}]}})
    assert_fails(project.stage("prompts"), "b.jsonl: row 0: prompt id 'q2' also used by source 'a.jsonl'")
    assert project.outputs() == {}
    project.set_params({"prompts": {"sources": [{"kind": "jsonl", "path": "a.jsonl"},
                                                {"kind": "jsonl", "path": "b.jsonl", "id_column": None}]}})
    assert_ok(project.stage("prompts"))


MB = 1 << 20


def test_one_megabyte_instruction_is_dropped_by_name(project):
    """Over prompts.max_chars: dropped with a warning naming the file and row; the rest goes on."""
    rows = [GOOD[0], {"id": "huge", "instruction": "Summarise this. " + "lorem ipsum " * (MB // 12)}, GOOD[1]]
    write(project.root / "mine.jsonl", "jsonl", rows)
    assert (project.root / "mine.jsonl").stat().st_size > MB
    use(project, "jsonl", "mine.jsonl")
    res = project.stage("prompts")
    assert_ok(res)
    assert "mine.jsonl: row 1: instruction of " in res.stderr and "dropped (prompts.max_chars = 4000)" in res.stderr
    got = pq.read_table(project.root / "data/prompts.parquet").column("prompt_id").to_pylist()
    assert sorted(got) == ["q1", "q2"]


def test_only_a_one_megabyte_instruction_fails_naming_the_limit(project):
    write(project.root / "mine.jsonl", "jsonl", [{"id": "huge", "instruction": "x" * MB}])
    use(project, "jsonl", "mine.jsonl")
    assert_fails(project.stage("prompts"), "mine.jsonl: row 0: instruction of 1048576 characters dropped",
                 "no instruction left", "'too_long': 1", "prompts.max_chars = 4000")
    assert project.outputs() == {}
    # the fix, for a model with a long enough context: raise the limit
    project.set_params({"prompts": {"sources": [{"kind": "jsonl", "path": "mine.jsonl"}], "max_chars": 2 * MB}})
    assert_ok(project.stage("prompts"))
    assert pq.read_table(project.root / "data/prompts.parquet").column("instruction").to_pylist() == ["x" * MB]
