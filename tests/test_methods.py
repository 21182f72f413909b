"""The method modules through the stage bodies (judge -> curate -> evaluate) on a scripted engine, and a third,
toy method ("always A") added as one module-like object and a registry entry."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
from fakes import ScriptedBackend

from judgeloop import methods, pipeline
from judgeloop.config import load_params
from judgeloop.io import read_json, write_parquet
from judgeloop.schemas import PAIRS, to_table

ROOT = Path(__file__).resolve().parents[1]


def _pairs(n: int = 12):
    """Pairs of it1 and of the eval split (every fourth), all generated ok."""
    rows = []
    for i in range(n):
        rows.append({c: None for c in PAIRS.names} | {
            "pair_id": f"p{i}", "prompt_id": f"q{i}", "split": "eval" if i % 4 == 0 else "it1", "category": "c",
            "instruction": f"Say {i}.", "response_w": f"{i}", "response_l": f"not {i}", "gen_status": "ok", "seed": i})
    return to_table("pairs", rows)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with data/pairs.parquet; every stage's engine is `backend`."""
    monkeypatch.chdir(tmp_path)
    write_parquet(_pairs(), Path("data/pairs.parquet"))
    engine = SimpleNamespace(backend=None)
    monkeypatch.setattr(pipeline, "_backend_of", lambda params, name: engine.backend)
    return engine


def _run(params, *stages):
    for stage, it in stages:
        pipeline.STAGES[stage](params, SimpleNamespace(iteration=it, name=None))


def test_pairwise_judge_curate_evaluate(project):
    params = load_params(ROOT / "params.yaml")
    # sample 0 says A, 1 says B, 2 writes no verdict (forced: drawn at the judging temperature)
    project.backend = ScriptedBackend(["Better: [[A]]", "Better: [[B]]", "no idea"])
    _run(params, ("judge", "it1"), ("curate", "it1"), ("evaluate", "it0"))
    judgments = pq.read_table("data/it1/judgments.parquet").to_pylist()
    assert len(judgments) == 9 * 2 * params.judging.samples  # 9 pairs of it1, both orders
    assert read_json("stats/it1/judge.json")["pairs"] == 9
    assert {(j["sample_idx"], j["verdict"], j["verdict_source"]) for j in judgments} >= {
        (0, "A", "parsed"), (1, "B", "parsed")}
    assert {j["verdict_source"] for j in judgments if j["sample_idx"] == 2} == {"forced"}
    sft = pq.read_table("data/it1/sft.parquet").to_pylist()
    assert sft and all(s["verdict"] == ("A" if s["order"] == "wl" else "B") for s in sft)
    funnel = read_json("stats/it1/curation.json")
    assert funnel["kept"] == len(sft) and funnel["dpo"]["kept"] == pq.read_table("data/it1/dpo.parquet").num_rows
    ev = pq.read_table("data/it0/eval.parquet").to_pylist()
    assert len(ev) == 3 * 2 and {e["dataset"] for e in ev} == {"synthetic"}  # the 3 eval pairs, greedy, both orders
    assert read_json("metrics/it0/eval.json")["it0"]["acc"] == 0.5  # always "A": right in one order


def test_likert_rubrics_judge_curate_evaluate(project):
    params = load_params(ROOT / "params.yaml").model_copy(update={"method": "likert"})
    project.backend = ScriptedBackend(rule=lambda prompt, i: f"Fine. [RESULT] {i + 2}")
    _run(params, ("rubrics", None), ("judge", "it1"), ("curate", "it1"), ("evaluate", "it1"))
    rubrics = pq.read_table("data/rubrics.parquet").to_pylist()
    judged = [r for r in rubrics if r["split"] == "it1"]
    judgments = pq.read_table("data/it1/judgments.parquet").to_pylist()
    assert len(judgments) == len(judged) * params.judging.samples
    assert read_json("stats/it1/judge.json")["items"] == len(judged)
    assert {j["score"] for j in judgments} == {2, 3, 4}
    dpo = pq.read_table("data/it1/dpo.parquet").to_pylist()
    gold = {r["item_id"]: r["gold_score"] for r in rubrics}
    for d in dpo:  # chosen is at least as close to gold as rejected
        assert abs(int(d["chosen_verdict"]) - gold[d["pair_id"]]) < abs(int(d["rejected_verdict"]) - gold[d["pair_id"]])
    ev = pq.read_table("data/it1/eval.parquet").to_pylist()
    assert len(ev) == sum(r["split"] == "eval" for r in rubrics) and {e["score"] for e in ev} == {2}
    assert read_json("stats/it1/eval.json")["method"] == "likert"


