"""The SQL audit: views over a synthetic project, read-only guarantees, canned reports.

`build_project` writes a tiny project with hand-checkable numbers; the
diff and CLI tests reuse it.

    pairs     p1 (math, y_w longer), p2 (code, y_l longer), p3 (math, equal lengths), p4 (no category)
    it1       judgments on p1-p3, 2 orders x 2 samples; sft keeps p1 and p3; curation.json
    it2       judgments on p1, p2, p4 with an extra column (schema drift); NO sft file;
              curation.json without removed_by_balance and with an extra key
    it3       an empty iteration: 0-row judgments and sft, curation says so
    it0, it1  eval.parquet (it0 has nothing else)
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from judgeloop.audit import REPORTS, AuditError, check_read_only, describe_views, open_audit, query, run_report
from judgeloop.diff import diff_iterations
from judgeloop.io import write_json, write_parquet
from judgeloop.schemas import to_table

LENGTHS = {"p1": (100, 50), "p2": (40, 80), "p3": (60, 60), "p4": (70, 30)}  # (len y_w, len y_l)
CATEGORY = {"p1": "math", "p2": "code", "p3": "math", "p4": None}

# (pair, order) -> the verdicts of samples 0, 1
IT1 = {
    ("p1", "wl"): ["A", "A"],
    ("p1", "lw"): ["B", "B"],
    ("p2", "wl"): ["A", "B"],
    ("p2", "lw"): ["A", "A"],
    ("p3", "wl"): ["A", None],
    ("p3", "lw"): ["A", "A"],
}
IT2 = {
    ("p1", "wl"): ["B", "B"],
    ("p1", "lw"): ["B", "B"],
    ("p2", "wl"): ["A", "A"],
    ("p2", "lw"): ["B", "B"],
    ("p4", "wl"): ["A", "A"],
    ("p4", "lw"): ["B", "A"],
}


def judgment(it: str, pair: str, order: str, idx: int, verdict: str | None, text: str | None = None) -> dict:
    lw_, ll_ = LENGTHS[pair]
    len_a, len_b = (lw_, ll_) if order == "wl" else (ll_, lw_)
    correct = None if verdict is None else (verdict == "A") == (order == "wl")
    return {
        "judgment_id": f"{it}:{pair}:{order}:{idx}",
        "pair_id": pair,
        "iteration": it,
        "judge_model": f"models/{'it0' if it == 'it1' else 'it1'}",
        "judge_hash": f"hash-{it}",
        "order": order,
        "sample_idx": idx,
        "seed": zlib.crc32(f"{it}:{pair}:{order}:{idx}".encode()) % 1000,
        "sampling": json.dumps({"temperature": 0.7, "n": 2}),
        "text": text or f"Judgment {idx} of {pair} in order {order}. " + ("[[" + verdict + "]]" if verdict else "no verdict"),
        "verdict": verdict,
        "parse_status": "ok" if verdict else "none",
        "verdict_source": "parsed" if verdict else None,
        "p_a": None,
        "p_b": None, "prior_a": None,
        "correct": correct,
        "n_tokens": 20 + idx,
        "finish_reason": "stop",
        "len_a": len_a,
        "len_b": len_b,
    }


def judgments_table(it: str, spec: dict) -> pa.Table:
    rows = [judgment(it, p, o, i, v) for (p, o), vs in spec.items() for i, v in enumerate(vs)]
    return to_table("judgments", rows)


def sft_row(it: str, j: dict) -> dict:
    return {
        "example_id": f"{it}:sft:{j['judgment_id']}",
        "pair_id": j["pair_id"],
        "iteration": it,
        "order": j["order"],
        "judgment_id": j["judgment_id"],
        "verdict": j["verdict"],
        "verdict_source": j["verdict_source"],
        "prompt": f"Which answer is better for {j['pair_id']}?",
        "completion": j["text"],
    }


def eval_rows(model: str, verdicts: dict[str, str | None]) -> pa.Table:
    rows = []
    for ex, v in verdicts.items():
        order = ex.rsplit(":", 1)[1]
        good = "A" if order == "wl" else "B"
        rows.append(
            {
                "dataset": "synthetic",
                "subset": "math",
                "example_id": ex,
                "judge": f"models/{model}",
                "judge_hash": f"hash-{model}",
                "order": order,
                "text": f"eval text {ex} {v}",
                "verdict": v,
                "parse_status": "ok" if v else "none",
                "verdict_source": "parsed" if v else None,
                "p_a": 0.5,
                "p_b": 0.5,
                "prior_a": None,
                "score": 0.5 if v is None else float(v == good),
                "n_tokens": 10,
                "finish_reason": "stop",
            }
        )
    return to_table("eval", rows)


EVAL_IT0 = {"synthetic:e1:wl": "A", "synthetic:e1:lw": "A", "synthetic:e2:wl": "A", "synthetic:e2:lw": "A"}
EVAL_IT1 = {"synthetic:e1:wl": "A", "synthetic:e1:lw": "B", "synthetic:e2:wl": None, "synthetic:e2:lw": "A"}


def build_project(root: Path) -> Path:
    data, stats = root / "data", root / "stats"
    prompts = [
        {
            "prompt_id": f"q{p[1]}",
            "instruction": f"instruction {p}",
            "source": "builtin",
            "source_row": int(p[1]),
            "category": CATEGORY[p],
            "category_source": "given" if CATEGORY[p] else "none",
            "category_parse_status": "skipped",
            "split": "it2" if p == "p4" else "it1",
            "split_u": 0.1 * int(p[1]),
            "split_seed": 0,
        }
        for p in LENGTHS
    ]
    write_parquet(to_table("prompts", prompts), data / "prompts.parquet")
    pairs = [
        {
            "pair_id": p,
            "prompt_id": f"q{p[1]}",
            "split": "it2" if p == "p4" else "it1",
            "category": CATEGORY[p],
            "instruction": f"instruction {p}",
            "response_w": "w" * LENGTHS[p][0],
            "modified_instruction": f"modified {p}",
            "response_l": "l" * LENGTHS[p][1],
            "gen_status": "ok",
            "generator": "models/it0",
            "generator_hash": "h0",
            "sampling": "{}",
            "seed": 1,
            "n_tokens_w": 10,
            "n_tokens_modify": 5,
            "n_tokens_l": 10,
            "finish_reason_w": "stop",
            "finish_reason_modify": "stop",
            "finish_reason_l": "stop",
            "raw_modify": "<x>",
        }
        for p in LENGTHS
    ]
    write_parquet(to_table("pairs", pairs), data / "pairs.parquet")

    it1 = judgments_table("it1", IT1)
    write_parquet(it1, data / "it1" / "judgments.parquet")
    by_id = {r["judgment_id"]: r for r in it1.to_pylist()}
    sft = [sft_row("it1", by_id["it1:p1:wl:0"]), sft_row("it1", by_id["it1:p3:wl:0"])]
    write_parquet(to_table("sft", sft), data / "it1" / "sft.parquet")
    write_json(
        {
            "judgments": 12, "groups": 3, "unparsed_text": 1, "no_verdict": 1,
            "removed_incorrect_or_no_verdict": 6, "correct": 6, "groups_without_correct": 0,
            "groups_below_min_correct_fraction": 0, "one_per_group": 3, "a_wins_before_balance": 2,
            "b_wins_before_balance": 1, "removed_by_balance": 1, "kept": 2, "keep_rate_pairs": 0.6667,
        },
        stats / "it1" / "curation.json",
    )

    it2 = judgments_table("it2", IT2)
    it2 = it2.append_column("judge_note", pa.array(["drift"] * it2.num_rows))  # a column it1 lacks
    write_parquet(it2, data / "it2" / "judgments.parquet")
    # no data/it2/sft.parquet: curation has not run (or failed) for it2
    write_json(
        {"judgments": 12, "correct": 9, "kept": 0, "keep_rate_pairs": 0.0, "new_counter": 5,
         "empty_reason": "balancing removed everything"},
        stats / "it2" / "curation.json",
    )

    write_parquet(to_table("judgments", []), data / "it3" / "judgments.parquet")
    write_parquet(to_table("sft", []), data / "it3" / "sft.parquet")
    write_json({"judgments": 0, "correct": 0, "kept": 0, "keep_rate_pairs": 0.0, "empty_reason": "no judgments to curate"},
               stats / "it3" / "curation.json")

    write_parquet(eval_rows("it0", EVAL_IT0), data / "it0" / "eval.parquet")
    write_parquet(eval_rows("it1", EVAL_IT1), data / "it1" / "eval.parquet")
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return build_project(tmp_path / "proj")


@pytest.fixture
def con(project: Path):
    c = open_audit(project)
    yield c
    c.close()


def rows(rel) -> list[dict]:
    return [dict(zip(rel.columns, r)) for r in rel.fetchall()]


# ---------------------------------------------------------------- views


def test_views_span_iterations_with_iteration_column(con):
    got = dict(query(con, "SELECT iteration, count(*) FROM judgments GROUP BY 1 ORDER BY 1").fetchall())
    assert got == {"it1": 12, "it2": 12}  # it3 exists but has no rows
    assert dict(query(con, "SELECT iteration, count(*) FROM eval GROUP BY 1").fetchall()) == {"it0": 4, "it1": 4}
    assert dict(query(con, "SELECT iteration, count(*) FROM sft GROUP BY 1").fetchall()) == {"it1": 2}
    # prompts and pairs: the split that consumes the row
    assert dict(query(con, "SELECT iteration, count(*) FROM pairs GROUP BY 1").fetchall()) == {"it1": 3, "it2": 1}
    fn = query(con, "SELECT DISTINCT filename FROM judgments").fetchall()
    assert all(f[0].endswith("judgments.parquet") for f in fn)


def test_schema_drift_extra_column_unions(con):
    got = query(con, "SELECT iteration, count(judge_note) FROM judgments GROUP BY 1 ORDER BY 1").fetchall()
    assert got == [("it1", 0), ("it2", 12)]


def test_missing_kind_is_an_empty_view_with_schema_columns(con):
    cols = dict(describe_views(con)["dpo"])
    assert {"example_id", "pair_id", "iteration", "order", "filename"} <= set(cols)
    assert query(con, "SELECT count(*) FROM dpo").fetchall()[0] == (0,)


def test_empty_project_has_every_view(tmp_path):
    c = open_audit(tmp_path)
    views = describe_views(c)
    assert set(views) == {"prompts", "pairs", "rubrics", "judgments", "sft", "dpo", "eval", "curation"}
    assert "len_a" in dict(views["judgments"])
    for name in REPORTS:
        assert run_report(c, name).fetchall() == []
    c.close()


def likert_table(it: str, scores: list[int | None]) -> pa.Table:
    rows = [
        {
            "judgment_id": f"{it}:i{k}:0", "item_id": f"i{k}", "iteration": it, "judge_model": "models/it1",
            "judge_hash": "h", "sample_idx": 0, "seed": k, "sampling": "{}", "text": f"Score: {sc}", "score": sc,
            "parse_status": "ok" if sc else "none", "score_source": "parsed" if sc else None, "expected_score": None,
            "gold_score": 3, "n_tokens": 5, "finish_reason": "stop",
        }
        for k, sc in enumerate(scores)
    ]
    return to_table("likert_judgments", rows)


def test_likert_iteration_unions_and_stays_out_of_pairwise_reports(project):
    write_parquet(likert_table("it4", [3, 5, None]), project / "data" / "it4" / "judgments.parquet")
    c = open_audit(project)
    got = query(c, "SELECT iteration, count(item_id), count(score), count(pair_id) FROM judgments GROUP BY 1 ORDER BY 1").fetchall()
    assert got[-1] == ("it4", 3, 2, 0) and got[0] == ("it1", 0, 0, 12)
    for name in ("position_bias", "sample_agreement", "length_bias", "keep_rate_by_category"):
        assert "it4" not in {r[0] for r in run_report(c, name).fetchall()}, name
    parse = {(r[0], r[1]): r[2] for r in run_report(c, "parse_failures").fetchall()}
    assert parse[("it4", "none")] == 1 and parse[("it4", "ok")] == 2  # parse failures are for both methods
    assert [r[:2] for r in run_report(c, "verdict_change").fetchall()] == [("it1", "it2")]
    c.close()


def test_curation_view_fills_missing_keys(con):
    got = rows(query(con, "SELECT iteration, kept, removed_by_balance, new_counter FROM curation ORDER BY iteration"))
    assert got == [
        {"iteration": "it1", "kept": 2, "removed_by_balance": 1, "new_counter": None},
        {"iteration": "it2", "kept": 0, "removed_by_balance": None, "new_counter": 5},
        {"iteration": "it3", "kept": 0, "removed_by_balance": None, "new_counter": None},
    ]


def test_iteration_key_sorts_naturally(con):
    got = query(con, "SELECT x FROM (VALUES ('it10'), ('it2'), ('it1')) t(x) ORDER BY iteration_key(x)").fetchall()
    assert [r[0] for r in got] == ["it1", "it2", "it10"]


def test_root_must_exist(tmp_path):
    with pytest.raises(AuditError, match="not a directory"):
        open_audit(tmp_path / "nope")


@pytest.mark.parametrize("cache_dir", [None, "../../shared-cache"])
def test_views_follow_symlinked_files(tmp_path, cache_dir):
    # DVC's `cache.type symlink` leaves data/<it>/x.parquet pointing into .dvc/cache (or a `cache.dir` elsewhere).
    root = build_project(tmp_path / "proj")
    (root / ".dvc").mkdir(exist_ok=True)
    if cache_dir:
        (root / ".dvc" / "config").write_text(f"[cache]\n    dir = {cache_dir}\n")
        cache = (root / ".dvc" / cache_dir).resolve()
    else:
        cache = root / ".dvc" / "cache"
    (cache / "files" / "md5" / "ab").mkdir(parents=True)
    src = root / "data" / "it1" / "judgments.parquet"
    target = cache / "files" / "md5" / "ab" / "c123"
    src.rename(target)
    src.symlink_to(target)
    c = open_audit(root)
    assert query(c, "SELECT count(*) FROM judgments WHERE iteration = 'it1'").fetchall()[0] == (12,)
    c.close()


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_link_out_of_the_project_never_widens_the_sandbox(tmp_path, capsys, what):
    """A link under data/ to a folder outside (a repository can commit one) would add that folder to what SQL
    reads; the audit refuses to open instead, naming the link."""
    from judgeloop.cli import main

    root = build_project(tmp_path / "proj")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("password: hunter2")
    if what == "file":
        import shutil

        shutil.copy(root / "data" / "it1" / "judgments.parquet", outside / "j.parquet")
        (root / "data" / "it9").mkdir()
        (root / "data" / "it9" / "judgments.parquet").symlink_to(outside / "j.parquet")
    else:
        (root / "data" / "evil").symlink_to(outside, target_is_directory=True)
    code = main(["audit", "--root", str(root), f"SELECT content FROM read_text('{root}/data/evil/secret.txt')"
                 if what == "folder" else f"SELECT content FROM read_text('{outside}/secret.txt')"])
    out, err = capsys.readouterr()
    assert code == 2 and "outside the project" in err and "hunter2" not in out + err
    with pytest.raises(AuditError, match="is a link to"):
        open_audit(root)


# ---------------------------------------------------------------- read-only


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "select * from judgments where verdict = 'A'",
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        "FROM judgments LIMIT 1",
        "DESCRIBE judgments",
        "SHOW TABLES",
        "SUMMARIZE judgments",
        "EXPLAIN SELECT 1",
        "EXPLAIN ANALYZE SELECT count(*) FROM judgments",
        "SELECT 1;",
    ],
)
def test_read_statements_are_allowed(con, sql):
    assert check_read_only(sql) == sql
    query(con, sql).fetchall()


@pytest.mark.parametrize(
    "sql, word",
    [
        ("COPY (SELECT 1) TO 'out.csv'", "COPY"),
        ("COPY judgments TO 'data/it1/judgments.parquet'", "COPY"),
        ("CREATE TABLE t AS SELECT 1", "CREATE"),
        ("CREATE OR REPLACE VIEW judgments AS SELECT 1", "CREATE"),
        ("INSERT INTO t VALUES (1)", "INSERT"),
        ("DROP VIEW judgments", "DROP"),
        ("ATTACH 'x.db' AS x", "ATTACH"),
        ("DETACH x", "DETACH"),
        ("EXPORT DATABASE 'dump'", "EXPORT"),
        ("SET enable_external_access = true", "SET"),
        ("RESET threads", "SET"),
        ("PRAGMA version", "PRAGMA"),
        ("INSTALL httpfs", "LOAD"),
        ("LOAD httpfs", "LOAD"),
        ("CALL pragma_version()", "CALL"),
        ("BEGIN TRANSACTION", "TRANSACTION"),
        ("EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'", "COPY"),
        ("EXPLAIN COPY (SELECT 1) TO 'x.csv'", "COPY"),
    ],
)
def test_write_statements_are_refused(con, project, sql, word):
    with pytest.raises(AuditError, match=f"read-only: {word}"):
        query(con, sql)
    assert not (project / "out.csv").exists() and not (project / "x.csv").exists()


def test_multiple_statements_are_refused(con):
    with pytest.raises(AuditError, match="one statement"):
        query(con, "SELECT 1; COPY (SELECT 1) TO 'x.csv'")


def test_malformed_query_reports_duckdb_message(con):
    with pytest.raises(AuditError, match="(?i)parser error|syntax"):
        query(con, "SELEC 1")
    with pytest.raises(AuditError, match="no_such_column"):
        query(con, "SELECT no_such_column FROM judgments")


def test_connection_is_locked_even_without_the_filter(con, project, tmp_path):
    """Layer 2: bypass check_read_only and talk to DuckDB directly."""
    out = tmp_path / "escape.csv"
    with pytest.raises(duckdb.Error, match="(?i)permission|disabled"):
        con.execute(f"COPY (SELECT 1) TO '{out}'")
    assert not out.exists()
    with pytest.raises(duckdb.Error, match="(?i)permission|disabled"):
        con.execute("SELECT * FROM read_csv('/etc/passwd')")
    with pytest.raises(duckdb.Error, match="(?i)locked"):
        con.execute("SET enable_external_access = true")
    with pytest.raises(duckdb.Error, match="(?i)locked"):
        con.execute("SET allowed_directories = ['/']")
    # ... and the views still read their files after the lock
    assert con.execute("SELECT count(*) FROM judgments").fetchall() == [(24,)]


def test_unlocked_connection_differs(project, tmp_path):
    # Guards the test above: without the lock the same COPY does write.
    c = open_audit(project, lock=False)
    out = tmp_path / "escape.csv"
    c.execute(f"COPY (SELECT 1) TO '{out}'")
    assert out.exists()
    c.close()


# ---------------------------------------------------------------- canned reports


def test_every_report_runs_on_the_project(con):
    for name in REPORTS:
        run_report(con, name).fetchall()


def test_report_unknown(con):
    with pytest.raises(AuditError, match="unknown report"):
        run_report(con, "nope")


def test_funnel(con):
    got = rows(run_report(con, "funnel"))
    assert [r["iteration"] for r in got] == ["it1", "it2", "it3"]
    it1, it2, it3 = got
    assert (it1["judgments"], it1["correct"], it1["kept"], it1["sft_rows"], it1["keep_rate_pairs"]) == (12, 6, 2, 2, 0.6667)
    assert it1["removed_by_balance"] == 1 and it1["empty_reason"] is None
    assert it2["sft_rows"] == 0 and it2["removed_by_balance"] is None  # missing sft file, missing key
    assert (it3["judgments"], it3["kept"], it3["sft_rows"]) == (0, 0, 0)
    assert it3["empty_reason"] == "no judgments to curate"


def test_position_bias(con):
    got = {(r["iteration"], r["order"]): r for r in rows(run_report(con, "position_bias"))}
    assert list(got) == [("it1", "wl"), ("it1", "lw"), ("it2", "wl"), ("it2", "lw")]
    wl, lw = got[("it1", "wl")], got[("it1", "lw")]
    # wl: A A | A B | A None -> 5 verdicts of 6, 4 say A, 4 correct (A is right in wl)
    assert (wl["judgments"], wl["with_verdict"], wl["verdict_rate"], wl["a_rate"], wl["accuracy"]) == (6, 5, 0.8333, 0.8, 0.8)
    # lw: B B | A A | A A -> 6 verdicts, 4 say A, 2 correct (B is right in lw)
    assert (lw["with_verdict"], lw["a_rate"], lw["accuracy"]) == (6, 0.6667, 0.3333)
    # majority picks: p1 w/w (consistent), p2 tie/l, p3 w/l -> 1 of 3 consistent
    assert (wl["pairs_both_orders"], wl["consistent_pairs"], wl["consistency"], wl["both_orders_correct"]) == (3, 1, 0.3333, 0.3333)
    # it2: p1 l/w, p2 w/w, p4 w/tie -> 1 of 3
    assert got[("it2", "lw")]["consistent_pairs"] == 1


def test_length_bias(con):
    got = rows(run_report(con, "length_bias"))
    assert [r["iteration"] for r in got] == ["it1", "it2"]
    it1 = got[0]
    # p3 has equal lengths, p3's None verdict is out anyway: 8 judgments (p1, p2);
    # picked longer: p1 4 of 4, p2 wl A B (longer is B) 1 of 2, p2 lw A A (longer is A) 2 of 2 -> 7/8
    assert (it1["judged"], it1["picked_longer_rate"], it1["correct_is_longer_rate"]) == (8, 0.875, 0.5)
    # sft: it1:p1:wl:0 (A, the longer) counts; it1:p3:wl:0 has equal lengths
    assert (it1["sft_examples"], it1["sft_picked_longer_rate"]) == (1, 1.0)
    assert got[1]["sft_examples"] == 0 and got[1]["sft_picked_longer_rate"] is None


def test_verdict_change(con):
    got = rows(run_report(con, "verdict_change"))
    assert got == [
        {
            "iteration_a": "it1", "iteration_b": "it2", "compared": 4, "unchanged": 1, "changed": 3,
            "changed_rate": 0.75, "became_correct": 2, "became_wrong": 1,
        }
    ]


def test_verdict_change_without_overlap_reports_zero(tmp_path):
    root = tmp_path / "p"
    write_parquet(judgments_table("it1", {("p1", "wl"): ["A"]}), root / "data" / "it1" / "judgments.parquet")
    write_parquet(judgments_table("it2", {("p2", "wl"): ["A"]}), root / "data" / "it2" / "judgments.parquet")
    c = open_audit(root)
    got = rows(run_report(c, "verdict_change"))
    assert got[0]["compared"] == 0 and got[0]["changed_rate"] is None
    c.close()


def test_keep_rate_by_category(con):
    got = {
        (r["iteration"], r["category"]): (r["judged_pairs"], r["kept_pairs"], r["keep_rate"])
        for r in rows(run_report(con, "keep_rate_by_category"))
    }
    assert got[("it1", "(all)")] == (3, 2, 0.6667)
    assert got[("it1", "math")] == (2, 2, 1.0)
    assert got[("it1", "code")] == (1, 0, 0.0)
    assert got[("it2", "(all)")] == (3, 0, 0.0)  # no sft file for it2
    assert got[("it2", "(none)")] == (1, 0, 0.0)  # p4 has no category


def test_parse_failures(con):
    got = {(r["iteration"], r["parse_status"]): r for r in rows(run_report(con, "parse_failures"))}
    assert (got[("it1", "ok")]["judgments"], got[("it1", "ok")]["rate"]) == (11, 0.9167)
    none = got[("it1", "none")]
    assert (none["judgments"], none["rate"]) == (1, 0.0833)
    assert none["example_ids"] == ["it1:p3:wl:1"]
    assert none["example_text"].startswith("Judgment 1 of p3")
    assert got[("it1", "ok")]["example_ids"] == ["it1:p1:lw:0", "it1:p1:lw:1", "it1:p1:wl:0"]


def test_sample_agreement(con):
    got = {r["iteration"]: r for r in rows(run_report(con, "sample_agreement"))}
    it1 = got["it1"]
    # per group: 1, 1, .5, 1, .5 (A + no verdict), 1
    assert (it1["groups"], it1["samples_per_group"], it1["mean_agreement"]) == (6, 2.0, 0.8333)
    assert it1["mean_agreement_verdicts"] == 0.9167  # p3 wl counts 1 of 1
    assert it1["unanimous_rate"] == 0.6667


def test_reports_on_an_empty_iteration_only(tmp_path):
    root = tmp_path / "p"
    write_parquet(to_table("judgments", []), root / "data" / "it1" / "judgments.parquet")
    write_parquet(to_table("sft", []), root / "data" / "it1" / "sft.parquet")
    write_json({"judgments": 0, "kept": 0, "keep_rate_pairs": 0.0, "empty_reason": "no judgments to curate"},
               root / "stats" / "it1" / "curation.json")
    c = open_audit(root)
    for name in REPORTS:
        got = run_report(c, name).fetchall()
        if name == "funnel":
            assert len(got) == 1
        else:
            assert got == []
    c.close()


def test_reports_match_an_independent_pandas_implementation(tmp_path):
    """Cross-check every canned report against the benchmark's pandas versions on random data."""
    bench = pytest.importorskip("benchmarks.audit_bench", reason="run from the repository root (python -m pytest)")
    bench.generate(tmp_path, rows=3000, iterations=3, samples=3, row_group_size=500)
    c = open_audit(tmp_path)
    for variant in bench.PANDAS_VARIANTS.values():  # projecting and whole-file reads
        theirs = variant(tmp_path)
        for name, (keys, values) in bench.CHECKS.items():
            ours = run_report(c, name).to_arrow_table().to_pandas()
            assert len(ours) > 0, name
            assert bench.same_numbers(ours, getattr(theirs, name)(), keys, values), (variant.label, name)
    c.close()
    d = diff_iterations(tmp_path, "judgments", "it1", "it2", sample=0)
    for variant in bench.PANDAS_VARIANTS.values():
        assert variant(tmp_path).diff("it1", "it2") == {"added": d.added, "removed": d.removed, "changed": d.changed}


