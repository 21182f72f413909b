"""Eval scoring rules and pairwise loaders, against hand-computed values."""

from __future__ import annotations

import json

import pytest

from conftest import LLMBAR_NATURAL

from judgeloop.evaluation import load_llmbar, load_pairwise, summarise
from judgeloop.judging import Judged, winner
from judgeloop.loaders import InputError
from judgeloop.scoring import score



def J(item: str, order: str, verdict: str | None, source: str | None = "parsed") -> Judged:
    correct = None if verdict is None else verdict == winner(order)
    status = "ok" if source == "parsed" else "none"
    return Judged(item, order, 0, 0, "t", verdict, status, source if verdict else None, None, None, correct, 3, "stop", 1, 1)


def test_score_rule_half_for_no_verdict_of_its_own():
    assert score(J("x", "wl", "A")) == 1.0
    assert score(J("x", "wl", "B")) == 0.0
    assert score(J("x", "lw", None, None)) == 0.5
    assert score(J("x", "lw", "B", "forced")) == 0.5  # a forced verdict is not the judge's own


def test_summary_hand_computed():
    rows = [
        J("1", "wl", "A"), J("1", "lw", "B"),  # right both orders: consistent
        J("2", "wl", "A"), J("2", "lw", "A"),  # always A: inconsistent, 1 + 0
        J("3", "wl", None, None), J("3", "lw", "B", "forced"),  # 0.5 + 1
    ]
    s = summarise(rows)
    assert s["n_examples"] == 3 and s["n_judgments"] == 6
    assert s["accuracy"] == pytest.approx((1 + 1 + 1 + 0 + 0.5 + 0.5) / 6, abs=1e-4)  # strict: forced = 0.5
    assert s["accuracy_by_order"] == {"lw": pytest.approx(1.5 / 3, abs=1e-4), "wl": pytest.approx(2.5 / 3, abs=1e-4)}
    assert s["accuracy_forced"] == pytest.approx((1 + 1 + 1 + 0 + 0.5 + 1) / 6, abs=1e-4)
    assert s["accuracy_forced_by_order"] == {"lw": pytest.approx(2 / 3, abs=1e-4), "wl": pytest.approx(2.5 / 3, abs=1e-4)}
    assert s["position_consistency"] == pytest.approx(1 / 3, abs=1e-4)  # item 3 has no verdict in one order
    assert s["parse_rate"] == pytest.approx(4 / 6, abs=1e-4)
    assert s["forced_rate"] == pytest.approx(1 / 6, abs=1e-4)
    assert s["no_verdict_rate"] == pytest.approx(1 / 6, abs=1e-4)
    assert s["accuracy_parsed_only"] == pytest.approx(3 / 4, abs=1e-4)
    assert s["a_rate"] == pytest.approx(3 / 5, abs=1e-4)
    assert "0.5" in s["scoring_rule"]


def test_summary_empty():
    assert summarise([]) == {"n_examples": 0}


def test_real_llmbar_natural_loads():
    items = load_llmbar(LLMBAR_NATURAL)
    assert len(items) == 100
    raw = json.loads(LLMBAR_NATURAL.read_text())
    first = raw[0]
    better = first["output_1"] if first["label"] == 1 else first["output_2"]
    assert items[0].better == better and items[0].instruction == first["input"]
    assert len(load_llmbar(LLMBAR_NATURAL, limit=5)) == 5


def test_llmbar_errors(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps([{"input": "q", "output_1": "a", "output_2": "b", "label": 3}]))
    with pytest.raises(InputError, match="example 0: field 'label' must be the integer 1 or 2, got 3"):
        load_llmbar(p)
    p.write_text(json.dumps([{"input": "q", "output_1": "a", "label": 1}]))
    with pytest.raises(InputError, match="example 0: field 'output_2' must be a string, got missing"):
        load_llmbar(p)
    p.write_text("[]")
    with pytest.raises(InputError, match="non-empty"):
        load_llmbar(p)


