"""Pairwise judging: prompts in both orders, strict verdicts, the forced fallback.

Used twice: the `judge` stage samples N judgments per pair and order from the
previous iteration's model (rejection-sampling material), and `evaluate`
judges held-out and human-labelled pairs greedily.

Forced fallback (`verdict_fallback: forced`): when the judge's own text has no
parseable verdict, judgeloop appends a fixed continuation ("Final verdict:
[[") and reads A or B from the model's next-token distribution restricted to
those two tokens -- sampled at the judging temperature for training data,
argmax for greedy evaluation. Such rows say `verdict_source = forced`, and
their `parse_status` still records that the text itself did not parse.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .backends import Backend, Request, Sampling
from .pairs import request_seed
from .parsing import parse_verdict
from .templates import FORCED_VERDICT_CONTINUATION, judge_messages

log = logging.getLogger(__name__)

ORDERS = ("wl", "lw")  # wl: the better response is shown as A


@dataclass(frozen=True)
class PairwiseItem:
    """One comparison with a known winner."""

    item_id: str
    instruction: str
    better: str
    worse: str


@dataclass
class Judged:
    item_id: str
    order: str
    sample_idx: int
    seed: int
    text: str
    verdict: str | None
    parse_status: str
    verdict_source: str | None
    p_a: float | None
    p_b: float | None
    correct: bool | None
    n_tokens: int
    finish_reason: str
    len_a: int
    len_b: int
    prior_a: float | None = None  # the prior P(A) a calibrated forced verdict was divided by (forced_calibration)


def judgment_fields(j: Judged) -> dict:
    """The columns a judgment row shares between the judgments and eval datasets."""
    return {
        "order": j.order, "text": j.text, "verdict": j.verdict, "parse_status": j.parse_status,
        "verdict_source": j.verdict_source, "p_a": j.p_a, "p_b": j.p_b, "prior_a": j.prior_a, "n_tokens": j.n_tokens,
        "finish_reason": j.finish_reason,
    }


def shown(item: PairwiseItem, order: str) -> tuple[str, str]:
    return (item.better, item.worse) if order == "wl" else (item.worse, item.better)


def winner(order: str) -> str:
    """The verdict that picks the better response in this order."""
    return "A" if order == "wl" else "B"


def choice_probs(logprobs: dict[str, float], temperature: float = 1.0) -> dict[str, float]:
    """Next-token probabilities renormalised over the choices, at a temperature."""
    t = max(temperature, 1e-6)
    m = max(logprobs.values())
    w = {k: math.exp((v - m) / t) for k, v in logprobs.items()}
    z = sum(w.values())
    return {k: v / z for k, v in w.items()}


# parse statuses a forced verdict may replace: the judge wrote no verdict at all
FORCEABLE = ("none", "truncated")


def forced_choice(logprobs: dict[str, float], temperature: float, rng_key: str) -> tuple[str, dict[str, float]] | None:
    """The forced fallback's pick among single-token choices (verdicts or scores).

    Sampled at `temperature` with an RNG seeded by `rng_key`; argmax (first
    choice on a tie) when greedy. Returns (choice, probabilities at T=1), or
    None when no choice is in the engine's top-k: no verdict, never a guess.
    """
    if max(logprobs.values()) == float("-inf"):
        return None
    probs = choice_probs(logprobs)
    if temperature > 0:
        w = choice_probs(logprobs, temperature)
        return random.Random(rng_key).choices(list(w), weights=list(w.values()))[0], probs
    return max(probs, key=probs.get), probs


def judge_requests(
    items: Sequence[PairwiseItem],
    sampling: Sampling,
    seed_key: str,
    orders: Mapping[str, Sequence[str]] | None = None,
    template: str = "standard",
) -> tuple[list[Request], list[tuple[PairwiseItem, str, int, int]]]:
    """One request per item and order (`sampling.n` samples each), seeded per request id."""
    requests, meta = [], []
    for item in items:
        for order in orders[item.item_id] if orders is not None else ORDERS:
            a, b = shown(item, order)
            key = f"{seed_key}:{item.item_id}:{order}"
            s = Sampling(sampling.temperature, sampling.top_p, sampling.max_tokens, sampling.n, request_seed(sampling.seed, key))
            requests.append(Request(key, judge_messages(item.instruction, a, b, template), s))
            meta.append((item, order, len(a), len(b)))
    return requests, meta


# Content-free stand-ins for the instruction and both responses (Zhao et al. 2021 average several)
CONTENT_FREE = ("N/A", "", "[MASK]")


def content_free_prior(backend: Backend, template: str = "standard") -> float:
    """The judge's P(A) among {A, B} for a forced verdict on content-free prompts, averaged over `CONTENT_FREE`."""
    contexts = [(judge_messages(x, x, x, template), FORCED_VERDICT_CONTINUATION) for x in CONTENT_FREE]
    probs = [choice_probs(lp)["A"] for lp in backend.choice_logprobs(contexts, ["A", "B"])]
    return sum(probs) / len(probs)


