"""Judging a set in its benchmark's own way: RewardBench 2 (best of four, Ties ratings), JudgeBench, RM-Bench.

`evaluate_format` is what `judgeloop judge` and the evaluate stage call for
every format: pairwise formats go through `evaluation.evaluate_set`; the
benchmarks add their official numbers under `benchmark` (rules in
``benchmarks.py``).

RewardBench 2's best-of-four, two ways:

* ``all_at_once`` (the official protocol): one prompt shows the four
  completions, the chosen one at a position drawn from sha256(seed, id), and
  the judge names one with [[A]]..[[D]]. Only an answer the judge wrote
  counts (no forced fallback): none scores 0.25.
* ``knockout`` (judgeloop's alternative for a pairwise judge, reported as
  ``RewardBench 2 (pairwise knockout)``): the four completions in a seeded
  bracket; each match is judged in both orders with the pairwise prompt and
  the votes summed (an unparsed judgment is no vote); a net-zero match is
  decided by a draw seeded with (seed, match id). 1 if the chosen completion
  wins the bracket, else 0.

Ties completions are rated one at a time with the Likert prompt (rubric
`templates.TIES_CRITERIA`) on judgeloop's 1-5 scale (the official script
rates 1-10; the Ties score compares ratings and margin ratios, not their
scale); an unparsed rating is -1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .backends import Backend, Request, Sampling
from .config import BENCHMARK_FORMATS
from .benchmarks import (
    KNOCKOUT_RULE,
    RB2_RULE,
    TIES,
    UNPARSED_RATING,
    CandidateItem,
    best_of_n_score,
    judgebench_scores,
    net_votes,
    rewardbench2_scores,
    rmbench_pairs,
    rmbench_scores,
    ties_score,
)
from .evaluation import eval_row, eval_rows, evaluate_set
from .judging import Judged, PairwiseItem, judge_items, judgment_fields
from .likert import RubricItem, judge_likert
from .parsing import parse_choice
from .templates import TIES_CRITERIA, TIES_DESCRIPTIONS, best_of_n_messages

BEST_OF_N_METHODS = ("all_at_once", "knockout")
BENCHMARK_NAMES = {"judgebench": "JudgeBench", "rmbench": "RM-Bench", "all_at_once": "RewardBench 2",
                   "knockout": "RewardBench 2 (pairwise knockout)"}


def _greedy(max_tokens: int) -> Sampling:
    return Sampling(temperature=0.0, top_p=1.0, max_tokens=max_tokens, n=1, seed=0)


def _draw(seed: int, key: str, n: int) -> int:
    """A number in [0, n) from sha256(seed, key): stable across runs, processes and item order."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") % n


def candidates(item: CandidateItem) -> list[str]:
    """The chosen completion (index 0), then the rejected ones."""
    return [item.chosen[0], *item.rejected]


# --- all at once (official) --------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    item_id: str
    chosen_at: int  # the position the chosen completion was shown at
    picked: int | None  # the position the judge named (None: unparsed)
    text: str
    parse_status: str
    n_tokens: int
    finish_reason: str


def shown_order(item: CandidateItem, chosen_at: int) -> list[str]:
    """The candidates with the chosen one swapped into `chosen_at` (the official script's shuffle)."""
    shown = candidates(item)
    shown[0], shown[chosen_at] = shown[chosen_at], shown[0]
    return shown


def judge_all_at_once(items: Sequence[CandidateItem], backend: Backend, max_tokens: int, seed: int) -> list[Choice]:
    """One greedy judgment per item naming the best of its candidates, all shown at once."""
    positions = {it.item_id: _draw(seed, it.item_id, len(candidates(it))) for it in items}
    requests = [Request(f"bestof:{it.item_id}", best_of_n_messages(it.instruction, shown_order(it, positions[it.item_id])),
                        _greedy(max_tokens)) for it in items]
    out = []
    for it, comps in zip(items, backend.generate(requests, desc="best-of-n")):
        c = comps[0]
        letters = "".join(chr(ord("A") + k) for k in range(len(candidates(it))))
        v = parse_choice(c.text, letters, c.finish_reason)
        picked = letters.index(v.verdict) if v.verdict else None
        out.append(Choice(it.item_id, positions[it.item_id], picked, c.text, v.status, c.n_tokens, c.finish_reason))
    return out


def choice_fields(c: Choice) -> dict[str, Any]:
    """The eval columns of a best-of-N answer: order names where the chosen one was shown."""
    return {"order": f"chosen_at_{chr(ord('A') + c.chosen_at)}", "text": c.text,
            "verdict": None if c.picked is None else chr(ord("A") + c.picked), "parse_status": c.parse_status,
            "verdict_source": None if c.picked is None else "parsed", "p_a": None, "p_b": None, "prior_a": None,
            "n_tokens": c.n_tokens, "finish_reason": c.finish_reason}


