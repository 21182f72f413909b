"""The `judgeloop` command line, driven through main([...]) on the synthetic project."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from judgeloop.audit import REPORTS
from judgeloop.cli import main

from test_audit import build_project
from test_diff import dvc_repo  # noqa: F401 - a fixture shared with the diff tests


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(build_project(tmp_path / "proj"))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- audit


def test_audit_table(capsys, root):
    code, out, err = run(capsys, "audit", "--root", root, "SELECT iteration, count(*) AS n FROM judgments GROUP BY 1 ORDER BY 1")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["iteration", "n"]
    assert lines[2].split() == ["it1", "12"] and lines[3].split() == ["it2", "12"]
    assert lines[-1] == "(2 rows)"


def test_audit_max_rows(capsys, root):
    code, out, _ = run(capsys, "audit", "--root", root, "--max-rows", "3", "SELECT judgment_id FROM judgments")
    assert code == 0
    assert len(out.splitlines()) == 2 + 3 + 1 and "more not shown" in out


def test_audit_csv_and_json_to_stdout(capsys, root):
    code, out, _ = run(capsys, "audit", "--root", root, "--format", "csv", "--report", "parse_failures")
    assert code == 0
    assert out.splitlines()[0] == '"iteration","parse_status","judgments","rate","forced_verdicts","example_ids","example_text"'
    code, out, _ = run(capsys, "audit", "--root", root, "--format", "json", "--report", "funnel")
    assert code == 0
    rows = json.loads(out)
    assert [r["iteration"] for r in rows] == ["it1", "it2", "it3"] and rows[0]["kept"] == 2


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet", "table"])
def test_audit_output_file(capsys, root, tmp_path, fmt):
    dest = tmp_path / "out" / f"result.{fmt}"
    code, out, err = run(capsys, "audit", "--root", root, "--format", fmt, "--output", str(dest), "SELECT * FROM pairs ORDER BY pair_id")
    assert code == 0, err
    assert out == "" and f"wrote {dest}" in err
    assert dest.exists() and not list(dest.parent.glob(".*.tmp"))  # atomic: no temp file left
    if fmt == "parquet":
        assert pq.read_table(dest).num_rows == 4
    elif fmt == "json":
        assert len(json.loads(dest.read_text())) == 4


def test_audit_output_never_replaces_pipeline_outputs_or_special_files(capsys, root, tmp_path):
    """`--output` is for the user's own files: never a DVC output, a link or a FIFO; an existing file needs --force."""
    import os

    sql = "SELECT pair_id FROM pairs"
    target = Path(root) / "data" / "it1" / "sft.parquet"
    before = target.read_bytes()
    code, _, err = run(capsys, "audit", "--root", root, "--format", "parquet", "--output", str(target), "--force", sql)
    assert code == 2 and "pipeline owns" in err and target.read_bytes() == before
    # the same file named relative to the project, from inside it
    cwd = os.getcwd()
    os.chdir(root)
    try:
        code, _, err = run(capsys, "audit", "--format", "csv", "--output", "data/it1/sft.parquet", sql)
    finally:
        os.chdir(cwd)
    assert code == 2 and "pipeline owns" in err and target.read_bytes() == before
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "link.csv"
    link.symlink_to(victim)
    code, _, err = run(capsys, "audit", "--root", root, "--format", "csv", "--output", str(link), "--force", sql)
    assert code == 2 and "symbolic link" in err and link.is_symlink() and victim.read_text() == "keep me"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, _, err = run(capsys, "audit", "--root", root, "--format", "csv", "--output", str(fifo), "--force", sql)
    assert code == 2 and "not a regular file" in err and fifo.is_fifo()
    code, _, err = run(capsys, "audit", "--root", root, "--format", "csv", "--output", str(victim), sql)
    assert code == 2 and "pass --force" in err and victim.read_text() == "keep me"
    code, _, err = run(capsys, "audit", "--root", root, "--format", "csv", "--output", str(victim), "--force", sql)
    assert code == 0 and victim.read_text().startswith('"pair_id"')


