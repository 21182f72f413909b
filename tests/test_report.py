"""The iteration report: confidence intervals and the paired change against the first judge."""

from __future__ import annotations

import json
import os
from pathlib import Path

from judgeloop.config import load_params
from judgeloop.report import build_report

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def _eval(tmp: Path, judge: str, scores: dict[str, float], a_rate: float) -> None:
    acc = sum(scores.values()) / len(scores)
    s = {"accuracy": acc, "accuracy_ci95": [acc - 0.1, acc + 0.1], "parse_rate": 0.95, "a_rate": a_rate,
         "n_examples": len(scores), "item_scores": scores, "accuracy_by_order": {"wl": acc, "lw": acc}}
    (tmp / "stats" / judge).mkdir(parents=True, exist_ok=True)
    (tmp / "stats" / judge / "eval.json").write_text(json.dumps({"model": judge, "sets": {"synthetic": s}}))


def test_report_shows_intervals_and_the_paired_change(tmp_path, monkeypatch):
    params = load_params(PARAMS)
    _eval(tmp_path, "it0", {f"e{i}": 0.5 for i in range(60)}, 1.0)
    _eval(tmp_path, "it1", {f"e{i}": 0.5 for i in range(60)}, 0.5)
    _eval(tmp_path, "it2", {f"e{i}": 1.0 if i % 3 else 0.5 for i in range(60)}, 0.5)
    monkeypatch.chdir(tmp_path)
    summary = build_report(params)
    md = Path("reports/summary.md").read_text()
    assert "| it2 | synthetic | 0.833 [0.73, 0.93] |" in md
    assert summary["changes"]["it1"]["synthetic"] == {"n": 60, "difference": 0.0, "ci95": [0.0, 0.0], "from": "it0"}
    d = summary["changes"]["it2"]["synthetic"]
    assert d["difference"] == 0.3333 and 0.2 < d["ci95"][0] < d["difference"] < d["ci95"][1] < 0.45
    assert "| it2 | synthetic | it0 | 60 | +0.333 | [+" in md
    assert "item_scores" not in json.dumps(summary["models"])  # per-example scores stay in stats/
    assert os.path.exists("reports/plots/judges/synthetic.json") and os.path.exists("reports/plots/learning_curve.png")
    assert summary["trained_on"]["it0"] == 0 and "learning_curve.png" in md


def test_report_has_a_table_per_benchmark_with_its_rule(tmp_path, monkeypatch):
    from judgeloop.benchmarks import RB2_RULE

    params = load_params(PARAMS)
    _eval(tmp_path, "it0", {f"e{i}": 0.5 for i in range(10)}, 0.5)
    ev = json.loads((tmp_path / "stats" / "it0" / "eval.json").read_text())
    sections = {"Factuality": 0.5, "Precise IF": None, "Math": 1.0, "Safety": 0.25, "Focus": 0.75, "Ties": 0.6}
    ev["sets"]["rb2"] = {"n_examples": 4, "parse_rate": 0.75, "scoring_rule": RB2_RULE,
                         "benchmark": {"name": "RewardBench 2", "overall": 0.62, "sections": sections, "scoring_rule": RB2_RULE}}
    (tmp_path / "stats" / "it0" / "eval.json").write_text(json.dumps(ev))
    monkeypatch.chdir(tmp_path)
    build_report(params)
    md = Path("reports/summary.md").read_text()
    assert f"## RewardBench 2\n\nScoring: {RB2_RULE}." in md
    assert "| judge | set | overall | Factuality | Precise IF | Math | Safety | Focus | Ties |" in md
    assert "| it0 | rb2 | 0.620 | 0.500 | - | 1.000 | 0.250 | 0.750 | 0.600 |" in md
