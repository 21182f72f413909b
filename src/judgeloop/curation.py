"""Rejection sampling: from sampled judgments to SFT and DPO sets (METHOD.md 1.3, 1.6).

Rules, applied in order, each counted in the funnel:
1. keep judgments whose verdict matches the construction label (`correct`);
2. optionally drop groups whose fraction of correct samples is below
   `min_correct_fraction` (unparsed samples count as not correct);
3. keep one correct judgment per pair (or per pair and order), a seeded draw;
4. balance "A wins" and "B wins" (`truncate`: cut the larger side to the
   smaller with a seeded draw; `none`: keep as is).
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from typing import Any

from .config import CurationConfig
from .parsing import canonical_verdict_line
from .templates import judge_messages

log = logging.getLogger(__name__)


class EmptyCurationError(RuntimeError):
    """Curation left nothing to train on; the message says which rule emptied it."""


def training_completion(text: str, verdict: str, verdict_source: str) -> str:
    """The judgment the next model learns to write.

    A forced verdict is not in the judge's text, so the canonical verdict line
    is appended: the next model learns the format from its own reasoning.
    """
    if verdict_source == "forced":
        return f"{text.rstrip()}\n\n{canonical_verdict_line(verdict)}"
    return text


def curate_sft(
    judgments: list[dict[str, Any]], pairs: dict[str, dict[str, Any]], cfg: CurationConfig, iteration: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return (sft rows, funnel). `pairs` maps pair_id -> pair row (for the prompt text)."""
    funnel: dict[str, Any] = {"judgments": len(judgments)}
    group_of = (lambda j: j["pair_id"]) if cfg.per == "pair" else (lambda j: f"{j['pair_id']}:{j['order']}")
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for j in judgments:
        groups[group_of(j)].append(j)
    funnel["groups"] = len(groups)
    funnel["unparsed_text"] = sum(j["parse_status"] != "ok" for j in judgments)
    funnel["no_verdict"] = sum(j["verdict"] is None for j in judgments)

    correct = [j for j in judgments if j["correct"] is True]
    funnel["removed_incorrect_or_no_verdict"] = len(judgments) - len(correct)
    funnel["correct"] = len(correct)

    frac = {g: sum(j["correct"] is True for j in js) / len(js) for g, js in groups.items()}
    kept_groups = {g for g, f in frac.items() if f >= cfg.min_correct_fraction and f > 0}
    funnel["groups_without_correct"] = sum(1 for f in frac.values() if f == 0)
    funnel["groups_below_min_correct_fraction"] = sum(1 for f in frac.values() if 0 < f < cfg.min_correct_fraction)

    rng = random.Random(f"{cfg.seed}:{iteration}")
    chosen = []
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for j in correct:
        if group_of(j) in kept_groups:
            by_group[group_of(j)].append(j)
    for g in sorted(by_group):
        cands = sorted(by_group[g], key=lambda j: j["judgment_id"])
        chosen.append(rng.choice(cands))
    funnel["one_per_group"] = len(chosen)

    sides = {v: [j for j in chosen if j["verdict"] == v] for v in ("A", "B")}
    funnel["a_wins_before_balance"], funnel["b_wins_before_balance"] = len(sides["A"]), len(sides["B"])
    if cfg.balance == "truncate":
        k = min(len(sides["A"]), len(sides["B"]))
        if k == 0 and chosen:
            missing = "A" if not sides["A"] else "B"
            present = "B" if missing == "A" else "A"
            funnel["empty_reason"] = (
                f"balancing removed everything: no kept judgment says '{missing} wins' "
                f"({len(sides[present])} say '{present} wins'); the judge is position-biased. "
                "Use curation.balance: none, more samples, or a higher judging temperature."
            )
        chosen = [j for v in ("A", "B") for j in sorted(rng.sample(sides[v], k), key=lambda j: j["judgment_id"])]
    funnel["removed_by_balance"] = funnel["one_per_group"] - len(chosen)
    funnel["kept"] = len(chosen)
    funnel["keep_rate_pairs"] = round(len({j["pair_id"] for j in chosen}) / max(1, len({j["pair_id"] for j in judgments})), 4)
    if not chosen and "empty_reason" not in funnel:
        funnel["empty_reason"] = "no judgment picked the known winner" if judgments else "no judgments to curate"

    rows = []
    for j in sorted(chosen, key=lambda j: j["judgment_id"]):
        rows.append(
            {
                "example_id": f"{iteration}:sft:{j['judgment_id']}",
                "pair_id": j["pair_id"],
                "iteration": iteration,
                "order": j["order"],
                "judgment_id": j["judgment_id"],
                "verdict": j["verdict"],
                "verdict_source": j["verdict_source"],
                "prompt": _shown_prompt(pairs[j["pair_id"]], j["order"]),
                "completion": training_completion(j["text"], j["verdict"], j["verdict_source"]),
            }
        )
    log.info("curation %s: %s", iteration, funnel)
    return rows, funnel


