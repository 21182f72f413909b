"""RewardBench 2, JudgeBench and RM-Bench: loaders on fixtures in each published schema, scores by hand.

The judge is a rule over what the prompt shows (no model): each test's
completions carry their own fate (GOOD / BAD, a rating to give, a length).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from judgeloop.backends import Completion
from judgeloop.bench_eval import evaluate_format, generations
from judgeloop.benchmarks import KNOCKOUT_RULE, RB2_RULE, ties_score
from judgeloop.evaluation import load_set
from judgeloop.loaders import InputError


class RuleBackend:
    """Answers every request with `rule(prompt text)`; never forces a verdict (no token in its top-k)."""

    model_name, model_hash = "rule", "0"

    def __init__(self, rule):
        self.rule = rule

    def generate(self, requests, desc=""):
        return [[Completion(r.request_id, 0, self.rule(r.messages[-1]["content"]), 5, 3, "stop")] for r in requests]

    def choice_logprobs(self, contexts, choices):
        return [{c: float("-inf") for c in choices} for _ in contexts]

    def close(self):
        pass


def responses(prompt: str) -> dict[str, str]:
    """letter -> the (one-line) response shown under it."""
    return dict(re.findall(r"\[Response ([A-D])\]\n(.*)", prompt))


def pick(prompt: str, word: str) -> str:
    """The marker of the response containing `word`, or no verdict."""
    hits = [x for x, text in responses(prompt).items() if word in text]
    return f"[[{hits[0]}]]" if hits else "no verdict"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def evaluate(fmt: str, path: Path, rule, **kw):
    items, subsets = load_set(fmt, str(path))
    return evaluate_format("t", fmt, items, subsets, RuleBackend(rule), max_tokens=8, fallback="forced", **kw)


# --- RewardBench 2 -----------------------------------------------------------------------------


FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]


# Factuality "right" (the judge names GOOD), "wrong" (it names PICKME), "mute" (it names none); Math "right";
# Ties ref:1 and tied:1, each completion saying the rating the judge gives it ("rate none": no rating)
RB2_ROWS = fixture_rows("rewardbench2-mini.jsonl")


def rb2_rule(prompt: str) -> str:
    if "[RESULT]" in prompt:  # a Ties rating
        m = re.search(r"\[Response\]\nrate (\d)", prompt)
        return f"Fine. [RESULT] {m.group(1)}" if m else "I will not rate this."
    instruction = re.search(r"\[User instruction\]\n(.*)", prompt).group(1)
    return {"right": pick(prompt, "GOOD"), "wrong": pick(prompt, "PICKME")}.get(instruction, "Hard to say.")


def test_rewardbench2_sections_ties_and_overall_by_hand():
    rows, summary = evaluate("rewardbench2", FIXTURES / "rewardbench2-mini.jsonl", rb2_rule)
    b = summary["benchmark"]
    # Factuality: right 1, wrong 0, unparsed 0.25 -> 1.25 / 3; Math: 1
    assert b["sections"]["Factuality"] == pytest.approx(1.25 / 3) and b["sections"]["Math"] == 1.0
    # Ties: ref 5 vs (3, 2) accurate, across 2; tied (5, 4) vs (3, -1) accurate, within 1, across 1;
    # preferred: 1 > 1 no; hard: min(2, 1) > 1 no; margin tanh(1/1 - 1) = 0 -> 0.3 + 0.3
    assert b["sections"]["Ties"] == pytest.approx(0.6)
    assert b["overall"] == pytest.approx((1.25 / 3 + 1.0 + 0.6) / 3)
    assert b["missing"] == ["Precise IF", "Safety", "Focus"] and b["name"] == "RewardBench 2"
    assert summary["scoring_rule"] == RB2_RULE == b["scoring_rule"] and "0.25" in RB2_RULE
    assert summary["parse_rate"] == pytest.approx(3 / 4)
    best = {r["example_id"]: r for r in rows if r["order"] != "rating"}
    assert best["t:2"]["score"] == 0.25 and best["t:2"]["verdict"] is None and best["t:1"]["score"] == 0.0
    ratings = [r for r in rows if r["order"] == "rating"]
    assert len(ratings) == 7 and {r["score"] for r in ratings} == {None}


def test_chosen_position_is_seeded_and_spread():
    from judgeloop.bench_eval import _draw

    positions = [_draw(0, str(i), 4) for i in range(400)]
    assert positions == [_draw(0, str(i), 4) for i in range(400)] and positions != [_draw(1, str(i), 4) for i in range(400)]
    assert all(70 < positions.count(k) < 130 for k in range(4))


def test_ties_score_every_term_by_hand():
    out = ties_score({
        "ref:7": ([8], [5, 6]),  # across 2, accurate
        "tied:7": ([9, 8], [4]),  # within 1, across 4: preferred, hard (min(2, 4) > 1), margin tanh(2/1 - 1)
        "ref:8": ([3], [4]),  # across -1, not accurate
        "tied:8": ([5, 5], [5]),  # within 0, across 0: not accurate, not preferred; margin -1/0 -> tanh(-inf) = -1
    })
    margin = (math.tanh(1.0) - 1) / 2
    assert (out["tied_accuracy"], out["ref_accuracy"], out["correctness_preferred"], out["correctness_preferred_hard"]) == (0.5, 0.5, 0.5, 0.5)
    assert out["margin_score"] == pytest.approx(margin)
    assert out["score"] == pytest.approx(0.3 * 0.5 + 0.3 * 0.5 + 0.2 * 0.5 + 0.2 * 0.5 + 0.01 * margin)
    assert ties_score({"ref:1": ([5], [1])})["score"] is None  # no prompt with both rows


def test_knockout_is_reported_under_its_own_name_and_seeded(tmp_path):
    path = write_jsonl(tmp_path / "rb2.jsonl", RB2_ROWS[:4])
    _, good = evaluate("rewardbench2", path, lambda p: pick(p, "GOOD"), best_of_n="knockout")
    assert good["benchmark"]["name"] == "RewardBench 2 (pairwise knockout)" and good["scoring_rule"] == KNOCKOUT_RULE
    # round 1 pits the chosen one against a rejected one, and the other two rejected ones against each other:
    # the judge names neither of those (no GOOD), so that match goes to a draw, one per item
    assert good["item_scores"] == {"0": 1.0, "1": 1.0, "2": 1.0, "3": 1.0} and good["knockout_draws"] == 4
    # always [[A]]: every match splits its two orders, so all 3 matches of each item go to a seeded draw
    rows, biased = evaluate("rewardbench2", path, lambda p: "[[A]]", best_of_n="knockout")
    assert biased["knockout_draws"] == 12 and len(rows) == 4 * 3 * 2
    assert evaluate("rewardbench2", path, lambda p: "[[A]]", best_of_n="knockout")[1]["item_scores"] == biased["item_scores"]
    assert set(biased["item_scores"].values()) <= {0.0, 1.0}


def test_rewardbench2_published_parquet_and_limit(tmp_path):
    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(RB2_ROWS), path)
    items, subsets = load_set("rewardbench2", str(path), limit=3)
    assert [subsets[i.item_id] for i in items] == ["Factuality", "Math", "Ties"]  # round-robin over sections
    assert generations("rewardbench2", load_set("rewardbench2", str(path))[0], "both", "all_at_once") == 4 + 7
    assert generations("rewardbench2", items, "both", "knockout") == 2 * 3 * 2 + 3


@pytest.mark.parametrize("bad, says", [
    ({"rejected": ["a", "b"]}, "field 'rejected' must be a list of 3 strings, got a list of 2"),
    ({"chosen": "GOOD"}, "field 'chosen' must be a list of 1 strings, got text 'GOOD'"),
    ({"chosen": [7]}, "field 'chosen' item 0 must be a string, got a number 7"),
    ({"subset": "Chat"}, "field 'subset' must be one of ['Factuality'"),
    ({"num_correct": 2}, "field 'num_correct' is 2 but 'chosen' holds 1"),
    ({"subset": "Ties", "id": "7"}, "field 'id' of a Ties row must be 'ref:<prompt>' or 'tied:<prompt>', got '7'"),
])
def test_rewardbench2_bad_rows_name_file_row_and_field(tmp_path, bad, says):
    path = write_jsonl(tmp_path / "rb2.jsonl", [RB2_ROWS[0], RB2_ROWS[1] | bad])
    with pytest.raises(InputError) as ei:
        load_set("rewardbench2", str(path))
    assert str(ei.value).startswith(f"{path}: row 1: ") and says in str(ei.value) and "\n" not in str(ei.value)


def test_hub_id_fails_cleanly_offline(hf_offline):
    with pytest.raises(InputError) as ei:
        load_set("rewardbench2", "judgeloop-tests/no-such-rb2")
    assert "no-such-rb2" in str(ei.value) and "split 'test'" in str(ei.value)


# --- JudgeBench --------------------------------------------------------------------------------


# p1 mmlu-pro-law "right": both orders right, +2; p2 mmlu-pro-math "first": always [[A]], +1 - 1 = 0, wrong;
# p3 livebench-reasoning "half": right when the better is shown first, else nothing, +1; p4 livebench-math "mute":
# unparsed twice (the forced fallback does not vote), 0; p5 livecodebench "wrong": -2
JB_ROWS = fixture_rows("judgebench-mini.jsonl")


def jb_rule(prompt: str) -> str:
    q = re.search(r"\[User instruction\]\n(.*)", prompt).group(1)
    shown = responses(prompt)
    if q == "half":
        return "[[A]]" if "GOOD" in shown["A"] else "no idea"
    return {"right": pick(prompt, "GOOD"), "first": "[[A]]", "wrong": pick(prompt, "BAD")}.get(q, "no idea")


def test_judgebench_votes_summed_net_zero_wrong_per_category():
    _, summary = evaluate("judgebench", FIXTURES / "judgebench-mini.jsonl", jb_rule)
    b = summary["benchmark"]
    assert b["sections"] == {"knowledge": 0.5, "reasoning": 1.0, "math": 0.0, "coding": 0.0}
    assert b["overall"] == pytest.approx(2 / 5) and b["n"]["knowledge"] == 2 and b["name"] == "JudgeBench"
    assert "(inconsistent, tie or unparsed = wrong)" in b["scoring_rule"]
    assert summary["n_judgments"] == 10  # both orders, as published


@pytest.mark.parametrize("bad, says", [
    ({"label": "A=B"}, "field 'label' must be one of ['A>B', 'B>A'], got 'A=B'"),
    ({"source": "gsm8k"}, "field 'source' must be one of ['mmlu-pro', 'livebench-reasoning', 'livebench-math', 'livecodebench']"),
    ({"response_B": None}, "field 'response_B' must be a string, got null"),
    ({"pair_id": "p1"}, "duplicate id 'p1', first seen at row 0"),
])
def test_judgebench_bad_rows(tmp_path, bad, says):
    path = write_jsonl(tmp_path / "jb.jsonl", [JB_ROWS[0], JB_ROWS[1] | bad])
    with pytest.raises(InputError) as ei:
        load_set("judgebench", str(path))
    assert f"{path}: row 1" in str(ei.value) and says in str(ei.value)


# --- RM-Bench ----------------------------------------------------------------------------------


# style k of prompt 1 ("style", chat) and 2 ("substance", safety-refuse) is k+1 words long (GOOD / FAIL), so a
# judge that prefers the longer response prefers the fancier style
RMB_ROWS = json.loads((FIXTURES / "rmbench-mini.json").read_text())


def rmb_rule(prompt: str) -> str:
    shown = responses(prompt)
    if "style" in prompt:  # the longer response; at equal length whatever is shown first
        return "[[B]]" if len(shown["B"]) > len(shown["A"]) else "[[A]]"
    return pick(prompt, "GOOD")


def test_rmbench_grid_easy_normal_hard_ties_wrong():
    rows, summary = evaluate("rmbench", FIXTURES / "rmbench-mini.json", rmb_rule)  # published as one JSON list
    b = summary["benchmark"]
    # chat: chosen fancier (easy) always right; same style: a tie, wrong; chosen plainer (hard) always wrong
    assert b["domains"]["chat"] == {"easy": 1.0, "normal": 0.0, "hard": 0.0, "score": pytest.approx(1 / 3)}
    assert b["domains"]["safety"] == {"easy": 1.0, "normal": 1.0, "hard": 1.0, "score": 1.0}
    assert b["overall"] == pytest.approx((1 / 3 + 1) / 2)
    assert (b["easy"], b["normal"], b["hard"]) == (1.0, 0.5, 0.5)
    assert b["missing"] == ["math", "code"] and b["sections"]["code"] is None
    assert len(rows) == 2 * 9 * 2 and {r["subset"] for r in rows} == {"chat", "safety-refuse"}


def test_rmbench_single_order_and_bad_rows(tmp_path):
    path = write_jsonl(tmp_path / "rmb.jsonl", [RMB_ROWS[1] | {"domain": "code"}])
    rows, summary = evaluate("rmbench", path, rmb_rule, orders_mode="random_seeded")
    assert len(rows) == 9 and summary["benchmark"]["sections"]["code"] == 1.0
    for bad, says in [({"chosen": ["a", "b"]}, "field 'chosen' must be a list of 3 strings, got a list of 2"),
                      ({"domain": "poetry"}, "field 'domain' must be one of ['chat', 'math', 'code', 'safety']")]:
        write_jsonl(path, [RMB_ROWS[1] | bad])
        with pytest.raises(InputError, match=re.escape(says)):
            load_set("rmbench", str(path))


def test_benchmarks_refuse_several_samples(tmp_path):
    path = write_jsonl(tmp_path / "jb.jsonl", JB_ROWS)
    with pytest.raises(ValueError, match="one greedy judgment"):
        evaluate("judgebench", path, jb_rule, samples=3)


# --- the command line and the pipeline -------------------------------------------------------------


@pytest.mark.parametrize("fmt, fixture, rule, says", [
    ("rewardbench2", "rewardbench2-mini.jsonl", rb2_rule, ["RewardBench 2: overall  0.6722", "RewardBench 2: Factuality  0.4167",
                                                          "RewardBench 2: Ties  0.6", "RewardBench 2: Safety  -",
                                                          "RewardBench 2 (official): best-of-4"]),
    ("judgebench", "judgebench-mini.jsonl", jb_rule, ["JudgeBench: overall  0.4", "JudgeBench: knowledge  0.5",
                                                      "JudgeBench scoring: JudgeBench (official)", "scoring: official: 1 ="]),
    ("rmbench", "rmbench-mini.json", rmb_rule, ["RM-Bench: overall  0.6667", "RM-Bench: hard  0.5", "RM-Bench: chat  0.3333",
                                                "RM-Bench scoring: RM-Bench (official)"]),
])
def test_judge_command_prints_the_headline_sections_and_rule(capsys, monkeypatch, tmp_path, fmt, fixture, rule, says):
    import judgeloop.apply as apply
    from judgeloop.cli import main

    monkeypatch.setattr(apply, "_backend", lambda model, gen, workdir: RuleBackend(rule))
    out_file = tmp_path / "o.parquet"
    code = main(["judge", str(FIXTURES / fixture), "--format", fmt, "--model", "nobody/judge", "--output", str(out_file)])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = [" ".join(line.split()) for line in out.splitlines()]
    for s in says:
        assert any(" ".join(s.split()) in line for line in lines), (s, out)
    assert pq.read_table(out_file).num_rows > 0


def test_evalset_stage_keeps_every_completion(tmp_path, monkeypatch):
    """The evalset stage's Parquet copy of a best-of-4 or style-grid set gives back the same items."""
    from types import SimpleNamespace

    from judgeloop import pipeline
    from judgeloop.config import EvalSet
    from judgeloop.io import read_parquet
    from judgeloop.methods.pairwise import evalset_items

    monkeypatch.chdir(tmp_path)
    for name, fmt, fixture in [("rb2", "rewardbench2", "rewardbench2-mini.jsonl"), ("jb", "judgebench", "judgebench-mini.jsonl")]:
        es = EvalSet(name=name, format=fmt, path=str(FIXTURES / fixture))
        params = SimpleNamespace(evaluation=SimpleNamespace(sets=[es]))
        pipeline.run_evalset(params, SimpleNamespace(name=name))
        assert evalset_items(read_parquet(pipeline.evalset_path(name))) == load_set(fmt, es.path)


def test_metrics_carry_the_benchmark_headline():
    from judgeloop.metrics import PAIRWISE_EVAL, eval_metrics

    sets = {"jb": {"accuracy": 0.6, "parse_rate": 0.9, "benchmark": {"overall": 0.4}}}
    assert eval_metrics("it1", sets, PAIRWISE_EVAL, "synthetic")["it1"]["jb"]["score"] == 0.4