def prior_a(calibration: str, backend: Backend, template: str, logprobs: list[dict[str, float]]) -> float | None:
    """The P(A) forced verdicts are divided by (None: uncalibrated); see JudgingConfig.forced_calibration."""
    if calibration == "content_free":
        return content_free_prior(backend, template)
    if calibration == "batch":
        probs = [choice_probs(lp)["A"] for lp in logprobs if max(lp.values()) > float("-inf")]
        return min(max(sum(probs) / len(probs), 1e-6), 1 - 1e-6) if probs else None
    return None


def calibrated(logprobs: dict[str, float], prior_a: float) -> dict[str, float]:
    """Log-probabilities of A and B divided by the prior (contextual calibration); renormalised later."""
    return {"A": logprobs["A"] - math.log(prior_a), "B": logprobs["B"] - math.log(1 - prior_a)}


def judge_items(
    items: Sequence[PairwiseItem],
    backend: Backend,
    sampling: Sampling,
    fallback: str,
    seed_key: str,
    desc: str = "judge",
    orders: Mapping[str, Sequence[str]] | None = None,
    calibration: str = "none",
    template: str = "standard",
) -> list[Judged]:
    """Judge every item in both orders (or those in `orders[item_id]`), `sampling.n` samples each.

    Greedy when `sampling.temperature == 0` (the forced fallback then takes
    the argmax); otherwise sampled, with the forced choice drawn at the same
    temperature from an RNG seeded per judgment. With `calibration`
    ("content_free" or "batch", `prior_a`) the forced choice is drawn from the
    probabilities divided by the judge's estimated prior, recorded in each
    row's `prior_a`; `p_a` and `p_b` stay the judge's own.
    """
    requests, meta = judge_requests(items, sampling, seed_key, orders, template)
    outputs = backend.generate(requests, desc=desc)
    rows: list[Judged] = []
    for req, (item, order, la, lb), comps in zip(requests, meta, outputs):
        for c in comps:
            v = parse_verdict(c.text, c.finish_reason)
            rows.append(
                Judged(
                    item.item_id, order, c.sample_idx, req.sampling.seed, c.text, v.verdict, v.status,
                    "parsed" if v.verdict else None, None, None, None, c.n_tokens, c.finish_reason, la, lb,
                )
            )
    by_key = {r.request_id: r for r in requests}
    if fallback == "forced":
        # never for a text with both markers: it took a side twice, and its text could not be trained on
        todo = [r for r in rows if r.verdict is None and r.parse_status in FORCEABLE]
        if todo:
            log.info("%s: forcing a verdict for %d/%d judgments without a parseable one", desc, len(todo), len(rows))
            contexts = [
                (by_key[f"{seed_key}:{r.item_id}:{r.order}"].messages, r.text.rstrip() + FORCED_VERDICT_CONTINUATION)
                for r in todo
            ]
            logprobs = backend.choice_logprobs(contexts, ["A", "B"])
            prior = prior_a(calibration, backend, template, logprobs)
            if prior is not None:
                log.info("%s: forced verdicts calibrated by the %s prior P(A) = %.3f", desc, calibration, prior)
            for r, lp in zip(todo, logprobs):  # an all -inf row stays all -inf: no verdict either way
                picked = forced_choice(calibrated(lp, prior) if prior is not None else lp,
                                       sampling.temperature, f"{r.seed}:{r.sample_idx}")
                if picked is None:
                    continue
                r.verdict = picked[0]
                probs = choice_probs(lp)
                r.p_a, r.p_b, r.prior_a = probs["A"], probs["B"], prior
                r.verdict_source = "forced"
    for r in rows:
        r.correct = None if r.verdict is None else r.verdict == winner(r.order)
    n_parsed = sum(r.verdict_source == "parsed" for r in rows)
    log.info("%s: %d judgments, %d parsed (%.0f%%)", desc, len(rows), n_parsed, 100 * n_parsed / max(1, len(rows)))
    return rows
