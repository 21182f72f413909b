"""Self-Taught Evaluator (Wang et al. 2024): pairwise verdicts on synthetic (better, worse) pairs.

Judges the pairs stage's pairs in both orders, curates by the construction
label (`curation.py`), and evaluates on the held-out pairs plus
`evaluation.sets` (`bench_eval.py`).
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
from ..metrics import PAIRWISE_EVAL
from ..schemas import to_table

log = logging.getLogger("judgeloop")

NAME = "pairwise"
KINDS = MethodKinds(items="pairs", judgments="judgments", sft="sft", eval="eval")
METRICS = PAIRWISE_EVAL  # metrics/<judge>/eval.json: name -> key of an evaluation summary
HEADLINE_SET = "synthetic"  # the set whose numbers head that file
LEAK_ID = "prompt_id"  # what `leaked` names


def _ok(pairs: pa.Table, split: str) -> list[dict[str, Any]]:
    return [r for r in pairs.to_pylist() if r["split"] == split and r["gen_status"] == "ok"]


def _items(pairs: list[dict[str, Any]]) -> list[Any]:
    from ..judging import PairwiseItem

    return [PairwiseItem(p["pair_id"], p["instruction"], p["response_w"], p["response_l"]) for p in pairs]


def judge(params: Params, it: str, items: pa.Table, backend: Backend) -> tuple[pa.Table, dict[str, Any]]:
    """Sampled judgments of `it`'s pairs in both orders: (a `judgments` table, counts for the stage's stats)."""
    from ..judging import judge_items, judgment_fields

    cfg = params.judging_for(it)
    split = params.pairs_split(it)
    pairs = _ok(items, split)
    log.info("judge@%s: %d pairs%s x 2 orders x %d samples with models/%s", it, len(pairs),
             f" (of {split})" if split != it else "", cfg.samples, params.iterations[it].prev)
    sampling = Sampling(cfg.temperature, cfg.top_p, cfg.max_tokens, cfg.samples, cfg.seed)
    judged = judge_items(_items(pairs), backend, sampling, cfg.verdict_fallback, seed_key=it, desc=f"judge@{it}",
                         calibration=cfg.forced_calibration, template=params.judge_template)
    sampling_json = json.dumps(sampling.to_dict() | {"verdict_fallback": cfg.verdict_fallback, "template": params.judge_template,
                                                     "forced_calibration": cfg.forced_calibration}, sort_keys=True)
    rows = [
        {
            "judgment_id": f"{it}:{j.item_id}:{j.order}:{j.sample_idx}", "pair_id": j.item_id, "iteration": it,
            "judge_model": backend.model_name, "judge_hash": backend.model_hash, "sample_idx": j.sample_idx,
            "seed": j.seed, "sampling": sampling_json, "correct": j.correct, **judgment_fields(j),
            "len_a": j.len_a, "len_b": j.len_b,
        }
        for j in judged
    ]
    return to_table(KINDS.judgments, rows), {"pairs": len(pairs)}


def curate(params: Params, it: str, judgments: Path, items: Path, sft: Path, dpo: Path,
           backend: Callable[[], Backend]) -> dict[str, Any]:
    """Rejection sampling into the SFT and DPO files; returns the funnel (DPO's under "dpo").

    Takes and writes files, not tables: `curation.curate_files` streams them in
    row groups, so a paper-scale judgments file never has to fit in memory."""
    from ..curation import curate_files

    sft_funnel, dpo_funnel = curate_files(judgments, items, params.curation_for(it), it, sft, dpo,
                                          template=params.judge_template)
    for name, funnel in (("SFT", sft_funnel), ("DPO", dpo_funnel)):
        if "empty_reason" in funnel:
            log.warning("curate@%s: the %s set is EMPTY: %s", it, name, funnel["empty_reason"])
    return sft_funnel | {"dpo": dpo_funnel}


def evalset_items(table: pa.Table) -> tuple[list[Any], dict[str, str]]:
    """The items of an evalset table: pairs, or candidate sets (rows with chosen/rejected lists); and their subsets."""
    from ..benchmarks import CandidateItem
    from ..judging import PairwiseItem

    rows = table.to_pylist()
    items = [CandidateItem(r["item_id"], r["instruction"], tuple(r["chosen"]), tuple(r["rejected"]), r["subset"])
             if r["chosen"] is not None else PairwiseItem(r["item_id"], r["instruction"], r["better"], r["worse"]) for r in rows]
    return items, {r["item_id"]: r["subset"] for r in rows if r["subset"]}


def evaluate(params: Params, name: str, items: pa.Table, evalsets: dict[str, pa.Table],
             backend: Backend) -> tuple[pa.Table, dict[str, Any]]:
    """Greedy judgments of the held-out pairs (`evaluation.synthetic`) and of every evaluation set:
    (an `eval` table, {set: summary})."""
    from ..bench_eval import evaluate_format

    ev = params.evaluation
    sets: list[tuple[str, str, str, str, list[Any], dict[str, str]]] = []
    if ev.synthetic:
        pairs = _ok(items, "eval")
        sets.append(("synthetic", "pairwise", "both", "all_at_once", _items(pairs),
                     {p["pair_id"]: p["category"] or "" for p in pairs}))
    for es in ev.sets:
        sets.append((es.name, es.format, es.orders, es.best_of_n, *evalset_items(evalsets[es.name])))
    rows, summary = [], {}
    for set_name, fmt, orders, best_of_n, set_items, subsets in sets:
        set_rows, summary[set_name] = evaluate_format(
            set_name, fmt, set_items, subsets, backend, max_tokens=ev.max_tokens, fallback=ev.verdict_fallback,
            orders_mode=orders, order_seed=ev.order_seed, samples=ev.samples, temperature=ev.temperature,
            template=params.judge_template, best_of_n=best_of_n,
        )
        rows += set_rows
        bench = summary[set_name].get("benchmark")
        log.info("evaluate@%s %s: accuracy %s, parse rate %s%s", name, set_name, summary[set_name].get("accuracy"),
                 summary[set_name]["parse_rate"], f", {bench['name']} {bench['overall']}" if bench else "")
    return to_table(KINDS.eval, rows), summary


def leaked(items: pa.Table, judgments: pa.Table) -> list[str]:
    """The prompts judged (and so trained on) that are in the evaluation split too."""
    pairs = items.select(["pair_id", "prompt_id", "split"]).to_pylist()
    judged = set(judgments.column("pair_id").to_pylist())
    eval_prompts = {p["prompt_id"] for p in pairs if p["split"] == "eval"}
    return sorted({p["prompt_id"] for p in pairs if p["pair_id"] in judged} & eval_prompts)
