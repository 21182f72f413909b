"""Self-Rationalization (Trivedi et al. 2024): 1-5 rubric scores against gold scores.

Judges the rubrics stage's items (`likert.py` holds the prompts' items, the
judging and the curation rules), curates DPO pairs by distance to the gold
score, and evaluates by correlation with gold on the items of the eval split.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from ..backends import Backend, Sampling
from ..config import Params
from ..datasets import MethodKinds
from ..metrics import LIKERT_EVAL
from ..io import write_parquet
from ..likert import RubricItem, judge_likert, likert_metrics
from ..schemas import check_table, to_table

log = logging.getLogger("judgeloop")

NAME = "likert"
KINDS = MethodKinds(items="rubrics", judgments="likert_judgments", sft="likert_sft", eval="likert_eval")
METRICS = LIKERT_EVAL  # metrics/<judge>/eval.json: name -> key of an evaluation summary
HEADLINE_SET = "rubrics"  # the set whose numbers head that file
LEAK_ID = "item_id"  # what `leaked` names


def build_items(params: Params, pairs: pa.Table | None) -> pa.Table:
    """The `rubrics` table: items with gold scores from likert.sources (and synthetic ones from `pairs`), split by hash."""
    from ..likert import source_items, split_items, synthetic_items

    lk = params.likert
    items = source_items(lk)
    if lk.synthetic:
        items += synthetic_items(pairs.to_pylist(), *lk.synthetic_gold)
    ids = [it.item_id for it in items]
    if len(set(ids)) != len(ids):
        raise ValueError("likert.sources: item ids collide across sources; give each source a distinct `name`")
    splits = split_items(items, lk.split.seed, lk.split.eval_fraction, lk.split.iteration_fractions)
    rows = [
        {
            "item_id": it.item_id, "instruction": it.instruction, "response": it.response,
            "reference_answer": it.reference_answer, "criteria": it.criteria,
            **{f"score{k + 1}_description": d for k, d in enumerate(it.descriptions)},
            "gold_score": it.gold_score, "capability": it.capability, "source": it.source, "split": splits[it.item_id],
        }
        for it in sorted(items, key=lambda i: i.item_id)
    ]
    return to_table(KINDS.items, rows)


def _rubric_items(items: pa.Table, split: str) -> list[RubricItem]:
    return [
        RubricItem(r["item_id"], r["instruction"], r["response"], r["reference_answer"], r["criteria"],
                   tuple(r[f"score{k}_description"] for k in range(1, 6)), r["gold_score"], r["capability"], r["source"])
        for r in items.to_pylist()
        if r["split"] == split
    ]


def judge(params: Params, it: str, items: pa.Table, backend: Backend) -> tuple[pa.Table, dict[str, Any]]:
    """Sampled scores of `it`'s items: (a `likert_judgments` table, counts for the stage's stats)."""
    cfg = params.judging_for(it)
    rubric = _rubric_items(items, params.pairs_split(it))
    log.info("judge@%s (likert): %d items x %d samples with models/%s", it, len(rubric), cfg.samples,
             params.iterations[it].prev)
    sampling = Sampling(cfg.temperature, cfg.top_p, cfg.max_tokens, cfg.samples, cfg.seed)
    gold = {i.item_id: i.gold_score for i in rubric}
    judged = judge_likert(rubric, backend, sampling, cfg.verdict_fallback, seed_key=it, desc=f"judge@{it}")
    sampling_json = json.dumps(sampling.to_dict() | {"verdict_fallback": cfg.verdict_fallback}, sort_keys=True)
    rows = [
        {
            "judgment_id": f"{it}:{j.item_id}:{j.sample_idx}", "item_id": j.item_id, "iteration": it,
            "judge_model": backend.model_name, "judge_hash": backend.model_hash, "sample_idx": j.sample_idx,
            "seed": j.seed, "sampling": sampling_json, "text": j.text, "score": j.score, "parse_status": j.parse_status,
            "score_source": j.score_source, "expected_score": j.expected_score, "gold_score": gold[j.item_id],
            "n_tokens": j.n_tokens, "finish_reason": j.finish_reason,
        }
        for j in judged
    ]
    return to_table(KINDS.judgments, rows), {"items": len(rubric)}


def curate(params: Params, it: str, judgments: Path, items: Path, sft: Path, dpo: Path,
           backend: Callable[[], Backend]) -> dict[str, Any]:
    """DPO pairs (closest to gold over farthest) and exact-score SFT rows into their files; returns the funnel.

    `backend()` makes the meta-judge's engine, used only with `likert.tie_break: meta_judge`."""
    from ..io import read_parquet
    from ..likert import curate_likert, make_meta_judge

    table = read_parquet(judgments)
    check_table(KINDS.judgments, table, str(judgments))
    rubric = {i.item_id: i for i in _rubric_items(read_parquet(items), params.pairs_split(it))}
    cfg, lk = params.curation_for(it), params.likert
    meta = make_meta_judge(backend(), lk.meta_judge_max_tokens, seed=cfg.seed) if lk.tie_break == "meta_judge" else None
    dpo_rows, sft_rows, funnel = curate_likert(table.to_pylist(), rubric, it, cfg.seed, cfg.pairs_per_input, lk.tie_break,
                                               meta, cfg.dpo_chosen)
    write_parquet(to_table("dpo", dpo_rows), dpo)
    write_parquet(to_table("sft", sft_rows), sft)
    if "empty_reason" in funnel:
        log.warning("curate@%s: the DPO set is EMPTY: %s", it, funnel["empty_reason"])
    return funnel


