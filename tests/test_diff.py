"""Dataset diff: the comparison itself, iteration mode, and revision mode through git + DVC."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from judgeloop.diff import (
    DiffError,
    diff_datasets,
    diff_iterations,
    diff_revisions,
    iteration_ignores,
    render_text,
)
from judgeloop.io import write_parquet
from judgeloop.schemas import to_table

from test_audit import IT1, build_project, judgments_table, likert_table


def _set(table: pa.Table, col: str, idx: int, value) -> pa.Table:
    vals = table.column(col).to_pylist()
    vals[idx] = value
    i = table.schema.get_field_index(col)
    return table.set_column(i, table.schema.field(i), pa.array(vals, type=table.schema.field(i).type))


@pytest.fixture
def it1() -> pa.Table:
    return judgments_table("it1", IT1)


def test_identical_tables(it1):
    res = diff_datasets("judgments", it1, it1)
    assert res.identical
    assert (res.rows_a, res.rows_b, res.added, res.removed, res.changed, res.unchanged) == (12, 12, 0, 0, 0, 12)
    assert res.column_changes == {} and res.verdict_transitions == {}
    assert "IDENTICAL" in render_text(res)


def test_identical_regardless_of_row_order(it1):
    shuffled = it1.take(pa.array(list(reversed(range(it1.num_rows)))))
    assert diff_datasets("judgments", it1, shuffled).identical


def test_added_removed_changed(it1):
    b = it1.slice(1)  # drops row 0: it1:p1:wl:0
    extra = judgments_table("it1", {("p4", "wl"): ["A", "B"]})
    b = pa.concat_tables([b, extra])
    # row 3 of it1 (p1 lw sample 1: B) becomes A in b (index 2 after the slice)
    b = _set(b, "verdict", 2, "A")
    b = _set(b, "n_tokens", 3, 999)
    res = diff_datasets("judgments", it1, b, sample=10)
    assert (res.added, res.removed, res.changed) == (2, 1, 2)
    assert res.unchanged == 12 - 1 - 2
    assert res.column_changes == {"verdict": 1, "n_tokens": 1}
    assert res.verdict_transitions == {"B->A": 1}
    assert res.samples["removed"] == [{"pair_id": "p1", "order": "wl", "sample_idx": 0}]
    assert [s["pair_id"] for s in res.samples["added"]] == ["p4", "p4"]
    changed = {(s["pair_id"], s["order"], s["sample_idx"]): s["changes"] for s in res.samples["changed"]}
    assert changed[("p1", "lw", 1)] == {"verdict": ["B", "A"]}
    assert changed[("p2", "wl", 0)] == {"n_tokens": [20, 999]}
    assert not res.identical
    text = render_text(res)
    assert "added 2, removed 1, changed 2" in text and "B->A 1" in text


def test_summary_deltas(it1):
    b = _set(it1, "verdict", 0, None)
    b = b.set_column(b.schema.get_field_index("text"), "text", pc.utf8_upper(b.column("text")))
    res = diff_datasets("judgments", it1, b)
    summary = {e["column"]: e for e in res.column_summary}
    assert summary["verdict"]["null_rate_a"] == pytest.approx(1 / 12)
    assert summary["verdict"]["null_rate_b"] == pytest.approx(2 / 12)
    assert summary["text"]["mean_len_a"] == summary["text"]["mean_len_b"]
    assert summary["n_tokens"]["mean_len_a"] is None  # numbers have no length
    assert res.verdicts_a == {"(null)": 1, "A": 8, "B": 3}
    assert res.verdicts_b == {"(null)": 2, "A": 7, "B": 3}
    assert res.column_changes["text"] == 12


def test_schema_changes(it1):
    b = it1.append_column("judge_note", pa.array(["x"] * it1.num_rows)).drop_columns(["finish_reason"])
    b = b.set_column(b.schema.get_field_index("n_tokens"), "n_tokens", pc.cast(b.column("n_tokens"), pa.string()))
    res = diff_datasets("judgments", it1, b)
    assert res.added_columns == {"judge_note": "VARCHAR"}
    assert res.removed_columns == {"finish_reason": "VARCHAR"}
    assert res.type_changes == {"n_tokens": ("BIGINT", "VARCHAR")}
    assert res.changed == 0  # same values once compared as text
    assert not res.identical


def test_empty_tables(it1):
    empty = to_table("judgments", [])
    res = diff_datasets("judgments", empty, empty)
    assert res.identical and res.rows_a == 0
    res = diff_datasets("judgments", empty, it1)
    assert (res.added, res.removed) == (12, 0)


def test_duplicate_keys_are_an_error(it1):
    with pytest.raises(DiffError, match="not unique"):
        diff_datasets("judgments", it1, it1, ["pair_id", "order"])


def test_missing_key_column_is_an_error(it1):
    with pytest.raises(DiffError, match="key columns"):
        diff_datasets("judgments", it1, it1, ["nope"])


def test_accepts_paths_and_polars(tmp_path, it1):
    import polars as pl

    path = write_parquet(it1, tmp_path / "j.parquet")
    assert diff_datasets("judgments", str(path), pl.from_arrow(it1)).identical


def test_iteration_ignores():
    cols = ["judgment_id", "pair_id", "iteration", "judge_model", "judge_hash", "order", "sample_idx", "seed", "verdict"]
    assert iteration_ignores("judgments", cols, ["pair_id", "order", "sample_idx"]) == [
        "judgment_id", "iteration", "judge_model", "judge_hash", "seed",
    ]
    assert iteration_ignores("eval", ["example_id", "judge", "verdict"], ["example_id"]) == ["judge"]


# ---------------------------------------------------------------- iteration mode


def test_iterations(tmp_path):
    root = build_project(tmp_path / "p")
    res = diff_iterations(root, "judgments", "it1", "it2")
    # it1 judges p1-p3, it2 judges p1, p2, p4
    assert (res.added, res.removed) == (4, 4)
    # matched p1, p2 rows (8): p1 wl A->B (2), p2 wl sample 1 B->A, p2 lw A->B (2)
    assert res.changed == 5 and res.unchanged == 3
    assert res.verdict_transitions == {"A->B": 4, "B->A": 1}
    assert "iteration" in res.ignored_columns and "judgment_id" in res.ignored_columns
    assert res.added_columns == {"judge_note": "VARCHAR"}  # schema drift in it2
    assert res.ignored_values["judge_model"]["a"] == {"min": "models/it0", "max": "models/it0", "approx_distinct": 1}
    assert res.ignored_values["judge_model"]["b"]["min"] == "models/it1"
    assert "judge_model: 'models/it0' | 'models/it1'" in render_text(res)


def test_iterations_compare_all(tmp_path):
    root = build_project(tmp_path / "p")
    res = diff_iterations(root, "judgments", "it1", "it2", compare_all=True)
    assert res.ignored_columns == []
    assert res.changed == 8  # every matched row differs in iteration, ids, judge


def test_eval_between_models(tmp_path):
    root = build_project(tmp_path / "p")
    res = diff_iterations(root, "eval", "it0", "it1")
    assert res.key_cols == ["example_id"]
    assert res.changed == 2 and res.verdict_transitions == {"A->B": 1, "A->null": 1}
    assert (res.ignored_values["judge"]["a"]["min"], res.ignored_values["judge"]["b"]["max"]) == ("models/it0", "models/it1")


def test_iterations_errors(tmp_path):
    root = build_project(tmp_path / "p")
    with pytest.raises(DiffError, match="data/it2/sft.parquet: missing"):
        diff_iterations(root, "sft", "it1", "it2")
    with pytest.raises(DiffError, match="one file for all iterations"):
        diff_iterations(root, "pairs", "it1", "it2")


def test_likert_iterations_use_item_keys(tmp_path):
    root = build_project(tmp_path / "p")
    write_parquet(likert_table("it4", [3, 5, None]), root / "data" / "it4" / "judgments.parquet")
    write_parquet(likert_table("it5", [3, 4, 2]), root / "data" / "it5" / "judgments.parquet")
    res = diff_iterations(root, "judgments", "it4", "it5")
    assert res.key_cols == ["item_id", "sample_idx"]
    assert (res.changed, res.column_changes["score"]) == (2, 2)


def test_iterations_with_an_empty_iteration(tmp_path):
    root = build_project(tmp_path / "p")
    res = diff_iterations(root, "judgments", "it1", "it3")
    assert (res.rows_b, res.removed, res.added) == (0, 12, 0)


# ---------------------------------------------------------------- revision mode (git + DVC)


def _run(cmd: list[str], cwd: Path) -> None:
    env = os.environ | {"DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True)


def _dvc() -> str:
    exe = Path(sys.executable).with_name("dvc")
    return str(exe) if exe.exists() else (shutil.which("dvc") or "dvc")


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory) -> Path:
    """A git + DVC repository whose data/it1/judgments.parquet is a DVC output.

    HEAD holds the original file; the workspace has one verdict changed.
    """
    if shutil.which("git") is None:
        pytest.skip("needs git")
    root = tmp_path_factory.mktemp("repo")
    _run(["git", "init", "-q"], root)
    _run(["git", "config", "user.email", "test@example.com"], root)
    _run(["git", "config", "user.name", "judgeloop tests"], root)
    _run(["git", "config", "commit.gpgsign", "false"], root)
    _run([_dvc(), "init", "-q"], root)
    _run([_dvc(), "config", "core.analytics", "false"], root)
    it1 = judgments_table("it1", IT1)
    write_parquet(it1, root / "data" / "it1" / "judgments.parquet")
    _run([_dvc(), "add", "-q", "data/it1/judgments.parquet"], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-q", "-m", "it1 judgments"], root)
    write_parquet(_set(it1, "verdict", 0, "B"), root / "data" / "it1" / "judgments.parquet")
    return root


def test_revision_vs_workspace(dvc_repo):
    res = diff_revisions(dvc_repo, "data/it1/judgments.parquet", "HEAD", "workspace")
    assert res.kind == "judgments"
    assert (res.changed, res.added, res.removed) == (1, 0, 0)
    assert res.verdict_transitions == {"A->B": 1}
    assert res.label_a == "data/it1/judgments.parquet@HEAD"


def test_revision_vs_itself(dvc_repo):
    assert diff_revisions(dvc_repo, "data/it1/judgments.parquet", "HEAD", "HEAD").identical


def test_revision_errors_name_file_and_rev(dvc_repo):
    with pytest.raises(DiffError, match=r"data/it1/judgments.parquet@no-such-rev"):
        diff_revisions(dvc_repo, "data/it1/judgments.parquet", "no-such-rev")
    with pytest.raises(DiffError, match=r"data/it9/judgments.parquet@HEAD"):
        diff_revisions(dvc_repo, "data/it9/judgments.parquet", "HEAD")


def test_null_keys_are_an_error(it1):
    b = _set(it1, "pair_id", 0, None)
    with pytest.raises(DiffError, match="NULL in the key"):
        diff_datasets("judgments", it1, b)