def test_generic_pairwise_jsonl(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps({"prompt": "q", "chosen": "good", "rejected": "bad", "subset": "s1", "id": "e1"}) + "\n")
    items, subsets = load_pairwise(p)
    assert items[0].better == "good" and items[0].worse == "bad" and subsets == {"e1": "s1"}
    p.write_text(json.dumps({"prompt": "q", "chosen": "good"}) + "\n")
    with pytest.raises(InputError, match="row 0: field 'rejected'"):
        load_pairwise(p)


class _NoTopKBackend:
    """A stand-in engine whose top-k never holds the verdict tokens (as a remote server's may not)."""

    model_name, model_hash = "stand-in", "0"

    def generate(self, requests, desc=""):
        from judgeloop.backends import Completion

        return [[Completion(r.request_id, i, "no verdict here", 5, 3, "stop") for i in range(r.sampling.n)] for r in requests]

    def choice_logprobs(self, contexts, choices):
        return [{c: float("-inf") for c in choices} for _ in contexts]


def test_forced_fallback_without_the_tokens_gives_no_verdict_not_a_guess():
    from judgeloop.backends import Sampling
    from judgeloop.judging import PairwiseItem, judge_items

    rows = judge_items([PairwiseItem("x", "q", "good", "bad")], _NoTopKBackend(), Sampling(0.7, 0.9, 8, 2, 0), "forced", "t")
    assert len(rows) == 4 and all(r.verdict is None and r.correct is None and r.p_a is None for r in rows)
    assert summarise(rows)["accuracy"] == 0.5


def test_majority_vote_gets_its_own_rewardbench_sections_and_forced_verdicts_do_not_vote():
    from judgeloop.evaluation import evaluate_set
    from judgeloop.judging import PairwiseItem

    from test_judging import ScriptedBackend

    items = [PairwiseItem("e1", "q", "good", "bad"), PairwiseItem("e2", "q", "good", "bad")]
    subsets = {"e1": "alpacaeval-easy", "e2": "llmbar-natural"}
    # every sample writes [[A]] or nothing; the engine forces A where nothing was written
    backend = ScriptedBackend(["[[A]]", "no verdict", "[[A]]"])
    _, summary = evaluate_set("rb", "rewardbench", items, subsets, backend, max_tokens=8, fallback="forced",
                              orders_mode="both", samples=3)
    assert summary["accuracy"] == pytest.approx((2 / 3 * 1 + 1 / 3 * 0.5 + 2 / 3 * 0 + 1 / 3 * 0.5) / 2)
    assert summary["accuracy_forced"] is not None  # forced verdicts scored under their own name
    majority = summary["majority"]
    assert set(majority["rewardbench"]["all"]) >= {"overall"} and majority["majority_accuracy"] == pytest.approx(0.5)


def test_bootstrap_interval_is_seeded_and_narrows_with_more_examples():
    from judgeloop.evaluation import bootstrap_ci

    small, large = [1.0, 0.0] * 10, [1.0, 0.0] * 200
    assert bootstrap_ci(small) == bootstrap_ci(small)
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s < 0.5 < hi_s and lo_l < 0.5 < hi_l and hi_l - lo_l < (hi_s - lo_s) / 3
    assert bootstrap_ci([1.0]) is None


def test_paired_difference_uses_the_examples_both_judges_scored():
    from judgeloop.evaluation import paired_difference

    before = {f"e{i}": 0.5 for i in range(50)}
    after = {f"e{i}": 1.0 for i in range(40)} | {"other": 0.0}
    d = paired_difference(before, after)
    assert d == {"n": 40, "difference": 0.5, "ci95": [0.5, 0.5]}
    mixed = paired_difference(before, {k: (1.0 if i % 2 else 0.0) for i, k in enumerate(before)})
    assert mixed["difference"] == 0.0 and mixed["ci95"][0] < 0 < mixed["ci95"][1]