def test_leaked_names_what_was_judged_from_the_eval_split():
    pairs = _pairs(4)
    judged = to_table("judgments", [])
    assert methods.pairwise.leaked(pairs, judged) == []
    judged = pairs.select(["pair_id"]).rename_columns(["pair_id"])
    assert methods.pairwise.leaked(pairs, judged) == ["q0"]
    rubrics = SimpleNamespace(select=lambda cols: SimpleNamespace(to_pylist=lambda: [
        {"item_id": "a", "split": "eval"}, {"item_id": "b", "split": "it1"}]))
    assert methods.likert.leaked(rubrics, to_table("likert_judgments", [])) == []


# -- a third method: one module-like object and its registry entry ---------------------------------------


def _always_a(items, split):
    from judgeloop.judging import ORDERS, Judged

    return [Judged(p["pair_id"], o, 0, 0, "[[A]]", "A", "ok", "parsed", None, None, o == "wl", 1, "stop", 1, 1)
            for p in items.to_pylist() if p["split"] == split for o in ORDERS]


def _toy_judge(params, it, items, backend):
    from judgeloop.judging import judgment_fields

    rows = [{"judgment_id": f"{it}:{j.item_id}:{j.order}:0", "pair_id": j.item_id, "iteration": it, "judge_model": "A",
             "judge_hash": "A", "sample_idx": 0, "seed": 0, "sampling": "{}", "correct": j.correct, **judgment_fields(j),
             "len_a": 1, "len_b": 1} for j in _always_a(items, params.pairs_split(it))]
    return to_table("judgments", rows), {"pairs": len(rows) // 2}


def _toy_evaluate(params, name, items, evalsets, backend):
    from judgeloop.evaluation import eval_rows, summarise

    judged = _always_a(items, "eval")
    return to_table("eval", eval_rows("synthetic", judged, {}, "A", "A")), {"synthetic": summarise(judged)}


ALWAYS_A = SimpleNamespace(NAME="always_a", KINDS=methods.pairwise.KINDS, LEAK_ID="prompt_id",
                           METRICS={"acc": "accuracy", "a_share": "a_rate"}, HEADLINE_SET="synthetic",
                           judge=_toy_judge,
                           curate=methods.pairwise.curate, evaluate=_toy_evaluate, leaked=methods.pairwise.leaked)


def test_a_new_method_is_one_module_and_a_registry_entry(project, monkeypatch):
    monkeypatch.setitem(methods.METHODS, "always_a", ALWAYS_A)
    project.backend = ScriptedBackend(["unused: this judge never asks its engine"])
    params = load_params(ROOT / "params.yaml").model_copy(update={"method": "always_a"})
    _run(params, ("judge", "it1"), ("curate", "it1"), ("evaluate", "it0"))
    assert {j["verdict"] for j in pq.read_table("data/it1/judgments.parquet").to_pylist()} == {"A"}
    # right only when the better answer is shown as A: 9 "A wins", no "B wins", so balancing keeps nothing
    funnel = read_json("stats/it1/curation.json")
    assert "position-biased" in funnel["empty_reason"] and pq.read_table("data/it1/sft.parquet").num_rows == 0
    assert read_json("stats/it0/eval.json")["method"] == "always_a"
    assert read_json("metrics/it0/eval.json") == {"it0": {"acc": 0.5, "a_share": 1.0, "acc_lo": 0.5, "acc_hi": 0.5}}


def test_an_unknown_method_names_the_known_ones():
    with pytest.raises(ValueError, match=r"'rl'.*\['likert', 'pairwise'\]"):
        methods.method_of("rl")