# --- knockout (alternative) ---------------------------------------------------------------------------


def knockout(items: Sequence[CandidateItem], backend: Backend, max_tokens: int, seed: int,
             template: str) -> tuple[dict[str, int], list[tuple[str, Judged]], int]:
    """(item id -> index of the bracket's winner (0 = chosen), (item id, judgment) of every match judgment,
    matches decided by a draw)."""
    alive = {}
    for it in items:
        order = list(range(len(candidates(it))))
        order.sort(key=lambda k: hashlib.sha256(f"{seed}:{it.item_id}:{k}".encode()).digest())
        alive[it.item_id] = order
    by_id = {it.item_id: it for it in items}
    judged_all: list[tuple[str, Judged]] = []
    draws, rnd = 0, 0
    while any(len(a) > 1 for a in alive.values()):
        rnd += 1
        matches: dict[str, tuple[str, int, int]] = {}
        pairs = []
        for item_id, a in alive.items():
            for x, y in zip(a[0::2], a[1::2]):
                match_id = f"{item_id}|r{rnd}|{x}v{y}"
                matches[match_id] = (item_id, x, y)
                texts = candidates(by_id[item_id])
                pairs.append(PairwiseItem(match_id, by_id[item_id].instruction, texts[x], texts[y]))
        judged = judge_items(pairs, backend, _greedy(max_tokens), "none", seed_key=f"knockout:{rnd}", desc=f"knockout round {rnd}",
                             template=template)
        judged_all += [(matches[j.item_id][0], j) for j in judged]
        votes = net_votes(judged)  # + : the first of the two wins
        winners: dict[str, list[int]] = {item_id: [] for item_id in alive}
        for match_id, (item_id, x, y) in matches.items():
            v = votes.get(match_id, 0)
            if v == 0:
                draws += 1
                v = 1 if _draw(seed, match_id, 2) else -1
            winners[item_id].append(x if v > 0 else y)
        alive = {item_id: winners[item_id] + (a[-1:] if len(a) % 2 else []) for item_id, a in alive.items()}  # a bye
    return {item_id: a[0] for item_id, a in alive.items()}, judged_all, draws


# --- Ties ratings ------------------------------------------------------------------------------------


def ties_rubric_items(items: Sequence[CandidateItem]) -> list[RubricItem]:
    """One rubric item per Ties completion, id '<row id>#<k>' (k < len(chosen): a correct one; gold 5, else 1)."""
    return [
        RubricItem(f"{it.item_id}#{k}", it.instruction, text, None, TIES_CRITERIA, TIES_DESCRIPTIONS,
                   5 if k < len(it.chosen) else 1, "", TIES)
        for it in items for k, text in enumerate([*it.chosen, *it.rejected])
    ]


def rate_ties(items: Sequence[CandidateItem], backend: Backend, max_tokens: int) -> tuple[dict[str, Any], list[Any]]:
    """(row id -> (ratings of its correct, of its incorrect completions), the rating judgments); only ratings the
    judge wrote count, an unparsed one is `UNPARSED_RATING`."""
    judged = judge_likert(ties_rubric_items(items), backend, _greedy(max_tokens), "none", seed_key="ties", desc="ties ratings")
    rating = {j.item_id: float(j.score) if j.score_source == "parsed" and j.score is not None else UNPARSED_RATING for j in judged}
    out = {}
    for it in items:
        r = [rating[f"{it.item_id}#{k}"] for k in range(len(it.chosen) + len(it.rejected))]
        out[it.item_id] = (r[: len(it.chosen)], r[len(it.chosen):])
    return out, judged


def rating_fields(j: Any) -> dict[str, Any]:
    return {"order": "rating", "text": j.text, "verdict": None if j.score is None else str(j.score),
            "parse_status": j.parse_status, "verdict_source": j.score_source, "p_a": None, "p_b": None,
            "prior_a": None, "n_tokens": j.n_tokens, "finish_reason": j.finish_reason}


# --- RewardBench 2 -----------------------------------------------------------------------------------


