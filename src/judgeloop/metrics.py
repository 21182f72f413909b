"""The few numbers `dvc metrics show` and `dvc exp show` compare.

Each stage writes everything it measured (funnels, throughput, loss history,
scoring rules) to `stats/` as plain JSON for the report and `judgeloop
audit`, and a handful of numbers to `metrics/`, which DVC turns into one
column per number. Every metrics file nests its numbers under the judge or
iteration it describes, so a column name is unique and short (`it1.acc`):
`dvc exp show` then needs no file paths in its headers, and two experiments
compared with `--only-changed` fit a 200-column terminal.

- `metrics/<judge>/eval.json`: the held-out synthetic pairs (Likert: the
  held-out rubric items) as `<judge>.acc`, `.parse` (parse rate), `.a_share`
  (share of "A" verdicts), `.consist` (position consistency), `.n`,
  `.acc_lo` / `.acc_hi` (95% bootstrap interval of acc over examples); every
  other evaluation set nested by its name (`<judge>.<set>.acc`, ...); a
  benchmark set (RewardBench 2, JudgeBench, RM-Bench) adds `.score`, its
  official overall number. Likert
  reports `spearman`, `exact`, `within_1`, `parse`, `n`.
- `metrics/<it>/train.json` (written by train, which reads the curation
  funnel): `<it>.judged`, `.kept`, `.keep_rate`, `.loss` (mean train loss),
  `.ex_per_s` (training examples per second).
"""

from __future__ import annotations

from typing import Any

# metric name -> key in the full evaluation summary (evaluation.summarise, likert.likert_metrics)
PAIRWISE_EVAL = {"acc": "accuracy", "parse": "parse_rate", "a_share": "a_rate", "consist": "position_consistency", "n": "n_examples"}
LIKERT_EVAL = {"spearman": "spearman", "exact": "exact", "within_1": "within_1", "parse": "parse_rate", "n": "n"}


def _r(x: Any) -> Any:
    return round(x, 4) if isinstance(x, float) else x


def eval_metrics(judge: str, sets: dict[str, dict[str, Any]], keys: dict[str, str], headline: str) -> dict[str, Any]:
    """{judge: numbers}: `keys` (metric name -> summary key) of each set; the `headline` set's at the top level."""
    out: dict[str, Any] = {}
    for name, s in sets.items():
        numbers = {m: _r(s.get(k)) for m, k in keys.items()}
        if s.get("benchmark"):
            numbers["score"] = _r(s["benchmark"]["overall"])
        if s.get("accuracy_ci95"):  # the 95% interval of acc, as two columns
            numbers["acc_lo"], numbers["acc_hi"] = s["accuracy_ci95"]
        if name == headline:
            out.update(numbers)
        else:
            out[name] = numbers
    return {judge: out}


def iteration_metrics(it: str, funnel: dict[str, Any], train: dict[str, Any]) -> dict[str, Any]:
    """judged = judgments curated; kept = training examples (SFT rows, or DPO pairs when the
    funnel is the DPO one); keep_rate = kept groups / groups judged; loss and examples/s of training."""
    keep_rate = funnel.get("keep_rate_pairs")
    if keep_rate is None and funnel.get("groups"):  # the DPO funnel: pairs kept per (pair, order) judged
        keep_rate = funnel.get("kept", 0) / funnel["groups"]
    return {it: {"judged": funnel.get("judgments"), "kept": funnel.get("kept"), "keep_rate": _r(keep_rate),
                 "loss": _r(train.get("train_loss")), "ex_per_s": _r(train.get("examples_per_s"))}}