def score_items(rubric: list[RubricItem], backend: Backend, max_tokens: int, fallback: str, dataset: str, seed_key: str,
                desc: str) -> tuple[pa.Table, list[Any], list[int]]:
    """One greedy score per item: (a `likert_eval` table, the judgments, their gold scores)."""
    greedy = Sampling(temperature=0.0, top_p=1.0, max_tokens=max_tokens, n=1, seed=0)
    judged = judge_likert(rubric, backend, greedy, fallback, seed_key=seed_key, desc=desc)
    gold = {i.item_id: i.gold_score for i in rubric}
    rows = [
        {"dataset": dataset, "example_id": j.item_id, "judge": backend.model_name, "judge_hash": backend.model_hash,
         "text": j.text, "score": j.score, "gold_score": gold[j.item_id], "parse_status": j.parse_status,
         "score_source": j.score_source, "expected_score": j.expected_score, "n_tokens": j.n_tokens,
         "finish_reason": j.finish_reason}
        for j in judged
    ]
    return to_table(KINDS.eval, rows), judged, [gold[j.item_id] for j in judged]


def evaluate(params: Params, name: str, items: pa.Table, evalsets: dict[str, pa.Table],
             backend: Backend) -> tuple[pa.Table, dict[str, Any]]:
    """Greedy scores of the eval split's items: (a `likert_eval` table, {"rubrics": metrics})."""
    table, judged, golds = score_items(_rubric_items(items, "eval"), backend, params.evaluation.max_tokens,
                                       params.evaluation.verdict_fallback, "rubrics", "eval", f"evaluate@{name}")
    statuses = [j.parse_status for j in judged]
    # the official rule: only scores the judge wrote; forced ones beside, under their own name
    metrics = likert_metrics([j.score if j.score_source == "parsed" else None for j in judged], golds, statuses)
    metrics["forced_rate"] = round(sum(j.score_source == "forced" for j in judged) / max(1, len(judged)), 4)
    if metrics["forced_rate"]:
        metrics["with_forced"] = likert_metrics([j.score for j in judged], golds, statuses)
    log.info("evaluate@%s rubrics: %s", name, metrics)
    return table, {"rubrics": metrics}


def leaked(items: pa.Table, judgments: pa.Table) -> list[str]:
    """The items judged (and so trained on) that are in the evaluation split too."""
    judged = set(judgments.column("item_id").to_pylist())
    return sorted(r["item_id"] for r in items.select(["item_id", "split"]).to_pylist()
                  if r["split"] == "eval" and r["item_id"] in judged)
