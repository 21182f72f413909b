"""The few numbers `dvc metrics show` and `dvc exp show` compare.

Each stage writes everything it measured (funnels, throughput, loss history,
scoring rules) to `stats/` as plain JSON for the report and `judgeloop
audit`, and a handful of numbers to `metrics/`, which DVC turns into one
column per number:

- `metrics/<judge>/eval.json`: per evaluation set, accuracy, parse rate,
  share of "A", position consistency and n (Likert: Spearman, exact and
  within-1 agreement, parse rate, n);
- `metrics/<it>/curation.json`: judged, kept, keep rate;
- `metrics/<it>/train.json`: train loss, examples per second.
"""

from __future__ import annotations

from typing import Any

# metric name -> key in the full evaluation summary (evaluation.summarise, likert.likert_metrics)
PAIRWISE_EVAL = {"accuracy": "accuracy", "parse_rate": "parse_rate", "a_share": "a_rate",
                 "consistency": "position_consistency", "n": "n_examples"}
LIKERT_EVAL = {"spearman": "spearman", "exact": "exact", "within_1": "within_1", "parse_rate": "parse_rate", "n": "n"}


def _r(x: Any) -> Any:
    return round(x, 4) if isinstance(x, float) else x


def eval_metrics(sets: dict[str, dict[str, Any]], method: str) -> dict[str, dict[str, Any]]:
    keys = LIKERT_EVAL if method == "likert" else PAIRWISE_EVAL
    return {name: {m: _r(s.get(k)) for m, k in keys.items()} for name, s in sets.items()}


def curation_metrics(funnel: dict[str, Any]) -> dict[str, Any]:
    """judged = judgments read; kept = training examples (SFT rows, or DPO pairs when
    the funnel is the DPO one); keep_rate = kept groups / groups judged."""
    return {"judged": funnel.get("judgments"), "kept": funnel.get("kept"), "keep_rate": _r(funnel.get("keep_rate_pairs"))}


def train_metrics(stats: dict[str, Any]) -> dict[str, Any]:
    return {"train_loss": _r(stats.get("train_loss")), "examples_per_s": _r(stats.get("examples_per_s"))}
