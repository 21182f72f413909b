"""Self-Rationalization (Trivedi et al. 2024): Likert judging against a rubric.

The judge reads (instruction, response, rubric with descriptions for scores
1..5, optional reference answer) and writes a rationale ending in
`[RESULT] <1-5>`. Several judgments are sampled per item; DPO pairs are
built from the model's own judgments: chosen = the score closest to gold,
rejected = the farthest or an unparsed one. Ties among equally close
judgments are broken by a seeded draw or by a meta-judge (the model
comparing two rationales pairwise).

Item sources: the rubric set shipped with judgeloop, Prometheus
Feedback-Collection and BiGGen-Bench layouts (JSONL, Parquet or a `datasets`
id), and a synthetic option that scores the pairs stage's responses against
an instruction-following rubric (gold high for y_w, low for y_l: a weak,
synthetic gold).
"""

from __future__ import annotations

import hashlib

import logging
import random
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .backends import Backend, Request, Sampling
from .judging import FORCEABLE, forced_choice
from .loaders import InputError, id_field, int_field, read_jsonl, read_parquet_rows, text_field, unique_ids
from .pairs import request_seed
from .parsing import parse_score
from .pool import assign_split, split_u
from .templates import LIKERT_PROMPT, META_PROMPT

log = logging.getLogger(__name__)

# -- items --------------------------------------------------------------------


@dataclass(frozen=True)
class RubricItem:
    item_id: str
    instruction: str
    response: str
    reference_answer: str | None
    criteria: str
    descriptions: tuple[str, str, str, str, str]  # scores 1..5
    gold_score: int
    capability: str
    source: str


LAYOUTS: dict[str, dict[str, str]] = {
    # our field -> the layout's field ("a.b" = nested)
    "judgeloop": {
        "id": "id", "instruction": "instruction", "response": "response", "reference_answer": "reference_answer",
        "criteria": "criteria", "score": "gold_score", "capability": "capability", "rubric": "",
    },
    "prometheus": {  # Feedback-Collection
        "id": "", "instruction": "orig_instruction", "response": "orig_response", "reference_answer": "orig_reference_answer",
        "criteria": "orig_criteria", "score": "orig_score", "capability": "", "rubric": "orig_",
    },
    "biggen": {  # BiGGen-Bench with a response and a human score (results layout)
        "id": "id", "instruction": "input", "response": "response", "reference_answer": "reference_answer",
        "criteria": "score_rubric.criteria", "score": "human_score", "capability": "capability", "rubric": "score_rubric.",
    },
}


def _get(row: dict[str, Any], dotted: str) -> Any:
    cur: Any = row
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def rubric_rows(kind: str, path: str | None, hf_split: str = "train") -> tuple[str, list[dict[str, Any]]]:
    if kind == "builtin":
        p = Path(str(resources.files("judgeloop") / "data" / "rubrics.jsonl"))
        return "builtin:rubrics.jsonl", read_jsonl(p)
    if kind == "hf":
        import datasets

        try:
            return str(path), [dict(r) for r in datasets.load_dataset(path, split=hf_split)]
        except Exception as e:
            raise InputError(f"hf dataset {path!r} (split {hf_split!r}): {e}") from None
    p = Path(path or "")
    return str(p), read_parquet_rows(p) if kind == "parquet" else read_jsonl(p)


def parse_items(rows: list[dict[str, Any]], layout: str, where: str, name: str) -> list[RubricItem]:
    f = LAYOUTS[layout]
    if not rows:
        raise InputError(f"{where}: no rows")
    items, ids = [], []
    for i, row in enumerate(rows):
        here = f"{where}: row {i} ({layout} layout)"
        if not isinstance(row, dict):
            raise InputError(f"{here}: expected an object, got {type(row).__name__}")
        flat = {key: _get(row, f[key]) for key in ("instruction", "response", "criteria", "reference_answer", "score")}
        flat |= {key: _get(row, f[key]) for key in ("id", "capability") if f[key]}
        descs = []
        for k in range(1, 6):
            key = f"{f['rubric']}score{k}_description"
            descs.append(str(text_field({key: _get(row, key)}, key, here)).strip())

        def need(field: str) -> str:  # named in errors by the file's own (dotted) field name
            return str(text_field({f[field]: flat[field]}, f[field], here))

        score = int_field({f["score"]: flat["score"]}, f["score"], here, 1, 5)
        item_id = id_field({f["id"]: flat["id"]}, f["id"], here) if flat.get("id") is not None else str(i)
        ids.append(item_id)
        ref = text_field({f["reference_answer"]: flat["reference_answer"]}, f["reference_answer"], here, optional=True)
        cap = text_field({f["capability"]: flat.get("capability")}, f["capability"], here, optional=True) if f["capability"] else None
        items.append(
            RubricItem(
                item_id=f"{name}:{item_id}",
                instruction=need("instruction"),
                response=need("response"),
                reference_answer=ref if ref and ref.strip() else None,
                criteria=need("criteria"),
                descriptions=tuple(descs),  # type: ignore[arg-type]
                gold_score=score,
                capability=cap or "",
                source=name,
            )
        )
    unique_ids(ids, lambda i: f"row {i}", where, lambda i: not f["id"] or _get(rows[i], f["id"]) is None)
    return items


