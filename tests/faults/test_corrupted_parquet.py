"""A corrupted Parquet file between stages: the next stage (or `judgeloop audit` / `diff`)
names the file and exits non-zero without writing its own outputs; once the
upstream file is whole again (rerun of the stage that writes it, here a
restore), the stage completes.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from .conftest import assert_fails, assert_ok, assert_untouched, run_in


def corrupt(path, how: str) -> bytes:
    good = path.read_bytes()
    if how == "truncated":  # a copy cut short
        path.write_bytes(good[: len(good) // 2])
    elif how == "garbage":
        path.write_bytes(b"this is not parquet\n" * 50)
    elif how == "zero-bytes":
        path.write_bytes(b"")
    elif how == "flipped-footer":  # right magic bytes, broken metadata
        path.write_bytes(good[:-12] + b"\xff" * 8 + good[-4:])
    return good


HOWS = ["truncated", "garbage", "zero-bytes", "flipped-footer"]


@pytest.mark.parametrize("how", HOWS)
def test_curate_on_corrupted_judgments(project, how, caplog, monkeypatch):
    project.write_pairs()
    project.write_judgments()
    path = project.root / "data/it1/judgments.parquet"
    good = corrupt(path, how)
    before = project.outputs()
    assert_fails(project.stage("curate", "--iteration", "it1"), "data/it1/judgments.parquet", "not a readable Parquet file")
    assert_untouched(project, before)  # no sft/dpo/curation.json
    path.write_bytes(good)  # the fix; the rerun in process (the same run_stage the script calls)
    assert run_in(project.root, "curate", "--iteration", "it1", caplog=caplog, monkeypatch=monkeypatch) == (0, "")
    assert (project.root / "data/it1/sft.parquet").exists()


def test_curate_on_corrupted_pairs(project):
    project.write_pairs()
    project.write_judgments()
    good = corrupt(project.root / "data/pairs.parquet", "truncated")
    before = project.outputs()
    assert_fails(project.stage("curate", "--iteration", "it1"), "data/pairs.parquet", "not a readable Parquet file")
    assert_untouched(project, before)
    (project.root / "data/pairs.parquet").write_bytes(good)
    assert_ok(project.stage("curate", "--iteration", "it1"))


def test_curate_on_a_parquet_of_the_wrong_kind(project):
    """A readable file that is not a judgments table (e.g. pairs copied over it)."""
    project.write_pairs()
    (project.root / "data/it1").mkdir(parents=True)
    (project.root / "data/it1/judgments.parquet").write_bytes((project.root / "data/pairs.parquet").read_bytes())
    before = project.outputs()
    assert_fails(project.stage("curate", "--iteration", "it1"), "data/it1/judgments.parquet: not a judgments table, missing columns")
    assert_untouched(project, before)
    project.write_judgments()
    assert_ok(project.stage("curate", "--iteration", "it1"))


def test_validate_on_corrupted_sft(project):
    project.write_pairs()
    project.write_judgments()
    assert_ok(project.stage("curate", "--iteration", "it1"))
    good = corrupt(project.root / "data/it1/sft.parquet", "truncated")
    res = project.stage("validate", "--iteration", "it1", timeout=600)
    assert_fails(res, "data/it1/sft.parquet")
    (project.root / "data/it1/sft.parquet").write_bytes(good)
    assert_ok(project.stage("validate", "--iteration", "it1", timeout=600))


@pytest.mark.parametrize("stage,upstream", [("judge", "data/pairs.parquet"), ("pairs", "data/prompts.parquet")])
def test_generation_stages_check_their_input_before_loading_a_model(project, stage, upstream):
    """No model is there (models/it0 missing): the corrupted input is what gets named, at once."""
    project.write_pairs()
    assert_ok(project.stage("prompts"))
    corrupt(project.root / upstream, "garbage")
    before = project.outputs()
    args = ("--iteration", "it1") if stage == "judge" else ()
    assert_fails(project.stage(stage, *args), upstream, "not a readable Parquet file")
    assert_untouched(project, before)


def test_train_on_corrupted_sft(project):
    project.set_params({"training": {"algo": "sft"}})
    project.write_sft()
    corrupt(project.root / "data/it1/sft.parquet", "flipped-footer")
    before = project.outputs()
    assert_fails(project.stage("train", "--iteration", "it1"), "data/it1/sft.parquet", "not a readable Parquet file")
    assert_untouched(project, before)  # no models/it1


def test_train_on_corrupted_curation_funnel(project):
    project.set_params({"training": {"algo": "sft"}})
    project.write_sft()
    (project.root / "stats/it1/curation.json").write_text('{"kept": 2, "dp')
    before = project.outputs()
    assert_fails(project.stage("train", "--iteration", "it1"), "stats/it1/curation.json: not valid JSON")
    assert_untouched(project, before)


def test_audit_names_the_corrupted_file(project):
    project.write_pairs()
    project.write_judgments()
    ok = project.cli("audit", "select count(*) as n from judgments")
    assert_ok(ok)
    good = corrupt(project.root / "data/it1/judgments.parquet", "truncated")
    res = project.cli("audit", "select count(*) as n from judgments")
    assert res.returncode == 2
    assert_fails(res, "judgeloop: audit:", "judgments.parquet")
    assert "the judgments view is unavailable" in res.stderr
    # only its own view is lost: the others still answer, and --views says which one is missing
    assert_ok(project.cli("audit", "select count(*) as n from pairs"))
    views = project.cli("audit", "--views")
    assert_ok(views)
    assert "judgments  UNAVAILABLE:" in views.stdout and "judgments.parquet" in views.stdout
    assert "pairs  (1 file" in views.stdout
    (project.root / "data/it1/judgments.parquet").write_bytes(good)
    assert_ok(project.cli("audit", "select count(*) as n from judgments"))


def test_diff_names_the_corrupted_file(project):
    project.write_pairs()
    project.write_judgments("it1")
    project.write_judgments("it2")
    assert project.cli("diff", "--kind", "judgments", "--a", "it1", "--b", "it2").returncode in (0, 1)
    corrupt(project.root / "data/it2/judgments.parquet", "garbage")
    res = project.cli("diff", "--kind", "judgments", "--a", "it1", "--b", "it2")
    assert res.returncode == 2
    assert_fails(res, "judgeloop: diff:", "data/it2/judgments.parquet")


def _corrupt_a_page(path, column: str) -> None:
    """Valid footer, garbage inside a data page of `column`: found only when the column is decoded."""
    table = pq.read_table(path)
    pq.write_table(table, path, compression="none")
    meta = pq.ParquetFile(path).metadata
    start = meta.row_group(0).column(table.schema.get_field_index(column)).data_page_offset
    raw = bytearray(path.read_bytes())
    raw[start + 8 : start + 64] = b"\xee" * 56
    path.write_bytes(bytes(raw))


def test_corrupted_data_page_is_named_when_read(project):
    project.write_pairs()
    good = (project.root / "data/pairs.parquet").read_bytes()
    _corrupt_a_page(project.root / "data/pairs.parquet", "response_w")
    before = project.outputs()
    assert_fails(project.stage("judge", "--iteration", "it1"), "data/pairs.parquet", "not a readable Parquet file")
    assert_untouched(project, before)
    (project.root / "data/pairs.parquet").write_bytes(good)
    res = project.stage("judge", "--iteration", "it1")  # past the read now: fails on the missing model instead
    assert_fails(res, "models/it0")


def test_curate_names_a_corrupted_text_page(project):
    """curate reads the `text` column of kept rows late, row group by row group: still named, still nothing written."""
    project.write_pairs()
    project.write_judgments()
    _corrupt_a_page(project.root / "data/it1/judgments.parquet", "text")
    before = project.outputs()
    assert_fails(project.stage("curate", "--iteration", "it1"), "data/it1/judgments.parquet")
    assert_untouched(project, before)