def evaluate_rewardbench2(name: str, items: Sequence[CandidateItem], backend: Backend, *, max_tokens: int, seed: int,
                          method: str = "all_at_once", template: str = "standard") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(eval rows, summary) with the six sections and overall under `benchmark`."""
    judge = (backend.model_name, backend.model_hash)
    ties = [it for it in items if it.subset == TIES]
    rest = [it for it in items if it.subset != TIES]
    subsets = {it.item_id: it.subset for it in items}
    rows: list[dict[str, Any]] = []
    ties_result = None
    if ties:
        ratings, rated = rate_ties(ties, backend, max_tokens)
        ties_result = ties_score(ratings)
        rows += [eval_row(name, TIES, j.item_id, judge, None, rating_fields(j)) for j in rated]
    if method == "all_at_once":
        choices = judge_all_at_once(rest, backend, max_tokens, seed)
        scores = {c.item_id: best_of_n_score(c.picked, c.chosen_at) for c in choices}
        rows += [eval_row(name, subsets[c.item_id], c.item_id, judge, scores[c.item_id], choice_fields(c)) for c in choices]
        extra = {"parse_rate": sum(c.picked is not None for c in choices) / len(choices) if choices else None}
        rule = RB2_RULE
    else:
        winners, judged, draws = knockout(rest, backend, max_tokens, seed, template)
        scores = {item_id: float(w == 0) for item_id, w in winners.items()}
        rows += [eval_row(name, subsets[item_id], f"{j.item_id}:{j.order}", judge, None, judgment_fields(j)) for item_id, j in judged]
        extra = {"parse_rate": sum(j.verdict_source == "parsed" for _, j in judged) / len(judged) if judged else None,
                 "knockout_draws": draws}
        rule = KNOCKOUT_RULE
    bench = rewardbench2_scores({i: (subsets[i], s) for i, s in scores.items()}, ties_result, rule)
    summary = {"n_examples": len(items), **extra, "best_of_n": method, "scoring_rule": rule,
               "benchmark": {"name": BENCHMARK_NAMES[method], **bench}, "item_scores": dict(sorted(scores.items()))}
    return rows, summary


# --- every format ------------------------------------------------------------------------------------


def generations(fmt: str, items: Sequence[Any], orders_mode: str, best_of_n: str) -> int:
    """How many judgments a benchmark set takes (one sample each)."""
    per_pair = 1 if orders_mode == "random_seeded" else 2
    if fmt == "rmbench":
        return per_pair * sum(len(it.chosen) * len(it.rejected) for it in items)
    if fmt == "rewardbench2":
        ratings = sum(len(it.chosen) + len(it.rejected) for it in items if it.subset == TIES)
        rest = [it for it in items if it.subset != TIES]
        # a knockout of n candidates plays n - 1 matches, each in both orders
        return ratings + (len(rest) if best_of_n == "all_at_once" else sum(2 * (len(candidates(it)) - 1) for it in rest))
    return per_pair * len(items)


def check_samples(fmt: str, samples: int) -> None:
    """The benchmarks are scored on one greedy judgment per comparison."""
    if fmt in BENCHMARK_FORMATS and samples > 1:
        raise ValueError(f"format {fmt} is scored on one greedy judgment per comparison; samples must be 1, got {samples}")


def evaluate_format(name: str, fmt: str, items: Sequence[Any], subsets: dict[str, str], backend: Backend, *,
                    max_tokens: int, fallback: str, orders_mode: str = "both", order_seed: int = 0, samples: int = 1,
                    temperature: float = 0.7, template: str = "standard",
                    best_of_n: str = "all_at_once") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Judge one set in its format: (rows of the `eval` schema, summary).

    Pairwise formats: `evaluation.evaluate_set`. rewardbench2: the best-of-N
    method `best_of_n`. judgebench and rmbench: their pairs judged like any
    pairwise set (`orders_mode`, both by default as published), and the
    benchmark's numbers under `benchmark`. The benchmarks are scored on single
    greedy judgments: `samples` > 1 is refused for them."""
    check_samples(fmt, samples)
    if fmt == "rewardbench2":
        if best_of_n not in BEST_OF_N_METHODS:
            raise ValueError(f"best_of_n must be one of {BEST_OF_N_METHODS}, got {best_of_n!r}")
        return evaluate_rewardbench2(name, items, backend, max_tokens=max_tokens, seed=order_seed, method=best_of_n,
                                     template=template)
    pairs, pair_subsets, cells = list(items), subsets, {}
    if fmt == "rmbench":
        pairs, cells = rmbench_pairs(items)
        pair_subsets = {p: subsets[item] for p, (item, _, _) in cells.items()}
    judged, summary = evaluate_set(name, fmt, pairs, pair_subsets, backend, max_tokens=max_tokens, fallback=fallback,
                                   orders_mode=orders_mode, order_seed=order_seed, samples=samples, temperature=temperature,
                                   template=template)
    if fmt == "judgebench":
        summary["benchmark"] = {"name": BENCHMARK_NAMES[fmt], **judgebench_scores(judged, subsets)}
    elif fmt == "rmbench":
        summary["benchmark"] = {"name": BENCHMARK_NAMES[fmt], **rmbench_scores(judged, cells, subsets)}
    return eval_rows(name, judged, pair_subsets, backend.model_name, backend.model_hash), summary