def test_audit_bench_measures_in_a_capped_process(tmp_path):
    """The benchmark's runner: a result and peak memory from a child; past the cap, OOM instead of a result."""
    bench = pytest.importorskip("benchmarks.audit_bench", reason="run from the repository root (python -m pytest)")
    bench.generate(tmp_path, rows=600, iterations=2, samples=2, row_group_size=100)
    ok = bench.measure("projecting", tmp_path, "funnel", "it1", "it2", repeat=1, cap=8 * 2**30, floor=0)
    assert ok["status"] == "ok" and len(ok["result"]) == 2 and ok["peak_gb"] > 0
    oom = bench.measure("whole", tmp_path, "position_bias", "it1", "it2", repeat=1, cap=1, floor=0)
    assert oom["status"] == "oom" and oom["result"] is None


def test_dpo_pairs_report_matches_dpo_curation(project):
    import pyarrow.parquet as pq

    from judgeloop.config import CurationConfig
    from judgeloop.curation import curate_dpo

    judged = pq.read_table(project / "data" / "it1" / "judgments.parquet").to_pylist()
    pairs = {p["pair_id"]: p for p in pq.read_table(project / "data" / "pairs.parquet").to_pylist()}
    dpo, funnel = curate_dpo(judged, pairs, CurationConfig(balance="none", pairs_per_input=5), "it1")
    write_parquet(to_table("dpo", dpo), project / "data" / "it1" / "dpo.parquet")
    c = open_audit(project)
    got = {r["iteration"]: r for r in rows(run_report(c, "dpo_pairs"))}
    c.close()
    # it1: (p2, wl) = [A, B] and (p3, wl) = [A, unparsed] are the only groups with both kinds
    it1 = got["it1"]
    assert (it1["groups"], it1["groups_mixed"], it1["combinations_possible"]) == (6, 2, 2)
    assert it1["dpo_rows"] == funnel["kept"] == 2
    assert (it1["chosen_a"], it1["chosen_b"], it1["rejected_wrong"], it1["rejected_unparsed"]) == (2, 0, 1, 1)
    # it2: (p4, lw) = [B, A] is mixed, but it2 has no dpo file; it3 judged nothing
    it2 = got["it2"]
    assert (it2["groups"], it2["groups_mixed"], it2["combinations_possible"], it2["dpo_rows"]) == (6, 1, 1, 0)
    assert set(got) == {"it1", "it2"}