def _shown_prompt(p: dict[str, Any], order: str) -> str:
    a, b = (p["response_w"], p["response_l"]) if order == "wl" else (p["response_l"], p["response_w"])
    return judge_messages(p["instruction"], a, b)[0]["content"]


def _as_text(j: dict[str, Any]) -> str:
    """A judgment as a training target: forced verdicts get the canonical line."""
    if j["verdict"] is None:
        return j["text"]
    return training_completion(j["text"], j["verdict"], j["verdict_source"])


def curate_dpo(
    judgments: list[dict[str, Any]], pairs: dict[str, dict[str, Any]], cfg: CurationConfig, iteration: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """DPO pairs: chosen = a correct judgment, rejected = a wrong or unparsed one of the same pair and order.

    Per (pair, order) up to `pairs_per_input` distinct (correct, incorrect)
    combinations are drawn with a seeded RNG; then "A wins"/"B wins" (the
    chosen verdict) are balanced when `dpo_balance` (default: `balance`) is
    `truncate`.
    """
    funnel: dict[str, Any] = {"judgments": len(judgments)}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for j in judgments:
        groups[(j["pair_id"], j["order"])].append(j)
    funnel["groups"] = len(groups)
    rng = random.Random(f"{cfg.seed}:{iteration}:dpo")
    picked = []
    stats = {"all_correct": 0, "none_correct": 0, "mixed": 0}
    for key in sorted(groups):
        js = sorted(groups[key], key=lambda j: j["judgment_id"])
        good = [j for j in js if j["correct"] is True]
        bad = [j for j in js if j["correct"] is not True]  # wrong, or no verdict (unparsed / tie)
        if not good:
            stats["none_correct"] += 1
            continue
        if not bad:
            stats["all_correct"] += 1
            continue
        stats["mixed"] += 1
        combos = [(g, b) for g in good for b in bad]
        picked.extend(rng.sample(combos, min(cfg.pairs_per_input, len(combos))))
    funnel.update({f"groups_{k}": v for k, v in stats.items()})
    funnel["combinations"] = len(picked)
    sides = {v: [c for c in picked if c[0]["verdict"] == v] for v in ("A", "B")}
    funnel["a_wins_before_balance"], funnel["b_wins_before_balance"] = len(sides["A"]), len(sides["B"])
    if cfg.dpo_balance_mode == "truncate":
        k = min(len(sides["A"]), len(sides["B"]))
        if k == 0 and picked:
            missing = "A" if not sides["A"] else "B"
            funnel["empty_reason"] = f"balancing removed everything: no DPO pair has a chosen judgment saying '{missing} wins'"
        picked = [c for v in ("A", "B") for c in rng.sample(sides[v], k)]
    funnel["kept"] = len(picked)
    if not picked and "empty_reason" not in funnel:
        funnel["empty_reason"] = (
            "no pair and order has both a correct and an incorrect judgment" if judgments else "no judgments to curate"
        )
    rows = []
    for good, bad in sorted(picked, key=lambda c: (c[0]["judgment_id"], c[1]["judgment_id"])):
        rows.append(
            {
                "example_id": f"{iteration}:dpo:{good['judgment_id']}|{bad['judgment_id']}",
                "pair_id": good["pair_id"],
                "iteration": iteration,
                "order": good["order"],
                "prompt": _shown_prompt(pairs[good["pair_id"]], good["order"]),
                "chosen": _as_text(good),
                "rejected": _as_text(bad),
                "chosen_judgment_id": good["judgment_id"],
                "rejected_judgment_id": bad["judgment_id"],
                "chosen_verdict": good["verdict"],
                "rejected_verdict": bad["verdict"],
                "rejected_reason": "wrong" if bad["verdict"] is not None else "unparsed",
            }
        )
    log.info("dpo curation %s: %s", iteration, funnel)
    return rows, funnel