def test_judge_output_never_replaces_a_pipeline_output(capsys, root):
    import os

    target = Path(root) / "data" / "it1" / "sft.parquet"
    before = target.read_bytes()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        code, _, err = run(capsys, "judge", "x.json", "--format", "llmbar", "--model", "models/it0", "--output",
                           "data/it1/sft.parquet", "--force")
    finally:
        os.chdir(cwd)
    assert code == 2 and "pipeline owns" in err and target.read_bytes() == before


def test_audit_query_time_limit(capsys, root):
    """An endless query is stopped after --timeout seconds with one line, not left running until killed."""
    import time

    t0 = time.time()
    code, _, err = run(capsys, "audit", "--root", root, "--timeout", "1", "SELECT count(*) FROM range(100000000000)")
    assert code == 2 and "longer than --timeout 1 s" in err and time.time() - t0 < 60
    code, _, err = run(capsys, "audit", "--root", root, "--timeout", "-1", "SELECT 1")
    assert code == 2 and "argument --timeout: -1 is out of range" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag,value", [("--limit", "-1"), ("--limit", "0"), ("--samples", "0"), ("--max-tokens", "-5"),
                                        ("--batch-size", "0"), ("--temperature", "nan"), ("--temperature", "0"),
                                        ("--order-seed", "99999999999999999999"), ("--samples", "1e12")])
def test_judge_flags_have_ranges(capsys, flag, value):
    """`--limit -1` used to drop the last row silently; every numeric flag now has a range, refused in one line."""
    code, _, err = run(capsys, "judge", "x.json", "--format", "llmbar", "--model", "m", "--output", "o.parquet", flag, value)
    assert code == 2 and f"argument {flag}" in err and len(err.strip().splitlines()) == 1


LLMBAR_OK = {"input": "q", "output_1": "a", "output_2": "b", "label": 1}
PAIR_OK = {"prompt": "q", "chosen": "a", "rejected": "b"}
RB_OK = {"prompt": "q", "chosen": "a", "chosen_model": "m", "rejected": "b", "rejected_model": "m", "subset": "s", "id": 1}
RB2_OK = {"id": "0", "prompt": "q", "chosen": ["a"], "rejected": ["b", "c", "d"], "subset": "Focus"}
JB_OK = {"pair_id": "p", "source": "livecodebench", "question": "q", "response_A": "a", "response_B": "b", "label": "A>B"}
RMB_OK = {"id": 1, "prompt": "q", "chosen": ["a", "b", "c"], "rejected": ["d", "e", "f"], "domain": "math"}
LIKERT_OK = {"id": "r1", "instruction": "q", "response": "a", "criteria": "c", "gold_score": 3,
             **{f"score{k}_description": f"d{k}" for k in range(1, 6)}}


