"""`judgeloop plan`: generations and token bounds per stage, from the params and input files alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import LLMBAR_NATURAL

from judgeloop.cli import main
from judgeloop.config import load_params, parse_params
from judgeloop.plan import make_plan
from judgeloop.pool import build_prompts

ROOT = Path(__file__).resolve().parents[1]


def by_stage(plans):
    return {p.stage: p for p in plans}


def test_default_params_count_what_the_stages_will_generate():
    params = load_params(ROOT / "params.yaml")
    splits = build_prompts(params, None).column("split").to_pylist()
    n = {s: splits.count(s) for s in set(splits)}
    plans = by_stage(make_plan(params)[0])
    used = n.get("eval", 0) + sum(n.get(it, 0) for it in params.iterations)
    pc = params.pairs
    assert plans["pairs"].generations == 3 * used
    assert plans["pairs"].max_new_tokens == used * (2 * pc.max_tokens + pc.modify_max_tokens)
    for it in params.iterations:
        j, judged = params.judging_for(it), n[params.pairs_split(it)]  # it2 judges it1's pairs
        assert plans[f"judge@{it}"].generations == judged * 2 * j.samples
        assert plans[f"judge@{it}"].max_new_tokens == judged * 2 * j.samples * j.max_tokens
    for m in params.eval_models():
        assert plans[f"evaluate@{m}"].generations == n["eval"] * 2 * params.evaluation.samples


def test_per_iteration_overrides_and_eval_sets_are_counted(tmp_path):
    data = {
        "iterations": {"it1": {"prev": "it0", "overrides": {"judging": {"samples": 7, "max_tokens": 10}}}},
        "prompts": {"split": {"eval_fraction": 0.1, "iteration_fractions": {"it1": 0.5}}},
        "evaluation": {"samples": 3, "max_tokens": 5, "sets": [
            {"name": "bar", "format": "llmbar", "path": str(LLMBAR_NATURAL), "limit": 20},
            {"name": "later", "format": "pairwise", "path": str(tmp_path / "not-yet.jsonl")},
            {"name": "one", "format": "llmbar", "path": str(LLMBAR_NATURAL), "limit": 4,
             "orders": "random_seeded"},
        ]},
    }
    params = parse_params(data, "test")
    plans, how = make_plan(params, pool=1000)
    plans = by_stage(plans)
    assert "--pool 1000" in how
    assert plans["pairs"].generations == 3 * (100 + 500)
    assert plans["judge@it1"].generations == 500 * 2 * 7 and plans["judge@it1"].max_new_tokens == 500 * 2 * 7 * 10
    ev = plans["evaluate@it1"]
    assert ev.generations == (100 * 2 + 20 * 2 + 4 * 1) * 3 and ev.max_new_tokens == ev.generations * 5
    assert "unknown until the file exists: later" in ev.note


def test_plan_cli_with_the_paper_preset(tmp_path, capsys):
    for f in ("params.yaml",):
        shutil.copy(ROOT / f, tmp_path / f)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    before = (tmp_path / "params.yaml").read_text()
    assert main(["plan", "--params", str(tmp_path / "params.yaml"), "--preset", "paper", "--pool", "20000"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "params.yaml").read_text() == before  # a plan writes nothing
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line[:1].isalpha() and "@" in line}
    # the paper: 15 samples x 2 orders, 4096-token judgments, 19% of 20,000 prompts per iteration
    assert rows["judge@it1"][1:3] == ["114,000", "466,944,000"]
    assert "backend vllm" in out


def test_plan_cli_errors_are_one_line(tmp_path, capsys):
    p = tmp_path / "params.yaml"
    p.write_text(json.dumps({"iterations": {"it1": {"prev": "it0"}}, "prompts": {
        "sources": [{"kind": "jsonl", "path": str(tmp_path / "missing.jsonl")}],
        "split": {"iteration_fractions": {"it1": 0.5}}}}))
    assert main(["plan", "--params", str(p)]) == 2
    err = capsys.readouterr().err
    assert "pass --pool N" in err and len(err.strip().splitlines()) == 1
    assert main(["plan", "--params", str(p), "--pool", "0"]) == 2
    assert main(["plan", "--params", str(p), "--pool", "50"]) == 0
    assert main(["plan", "--params", str(tmp_path / "nope.yaml")]) == 2


@pytest.mark.parametrize("method", ["likert"])
def test_likert_plan_counts_rubric_items(method):
    from judgeloop.likert import source_items, split_items

    params = parse_params({"method": method, "iterations": {"it1": {"prev": "it0"}},
                           "prompts": {"split": {"iteration_fractions": {"it1": 0.5}}},
                           "likert": {"split": {"eval_fraction": 0.3, "iteration_fractions": {"it1": 0.7}}}}, "test")
    splits = list(split_items(source_items(params.likert), 0, 0.3, {"it1": 0.7}).values())
    plans = by_stage(make_plan(params)[0])
    assert plans["judge@it1"].generations == splits.count("it1") * params.judging.samples
    assert plans["evaluate@it0"].generations == splits.count("eval")


def test_an_iteration_that_rejudges_earlier_pairs_is_counted_on_them():
    import yaml

    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["iterations"]["it2"]["pairs_from"] = "it1"
    del data["prompts"]["split"]["iteration_fractions"]["it2"]
    params = parse_params(data)
    splits = build_prompts(params, None).column("split").to_pylist()
    plans = by_stage(make_plan(params)[0])
    assert "it2" not in splits
    assert plans["judge@it2"].generations == plans["judge@it1"].generations == splits.count("it1") * 2 * params.judging.samples