SYNTHETIC_CRITERIA = "Does the response answer exactly the instruction given, rather than a related but different request?"
SYNTHETIC_DESCRIPTIONS = (
    "The response addresses a different request; it does not answer the instruction.",
    "The response is on the topic but mostly answers a different question.",
    "The response partly answers the instruction but misses or changes a key requirement.",
    "The response answers the instruction with minor omissions or errors.",
    "The response answers exactly the instruction given, fully and correctly.",
)


def synthetic_items(pairs: list[dict[str, Any]], gold_w: int, gold_l: int) -> list[RubricItem]:
    """Weak, synthetic gold: y_w (the answer to x) high, y_l (the answer to x') low."""
    items = []
    for p in pairs:
        if p["gen_status"] != "ok":
            continue
        for tag, resp, gold in (("w", p["response_w"], gold_w), ("l", p["response_l"], gold_l)):
            items.append(
                RubricItem(f"synthetic:{p['pair_id']}:{tag}", p["instruction"], resp, None, SYNTHETIC_CRITERIA,
                           SYNTHETIC_DESCRIPTIONS, gold, p.get("category") or "", "synthetic")
            )
    return items


def source_items(lk: Any) -> list[RubricItem]:
    """The items of every `likert.sources` entry (each at most `limit`), ids prefixed by the source's name."""
    items = []
    for src in lk.sources:
        where, rows = rubric_rows(src.kind, src.path, src.hf_split)
        name = src.name or ("builtin" if src.kind == "builtin" else Path(src.path or "x").stem)
        items += parse_items(rows[: src.limit] if src.limit else rows, src.layout, where, name)
    return items


def split_items(items: list[RubricItem], seed: int, eval_fraction: float, fractions: dict[str, float]) -> dict[str, str]:
    return {it.item_id: assign_split(split_u(it.item_id, seed), eval_fraction, list(fractions.items())) for it in items}


# -- prompt (templates.LIKERT_PROMPT) and parsing (parsing.parse_score) ---------------------------------------------------------

FORCED_SCORE_CONTINUATION = "\n\n[RESULT] "
SCORES = ("1", "2", "3", "4", "5")


def likert_messages(item: RubricItem) -> tuple[dict[str, str], ...]:
    reference = f"\n[Reference answer (would score 5)]\n{item.reference_answer}\n" if item.reference_answer else ""
    d = item.descriptions
    text = LIKERT_PROMPT.format(
        ref_hint=", the reference answer" if item.reference_answer else "",
        instruction=item.instruction, response=item.response, reference=reference, criteria=item.criteria,
        d1=d[0], d2=d[1], d3=d[2], d4=d[3], d5=d[4],
    )
    return ({"role": "user", "content": text},)


def canonical_score_line(score: int) -> str:
    return f"[RESULT] {score}"


# -- judging ------------------------------------------------------------------------


@dataclass
class LikertJudged:
    item_id: str
    sample_idx: int
    seed: int
    text: str
    score: int | None
    parse_status: str
    score_source: str | None  # parsed | forced
    expected_score: float | None  # forced: sum of s * p(s) over 1..5
    n_tokens: int
    finish_reason: str


