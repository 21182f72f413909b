"""Evaluate a judge on pairwise sets with known winners.

Every example is judged greedily in both orders. Scoring rule (the official
one, stated in every summary): a verdict the judge wrote itself for the
better response scores 1, for the worse 0, and anything else 0.5: no
verdict, or a forced one (read from the next-token distribution), which is
never a benchmark number. `accuracy_forced` scores forced verdicts as
verdicts and is reported beside `accuracy` under its own name, with
`parse_rate` (verdicts the judge wrote itself).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from .judging import Judged, PairwiseItem, judgment_fields
from .loaders import InputError, _read_text, id_field, read_jsonl, read_parquet_rows, text_field, unique_ids
from .scoring import SCORING_RULE, score, score_forced


def load_llmbar(path: str | Path, limit: int | None = None) -> list[PairwiseItem]:
    """LLMBar layout: JSON list of {input, output_1, output_2, label (1 or 2)[, id]}.

    Every example is checked before any is used: texts are text, the label is
    the integer 1 or 2 (not true, not "1"), ids are unique. An example without
    an id gets its position as id, which an explicit id may not repeat."""
    path = Path(path)
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, list) or not data:
        raise InputError(f"{path}: expected a non-empty JSON list of examples")
    items = []
    for i, ex in enumerate(data):
        where = f"{path}: example {i}"
        if not isinstance(ex, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(ex).__name__}")
        texts = [text_field(ex, key, where, blank_ok=True) for key in ("input", "output_1", "output_2")]
        label = ex.get("label")
        if type(label) is not int or label not in (1, 2):
            raise InputError(f"{where}: field 'label' must be the integer 1 or 2, got {'missing' if 'label' not in ex else repr(label)}")
        item_id = id_field(ex, "id", where) if ex.get("id") is not None else str(i)
        instruction, out1, out2 = texts
        better, worse = (out1, out2) if label == 1 else (out2, out1)
        items.append(PairwiseItem(item_id, instruction, better, worse))  # type: ignore[arg-type]
    unique_ids([it.item_id for it in items], lambda i: f"example {i}", str(path), lambda i: data[i].get("id") is None)
    return items[:limit] if limit else items


def load_pairwise(path: str | Path, limit: int | None = None) -> tuple[list[PairwiseItem], dict[str, str]]:
    """Generic layout (JSONL or Parquet): prompt, chosen, rejected[, subset, id]; checked as `load_llmbar` is."""
    path = Path(path)
    rows = read_parquet_rows(path) if path.suffix == ".parquet" else read_jsonl(path)
    if not rows:
        raise InputError(f"{path}: no rows")
    items, subsets = [], {}
    for i, r in enumerate(rows):
        where = f"{path}: row {i}"
        prompt, chosen, rejected = (text_field(r, key, where, blank_ok=True) for key in ("prompt", "chosen", "rejected"))
        item_id = id_field(r, "id", where) if r.get("id") is not None else str(i)
        items.append(PairwiseItem(item_id, prompt, chosen, rejected))  # type: ignore[arg-type]
        subset = text_field(r, "subset", where, optional=True)
        if subset:
            subsets[item_id] = subset
    unique_ids([it.item_id for it in items], lambda i: f"row {i}", str(path), lambda i: rows[i].get("id") is None)
    items = items[:limit] if limit else items
    return items, {k: v for k, v in subsets.items() if k in {it.item_id for it in items}}


def summarise(rows: list[Judged]) -> dict[str, Any]:
    """Accuracy (0.5 rule), per order, position consistency, parse and A rates."""
    if not rows:
        return {"n_examples": 0}
    by_order: dict[str, list[Judged]] = defaultdict(list)
    by_item: dict[str, dict[str, Judged]] = defaultdict(dict)
    for r in rows:
        by_order[r.order].append(r)
        by_item[r.item_id][r.order] = r
    both = [d for d in by_item.values() if "wl" in d and "lw" in d]
    # consistent: the same underlying response wins in both orders
    consistent = [d for d in both if d["wl"].correct is not None and d["lw"].correct is not None and d["wl"].correct == d["lw"].correct]
    with_verdict = [r for r in rows if r.verdict is not None]

    def mean(xs: list[float]) -> float | None:
        return round(sum(xs) / len(xs), 4) if xs else None

    acc_order = {o: mean([score(r) for r in rs]) for o, rs in sorted(by_order.items())}
    forced = any(r.verdict_source == "forced" for r in rows)
    items = item_scores(rows)
    return {
        "n_examples": len(by_item),
        "n_judgments": len(rows),
        "accuracy": mean([score(r) for r in rows]),
        "accuracy_ci95": bootstrap_ci(list(items.values())),
        "accuracy_by_order": acc_order,
        "accuracy_forced": mean([score_forced(r) for r in rows]) if forced else None,
        "accuracy_forced_by_order": {o: mean([score_forced(r) for r in rs]) for o, rs in sorted(by_order.items())} if forced else None,
        "accuracy_parsed_only": mean([score(r) for r in rows if r.verdict_source == "parsed"]),
        "position_consistency": mean([1.0 if d in consistent else 0.0 for d in both]),
        "parse_rate": mean([1.0 if r.parse_status == "ok" else 0.0 for r in rows]),
        "forced_rate": mean([1.0 if r.verdict_source == "forced" else 0.0 for r in rows]),
        "no_verdict_rate": mean([1.0 if r.verdict is None else 0.0 for r in rows]),
        "a_rate": mean([1.0 if r.verdict == "A" else 0.0 for r in with_verdict]),
        "scoring_rule": SCORING_RULE,
        "item_scores": items,  # for paired comparisons between judges (`paired_difference`)
    }


def item_scores(rows: list[Judged]) -> dict[str, float]:
    """Each example's mean score over its judgments (both orders): the unit a confidence interval resamples,
    since the two orders of one example are not independent."""
    by_item: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_item[r.item_id].append(score(r))
    return {k: sum(v) / len(v) for k, v in sorted(by_item.items())}


BOOTSTRAP_RESAMPLES = 2000


def bootstrap_ci(values: list[float], seed: int = 0, level: float = 0.95) -> list[float] | None:
    """Percentile bootstrap interval of the mean of `values` (seeded: the same data give the same interval)."""
    import numpy as np

    if len(values) < 2:
        return None
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(BOOTSTRAP_RESAMPLES, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return [round(float(lo), 4), round(float(hi), 4)]


def paired_difference(before: dict[str, float], after: dict[str, float], seed: int = 0) -> dict[str, Any] | None:
    """Mean of after - before over the examples both judges scored, with its 95% bootstrap interval."""
    common = sorted(set(before) & set(after))
    if len(common) < 2:
        return None
    diffs = [after[k] - before[k] for k in common]
    return {"n": len(common), "difference": round(sum(diffs) / len(diffs), 4), "ci95": bootstrap_ci(diffs, seed)}


#: format -> its Hugging Face split when the source is a dataset id
DEFAULT_SPLITS = {"rewardbench": "filtered", "rewardbench2": "test", "judgebench": "gpt", "rmbench": "train"}


def load_set(fmt: str, path: str, limit: int | None = None, split: str | None = None) -> tuple[list[Any], dict[str, str]]:
    """Items (pairwise, or candidate sets for rewardbench2 / rmbench) and item_id -> subset for any supported format.

    `split` is the hub split when `path` is a dataset id (None: the format's own, DEFAULT_SPLITS)."""
    from . import benchmarks

    split = split or DEFAULT_SPLITS.get(fmt, "")
    if fmt == "llmbar":
        return load_llmbar(path, limit), {}
    if fmt == "rewardbench":
        from .scoring import load_rewardbench

        return load_rewardbench(path, split=split, limit=limit)
    if fmt == "judgebench":
        return benchmarks.load_judgebench(path, split, limit)
    if fmt in ("rewardbench2", "rmbench"):
        loader = benchmarks.load_rewardbench2 if fmt == "rewardbench2" else benchmarks.load_rmbench
        items = loader(path, split, limit)
        return items, {it.item_id: it.subset for it in items}
    return load_pairwise(path, limit)


def evaluate_set(
    name: str, fmt: str, items: list[PairwiseItem], subsets: dict[str, str], backend: Any, *, max_tokens: int,
    fallback: str, orders_mode: str = "both", order_seed: int = 0, samples: int = 1, temperature: float = 0.7,
    template: str = "standard",
) -> tuple[list[Judged], dict[str, Any]]:
    """Judge a set and summarise it: accuracy (0.5 rule), orders, parse rate;
    RewardBench section scores for that format; majority vote when samples > 1."""
    from .backends import Sampling
    from .judging import judge_items
    from .scoring import assign_orders, group_verdicts, majority_judged, majority_scores, rewardbench_report

    orders = assign_orders([i.item_id for i in items], order_seed, orders_mode)
    if samples > 1:
        sampling = Sampling(temperature=temperature, top_p=1.0, max_tokens=max_tokens, n=samples, seed=order_seed)
    else:
        sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=max_tokens, n=1, seed=0)
    judged = judge_items(items, backend, sampling, fallback, seed_key=f"eval:{name}", desc=f"evaluate:{name}", orders=orders,
                         template=template)
    summary = summarise(judged) | {"orders": orders_mode, "template": template}
    if samples > 1:
        per_key, maj = majority_scores(group_verdicts(judged))
        voted = majority_judged(per_key)
        summary["majority"] = maj | {"samples": samples, "position": summarise(voted)}
        if fmt == "rewardbench":  # the paper's 88.7 is this: sections scored on the majority vote
            summary["majority"]["rewardbench"] = rewardbench_report(voted, subsets)
    if fmt == "rewardbench":
        summary["rewardbench"] = rewardbench_report(judged, subsets)
    return judged, summary


def eval_row(dataset: str, subset: str | None, example_id: str, judge: tuple[str, str], score: float | None,
             fields: dict[str, Any]) -> dict[str, Any]:
    """One row of the `eval` schema: `fields` are the judgment's own columns (`judgment_fields`)."""
    return {"dataset": dataset, "subset": subset, "example_id": f"{dataset}:{example_id}", "judge": judge[0],
            "judge_hash": judge[1], "score": score, **fields}


def eval_rows(name: str, judged: list[Judged], subsets: dict[str, str], model_name: str, model_hash: str) -> list[dict[str, Any]]:
    """Per-example rows of the `eval` schema (one per judgment)."""
    return [eval_row(name, subsets.get(j.item_id), f"{j.item_id}:{j.order}:{j.sample_idx}", (model_name, model_hash), score(j),
                     judgment_fields(j)) for j in judged]