@pytest.mark.parametrize("fmt,rows,where,says", [
    ("llmbar", [LLMBAR_OK, LLMBAR_OK | {"label": True}], "example 1", "field 'label' must be the integer 1 or 2, got True"),
    ("llmbar", [LLMBAR_OK | {"label": 1.0}], "example 0", "field 'label' must be the integer 1 or 2, got 1.0"),
    ("llmbar", [LLMBAR_OK | {"output_2": 7}], "example 0", "field 'output_2' must be a string, got a number 7"),
    ("llmbar", [LLMBAR_OK | {"input": None}], "example 0", "field 'input' must be a string, got null"),
    ("llmbar", [LLMBAR_OK | {"id": "1"}, LLMBAR_OK], "example 1", "duplicate id '1', first seen at example 0; ids generated"),
    ("llmbar", ["text"], "example 0", "expected a JSON object, got str"),
    ("pairwise", [PAIR_OK, PAIR_OK | {"chosen": ["a"]}], "row 1", "field 'chosen' must be a string, got a list"),
    ("pairwise", [PAIR_OK | {"id": "x"}, PAIR_OK | {"id": "x"}], "row 1", "duplicate id 'x', first seen at row 0"),
    ("pairwise", [PAIR_OK | {"id": True}], "row 0", "field 'id' must be a non-empty id (text or an integer), got a boolean True"),
    ("pairwise", [PAIR_OK | {"subset": 3}], "row 0", "field 'subset' must be a string, got a number 3"),
    ("rewardbench", [RB_OK, RB_OK], "row 1", "duplicate id '1', first seen at row 0"),
    ("rewardbench", [RB_OK | {"id": 2.5}], "row 0", "field 'id' must be a non-empty id"),
    ("rewardbench", [RB_OK | {"rejected": False}], "row 0", "field 'rejected' must be a string, got a boolean False"),
    ("rewardbench2", [RB2_OK, RB2_OK | {"id": "1", "rejected": ["b"]}], "row 1", "field 'rejected' must be a list of 3 strings, got a list of 1"),
    ("rewardbench2", [RB2_OK | {"subset": "Ties"}], "row 0", "field 'id' of a Ties row must be 'ref:<prompt>' or 'tied:<prompt>'"),
    ("judgebench", [JB_OK | {"label": "B>>A"}], "row 0", "field 'label' must be one of ['A>B', 'B>A'], got 'B>>A'"),
    ("rmbench", [RMB_OK | {"rejected": ["d", 5, "f"]}], "row 0", "field 'rejected' item 1 must be a string, got a number 5"),
    ("likert", [LIKERT_OK | {"gold_score": 3.5}], "row 0", "field 'gold_score' must be an integer from 1 to 5, got a number 3.5"),
    ("likert", [LIKERT_OK | {"gold_score": float("inf")}], "row 0", "field 'gold_score' must be an integer from 1 to 5, got a number inf"),
    ("likert", [LIKERT_OK | {"gold_score": True}], "row 0", "field 'gold_score' must be an integer from 1 to 5, got a boolean True"),
    ("likert", [LIKERT_OK | {"criteria": 4}], "row 0", "field 'criteria' must be a string, got a number 4"),
    ("likert", [LIKERT_OK, LIKERT_OK], "row 1", "duplicate id 'r1', first seen at row 0"),
])
def test_judge_input_is_checked_against_its_schema_before_the_model_loads(capsys, tmp_path, fmt, rows, where, says):
    """A wrong JSON type, a non-integer or non-finite score, a duplicate (or colliding generated) id:
    one line naming file, row and field, never a traceback or a conversion. The model named does not
    exist, so reaching the model would fail differently."""
    f = tmp_path / ("in.json" if fmt == "llmbar" else "in.jsonl")
    f.write_text(json.dumps(rows) if fmt == "llmbar" else "".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = run(capsys, "judge", str(f), "--format", fmt, "--model", "nobody/no-model",
                         "--output", str(tmp_path / "o.parquet"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{f}: {where}" in err and says in err, err


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_audit_results_stream_in_batches(capsys, root, tmp_path, monkeypatch, fmt):
    """csv / json / parquet are written a batch at a time (memory flat in the row count), with the same content."""
    import judgeloop.cli as cli

    monkeypatch.setattr(cli, "STREAM_ROWS", 7)
    dest = tmp_path / f"r.{fmt}"
    sql = "SELECT range AS i, 'x' || range AS s, [range, range] AS l FROM range(100)"
    code, _, err = run(capsys, "audit", "--root", root, "--format", fmt, "--output", str(dest), sql)
    assert code == 0, err
    if fmt == "json":
        rows = json.loads(dest.read_text())
        assert [r["i"] for r in rows] == list(range(100)) and rows[3] == {"i": 3, "s": "x3", "l": [3, 3]}
    elif fmt == "csv":
        lines = dest.read_text().splitlines()
        assert lines[0] == '"i","s","l"' and len(lines) == 101 and lines[4] == '3,"x3","[3, 3]"'
    else:
        assert pq.read_table(dest).column("i").to_pylist() == list(range(100))
    code, out, _ = run(capsys, "audit", "--root", root, "--format", fmt if fmt != "parquet" else "json",
                       "SELECT * FROM range(0)")
    assert code == 0 and (out == "[]\n" if fmt != "csv" else out.strip() == '"range"')


def test_audit_table_streams_with_no_row_limit(capsys, root, monkeypatch):
    """`--format table --max-rows -1` reads the result a batch at a time too (it used to fetch every row at once)."""
    import duckdb

    import judgeloop.cli as cli

    monkeypatch.setattr(cli, "STREAM_ROWS", 7)
    fetched = []
    monkeypatch.setattr(duckdb.DuckDBPyRelation, "fetchall", lambda self: fetched.append(1) or [])
    sql = "SELECT range AS i, 'x' || range AS s FROM range(100)"
    code, out, err = run(capsys, "audit", "--root", root, "--max-rows", "-1", sql)
    lines = out.splitlines()
    assert code == 0 and not fetched, err
    assert lines[0].split() == ["i", "s"] and len(lines) == 103 and lines[2 + 42].split() == ["42", "x42"]
    assert lines[-1] == "(100 rows)"
    code, out, _ = run(capsys, "audit", "--root", root, "--max-rows", "10", sql)
    assert out.splitlines()[-1] == "(10 rows, more not shown: use --max-rows or --output)" and len(out.splitlines()) == 13
    code, out, _ = run(capsys, "audit", "--root", root, "--max-rows", "100", sql)
    assert out.splitlines()[-1] == "(100 rows)"


def test_audit_parquet_needs_output(capsys, root):
    code, _, err = run(capsys, "audit", "--root", root, "--format", "parquet", "SELECT 1")
    assert code == 2 and "--output" in err


@pytest.mark.parametrize("name", list(REPORTS))
def test_audit_every_report(capsys, root, name):
    code, out, err = run(capsys, "audit", "--root", root, "--report", name)
    assert code == 0, err
    assert "row" in out.splitlines()[-1]


@pytest.mark.parametrize("name", list(REPORTS))
def test_audit_every_report_on_empty_project(capsys, tmp_path, name):
    code, out, err = run(capsys, "audit", "--root", str(tmp_path), "--report", name)
    assert code == 0, err
    assert out.splitlines()[-1] == "(0 rows)"


def test_audit_show_sql(capsys, root):
    code, out, _ = run(capsys, "audit", "--root", root, "--report", "length_bias", "--show-sql")
    assert code == 0 and out == REPORTS["length_bias"].sql
    # the printed SQL runs as is
    code, out, err = run(capsys, "audit", "--root", root, out)
    assert code == 0, err


def test_audit_list_reports_and_views(capsys, root):
    code, out, _ = run(capsys, "audit", "--list-reports")
    assert code == 0 and all(name in out for name in REPORTS)
    code, out, _ = run(capsys, "audit", "--root", root, "--views")
    assert code == 0
    assert "judgments  (3 files: data/it1/judgments.parquet, data/it2/judgments.parquet, data/it3/judgments.parquet)" in out
    assert "dpo  (0 files)" in out and "judge_note VARCHAR" in out


def test_audit_bad_query(capsys, root):
    code, out, err = run(capsys, "audit", "--root", root, "SELECT no_such_column FROM judgments")
    assert code == 2 and out == ""
    assert "no_such_column" in err and "views:" in err and "  judgments: judgment_id, pair_id" in err
    assert "Traceback" not in err
    code, _, err = run(capsys, "audit", "--root", root, "SELEC 1")
    assert code == 2 and "syntax error" in err.lower()


@pytest.mark.parametrize(
    "sql", ["COPY judgments TO 'stolen.csv'", "CREATE TABLE t AS SELECT 1", "ATTACH 'x.db' AS x", "SET threads = 1"]
)
def test_audit_refuses_writes(capsys, root, sql):
    code, out, err = run(capsys, "audit", "--root", root, sql)
    assert code == 2 and "read-only" in err
    assert not (Path(root) / "stolen.csv").exists() and not (Path(root) / "x.db").exists()


def test_audit_usage_errors(capsys, root, tmp_path):
    assert run(capsys, "audit", "--root", root)[0] == 2
    assert run(capsys, "audit", "--root", root, "--report", "nope")[0] == 2
    assert run(capsys, "audit", "--root", root, "--report", "funnel", "SELECT 1")[0] == 2
    code, _, err = run(capsys, "audit", "--root", str(tmp_path / "missing"), "SELECT 1")
    assert code == 2 and "not a directory" in err


def test_audit_sql_from_stdin(capsys, root, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("SELECT count(*) AS n FROM sft"))
    code, out, _ = run(capsys, "audit", "--root", root, "-")
    assert code == 0 and out.splitlines()[2].strip() == "2"


# ---------------------------------------------------------------- diff


def test_diff_identical_exit_0(capsys, root):
    code, out, _ = run(capsys, "diff", "--root", root, "--kind", "judgments", "--a", "it1", "--b", "it1")
    assert code == 0 and "IDENTICAL" in out


def test_diff_different_exit_1(capsys, root):
    code, out, _ = run(capsys, "diff", "--root", root, "--kind", "judgments", "--a", "it1", "--b", "it2")
    assert code == 1
    assert "added 4, removed 4, changed 5, unchanged 3" in out and "+ judge_note (VARCHAR)" in out


def test_diff_json(capsys, root):
    code, out, _ = run(capsys, "diff", "--root", root, "--kind", "eval", "--a", "it0", "--b", "it1", "--format", "json")
    assert code == 1
    res = json.loads(out)
    assert res["identical"] is False and res["changed"] == 2 and res["key_cols"] == ["example_id"]


def test_diff_custom_key_and_ignore(capsys, root):
    code, out, _ = run(
        capsys, "diff", "--root", root, "--kind", "eval", "--a", "it0", "--b", "it1",
        "--ignore", "text", "--ignore", "verdict", "--ignore", "score", "--ignore", "parse_status", "--ignore", "verdict_source",
    )
    assert code == 0, out  # nothing else differs


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--kind", "sft", "--a", "it1", "--b", "it2"], "data/it2/sft.parquet: missing"),
        (["--kind", "judgments", "--a", "it1", "--b", "it9"], "data/it9/judgments.parquet: missing"),
        (["--kind", "pairs", "--a", "it1", "--b", "it2"], "one file for all iterations"),
        (["--kind", "judgments", "--a", "it1"], "give --kind, --a and --b"),
        (["--kind", "judgments", "--a", "it1", "--b", "it2", "--rev-a", "HEAD"], "not both"),
        ([], "nothing to compare"),
        (["--kind", "judgments", "--a", "it1", "--b", "it2", "--key", "pair_id"], "not unique"),
        (["--kind", "judgments", "--rev-a", "HEAD"], "name one"),
    ],
)
def test_diff_errors_exit_2(capsys, root, argv, message):
    code, out, err = run(capsys, "diff", "--root", root, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_diff_revisions(capsys, dvc_repo):  # noqa: F811
    r = str(dvc_repo)
    code, out, _ = run(capsys, "diff", "--root", r, "--path", "data/it1/judgments.parquet", "--rev-a", "HEAD")
    assert code == 1 and "changed 1" in out and "A->B 1" in out
    code, out, _ = run(capsys, "diff", "--root", r, "--kind", "judgments", "--iteration", "it1", "--rev-a", "HEAD", "--rev-b", "HEAD")
    assert code == 0 and "IDENTICAL" in out
    code, _, err = run(capsys, "diff", "--root", r, "--path", "data/it1/judgments.parquet", "--rev-a", "v9.9")
    assert code == 2 and "data/it1/judgments.parquet@v9.9" in err


# ---------------------------------------------------------------- stage and entry point


def test_stage_forwards_to_run_stage(capsys, monkeypatch, tmp_path):
    import judgeloop.pipeline as pipeline

    calls = []

    def fake(name, argv):
        calls.append((name, argv, Path.cwd()))
        return 0

    monkeypatch.setattr(pipeline, "run_stage", fake)
    monkeypatch.chdir(tmp_path)
    assert main(["stage", "judge", "--iteration", "it1", "--params", "p.yaml"]) == 0
    assert calls[-1][:2] == ("judge", ["--iteration", "it1", "--params", "p.yaml"])
    other = tmp_path / "other"
    other.mkdir()
    assert main(["stage", "curate", "--root", str(other), "--iteration", "it2"]) == 0
    assert calls[-1] == ("curate", ["--iteration", "it2"], other)


def test_stage_unknown(capsys):
    code, _, err = run(capsys, "stage", "nope")
    assert code == 2 and "unknown stage" in err


def test_usage(capsys):
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert "audit" in capsys.readouterr().out


def test_console_script_exit_status(root):
    exe = Path(sys.executable).with_name("judgeloop")
    if not exe.exists():
        pytest.skip("console script not installed")
    p = subprocess.run([str(exe), "diff", "--root", root, "--kind", "judgments", "--a", "it1", "--b", "it2"], capture_output=True, text=True)
    assert p.returncode == 1 and "DIFFERENT" in p.stdout
    p = subprocess.run([str(exe), "audit", "--root", root, "DROP VIEW judgments"], capture_output=True, text=True)
    assert p.returncode == 2 and "read-only" in p.stderr