def judge_likert(items: list[RubricItem], backend: Backend, sampling: Sampling, fallback: str, seed_key: str, desc: str) -> list[LikertJudged]:
    """`sampling.n` judgments per item; forced fallback reads 1..5 from the next token."""
    reqs = []
    for it in items:
        key = f"{seed_key}:{it.item_id}"
        s = Sampling(sampling.temperature, sampling.top_p, sampling.max_tokens, sampling.n, request_seed(sampling.seed, key))
        reqs.append(Request(key, likert_messages(it), s))
    rows: list[LikertJudged] = []
    for it, req, comps in zip(items, reqs, backend.generate(reqs, desc=desc)):
        for c in comps:
            score, status = parse_score(c.text, c.finish_reason)
            rows.append(LikertJudged(it.item_id, c.sample_idx, req.sampling.seed, c.text, score, status,
                                     "parsed" if score else None, None, c.n_tokens, c.finish_reason))
    if fallback == "forced":
        todo = [r for r in rows if r.score is None]
        msgs = {r.request_id: r.messages for r in reqs}
        if todo:
            ctx = [(msgs[f"{seed_key}:{r.item_id}"], r.text.rstrip() + FORCED_SCORE_CONTINUATION) for r in todo]
            for r, lp in zip(todo, backend.choice_logprobs(ctx, list(SCORES))):
                picked = forced_choice(lp, sampling.temperature, f"{r.seed}:{r.sample_idx}")
                if picked is None:
                    continue
                choice, probs = picked
                r.score, r.score_source = int(choice), "forced"
                r.expected_score = round(sum(int(k) * v for k, v in probs.items()), 4)
    n_parsed = sum(r.score_source == "parsed" for r in rows)
    log.info("%s: %d judgments, %d parsed", desc, len(rows), n_parsed)
    return rows


# -- curation -----------------------------------------------------------------------


def training_text(text: str, score: int | None, source: str | None) -> str:
    if source == "forced" and score is not None:
        return f"{text.rstrip()}\n\n{canonical_score_line(score)}"
    return text


