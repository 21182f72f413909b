"""`judgeloop judge` (apply.judge_file) on a scripted engine: a Likert file and a pairwise file."""

import json

import pyarrow.parquet as pq
from conftest import LLMBAR_NATURAL
from fakes import ScriptedBackend

from judgeloop import apply
from judgeloop.config import GenerationConfig


def _rubric(i: int, gold: int) -> dict:
    return {"id": f"r{i}", "instruction": f"q{i}", "response": f"a{i}", "criteria": "c", "gold_score": gold,
            **{f"score{k}_description": f"d{k}" for k in range(1, 6)}}


def test_a_likert_file_is_scored_greedily_against_gold(tmp_path, monkeypatch):
    src = tmp_path / "rubrics.jsonl"
    src.write_text("".join(json.dumps(_rubric(i, g)) + "\n" for i, g in enumerate([1, 3, 5, 4])))
    # the judge writes the gold score of the first three items and no score for the last (forced: "1", the likeliest)
    scores = {"q0": "[RESULT] 1", "q1": "[RESULT] 3", "q2": "[RESULT] 5", "q3": "no score"}
    engine = ScriptedBackend(rule=lambda prompt, i: next(v for k, v in scores.items() if f"\n{k}\n" in prompt))
    monkeypatch.setattr(apply, "_backend", lambda model, gen, workdir: engine)
    out = tmp_path / "out.parquet"
    summary = apply.judge_file(str(src), "likert", "nobody/judge", GenerationConfig(), str(out), fallback="forced")
    rows = pq.read_table(out).to_pylist()
    assert [(r["example_id"], r["score"], r["score_source"]) for r in rows] == [
        ("rubrics:r0", 1, "parsed"), ("rubrics:r1", 3, "parsed"), ("rubrics:r2", 5, "parsed"), ("rubrics:r3", 1, "forced")]
    assert {r["dataset"] for r in rows} == {"rubrics"} and summary["judge"] == "scripted"
    assert summary["exact"] == 0.75 and summary["n"] == 4  # the forced score counts here (the file's own rule)


def test_a_pairwise_file_is_judged_in_both_orders(tmp_path, monkeypatch):
    monkeypatch.setattr(apply, "_backend", lambda model, gen, workdir: ScriptedBackend(["[[A]]"]))
    out = tmp_path / "out.parquet"
    summary = apply.judge_file(str(LLMBAR_NATURAL), "llmbar", "nobody/judge", GenerationConfig(), str(out), limit=10)
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 20 and {r["order"] for r in rows} == {"wl", "lw"}
    assert summary["accuracy"] == 0.5 and summary["a_rate"] == 1.0  # "always A": right in one order of each pair