def curate_likert(
    judged: list[dict[str, Any]], items: dict[str, RubricItem], iteration: str, seed: int, pairs_per_input: int,
    tie_break: str = "random", meta_judge: Any = None, dpo_chosen: str = "parsed",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(dpo rows, sft rows, funnel). Distance = |score - gold|; unparsed is the farthest.

    With `dpo_chosen: parsed` a forced score counts as unparsed (never chosen,
    rejected as the judge wrote it); `parsed_or_forced` ranks it by its score."""
    rng = random.Random(f"{seed}:{iteration}:likert")
    by_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for j in judged:
        by_item[j["item_id"]].append(j)
    funnel: dict[str, Any] = {"judgments": len(judged), "items": len(by_item), "no_contrast": 0, "no_parsed": 0,
                              "ties_broken_random": 0, "ties_broken_meta_judge": 0}
    dpo, sft = [], []
    for item_id in sorted(by_item):
        js = sorted(by_item[item_id], key=lambda j: j["judgment_id"])
        def own(j: dict[str, Any]) -> bool:
            return j["score"] is not None and (dpo_chosen != "parsed" or j["score_source"] == "parsed")

        dist = {j["judgment_id"]: (abs(j["score"] - j["gold_score"]) if own(j) else 99) for j in js}
        best, worst = min(dist.values()), max(dist.values())
        if best == 99:
            funnel["no_parsed"] += 1
            continue
        if best == worst:
            funnel["no_contrast"] += 1
            continue
        cands = [j for j in js if dist[j["judgment_id"]] == best]
        losers = [j for j in js if dist[j["judgment_id"]] == worst]
        if len(cands) > 1 and tie_break == "meta_judge" and meta_judge is not None:
            chosen = meta_judge(items[item_id], cands)
            funnel["ties_broken_meta_judge"] += 1
        else:
            chosen = rng.choice(cands)
            funnel["ties_broken_random"] += len(cands) > 1
        it = items[item_id]
        prompt = likert_messages(it)[0]["content"]
        for rej in rng.sample(losers, min(pairs_per_input, len(losers))):
            dpo.append({
                "example_id": f"{iteration}:dpo:{chosen['judgment_id']}|{rej['judgment_id']}",
                "pair_id": item_id, "iteration": iteration, "order": "single", "prompt": prompt,
                "chosen": training_text(chosen["text"], chosen["score"], chosen["score_source"]),
                "rejected": training_text(rej["text"], rej["score"], rej["score_source"]) if own(rej) else rej["text"],
                "chosen_judgment_id": chosen["judgment_id"], "rejected_judgment_id": rej["judgment_id"],
                "chosen_verdict": str(chosen["score"]), "rejected_verdict": None if rej["score"] is None else str(rej["score"]),
                "rejected_reason": "farther_from_gold" if own(rej) else "unparsed",
            })
        if best == 0:  # exact matches also make an SFT set (for sft_then_dpo)
            sft.append({
                "example_id": f"{iteration}:sft:{chosen['judgment_id']}", "pair_id": item_id, "iteration": iteration,
                "order": "single", "judgment_id": chosen["judgment_id"], "verdict": str(chosen["score"]),
                "verdict_source": chosen["score_source"], "prompt": prompt,
                "completion": training_text(chosen["text"], chosen["score"], chosen["score_source"]),
            })
    funnel["dpo_pairs"], funnel["sft_exact"] = len(dpo), len(sft)
    funnel["kept"] = len(dpo)
    funnel["keep_rate_pairs"] = round(len({r["pair_id"] for r in dpo}) / max(1, len(by_item)), 4)
    if not dpo:
        funnel["empty_reason"] = "no item had judgments at different distances from the gold score"
    log.info("likert curation %s: %s", iteration, funnel)
    return dpo, sft, funnel


def make_meta_judge(backend: Backend, max_tokens: int = 64, seed: int = 0):
    """Pairwise tie-break: a knockout over the tied rationales, greedy with a forced verdict.

    Each comparison is judged in both orders; a candidate that wins both
    stays or takes over, and a split (the judge just picked a position) is
    settled by a draw seeded with (seed, both judgment ids)."""
    from .parsing import parse_verdict
    from .templates import FORCED_VERDICT_CONTINUATION

    def verdict(item: RubricItem, first: dict[str, Any], second: dict[str, Any]) -> str | None:
        msgs = ({"role": "user", "content": META_PROMPT.format(instruction=item.instruction, response=item.response,
                                                               criteria=item.criteria, a=first["text"], b=second["text"])},)
        rid = f"meta:{first['judgment_id']}|{second['judgment_id']}"
        out = backend.generate([Request(rid, msgs, Sampling(0.0, 1.0, max_tokens, 1, 0))])[0][0]
        v = parse_verdict(out.text, out.finish_reason)
        if v.verdict is None and v.status in FORCEABLE:
            lp = backend.choice_logprobs([(msgs, out.text.rstrip() + FORCED_VERDICT_CONTINUATION)], ["A", "B"])[0]
            return "A" if lp["A"] >= lp["B"] else "B"
        return v.verdict

    def pick(item: RubricItem, cands: list[dict[str, Any]]) -> dict[str, Any]:
        best = cands[0]
        for other in cands[1:]:
            votes_best = (verdict(item, best, other) == "A") + (verdict(item, other, best) == "B")
            if votes_best == 1:  # split: no preference beyond position
                draw = hashlib.sha256(f"{seed}:{best['judgment_id']}:{other['judgment_id']}".encode()).digest()[0]
                votes_best = 2 if draw % 2 else 0
            best = best if votes_best == 2 else other
        return best

    return pick


# -- evaluation -----------------------------------------------------------------------


def likert_metrics(pred: list[int | None], gold: list[int], statuses: list[str]) -> dict[str, Any]:
    """Correlations over items with a score; exact and within-1 over all (no score = miss)."""
    from scipy import stats

    n = len(gold)
    pairs = [(p, g) for p, g in zip(pred, gold) if p is not None]
    out: dict[str, Any] = {"n": n, "n_scored": len(pairs), "parse_rate": round(sum(s == "ok" for s in statuses) / n, 4) if n else None}
    out["exact"] = round(sum(1 for p, g in zip(pred, gold) if p == g) / n, 4) if n else None
    out["within_1"] = round(sum(1 for p, g in zip(pred, gold) if p is not None and abs(p - g) <= 1) / n, 4) if n else None
    xs, ys = [p for p, _ in pairs], [g for _, g in pairs]
    if len(pairs) >= 2 and len(set(xs)) > 1 and len(set(ys)) > 1:
        out["pearson"] = round(float(stats.pearsonr(xs, ys).statistic), 4)
        out["spearman"] = round(float(stats.spearmanr(xs, ys).statistic), 4)
        out["kendall_tau"] = round(float(stats.kendalltau(xs, ys).statistic), 4)
    else:  # undefined when either side is constant
        out["pearson"] = out["spearman"] = out["kendall_tau"] = None
    return out
