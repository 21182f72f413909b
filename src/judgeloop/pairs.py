"""Contrasting pairs (Self-Taught Evaluator, step 2).

For each instruction x: y_w is the generator's answer to x. From (x, y_w) the
generator then writes a modified instruction x' (close to x, asking for
something different) in a tagged section, and y_l is its answer to x'. y_l is
fluent and on topic but answers the wrong question, so y_w beats y_l by
construction. Rows whose x' does not parse, or whose y_l is empty or equal to
y_w, stay in the table with a `gen_status` saying why and are not judged.
"""

from __future__ import annotations

import json
import logging
import re
import zlib
from typing import Any

import pyarrow as pa

from .backends import Backend, Request, Sampling
from .config import PairsConfig
from .parsing import MOD_CLOSE, MOD_OPEN, parse_tagged
from .schemas import to_table
from .templates import MODIFY_DEMOS, answer_messages, modify_messages

log = logging.getLogger(__name__)

ACTIVE = "split NOT IN ('unused', 'excluded')"


def request_seed(base: int, key: str) -> int:
    """A per-request seed derived from the config seed and a stable key."""
    return zlib.crc32(f"{base}:{key}".encode())


def build_pairs(prompts: list[dict[str, Any]], backend: Backend, cfg: PairsConfig) -> pa.Table:
    answer = Sampling(cfg.temperature, cfg.top_p, cfg.max_tokens, 1, cfg.seed)
    modify = Sampling(cfg.temperature, cfg.top_p, cfg.modify_max_tokens, 1, cfg.seed, stop=(MOD_CLOSE,))

    def req(key: str, messages, s: Sampling, prefill: str = "") -> Request:
        return Request(key, messages, Sampling(s.temperature, s.top_p, s.max_tokens, 1, request_seed(s.seed, key), s.stop), prefill)

    log.info("pairs: %d instructions -> y_w", len(prompts))
    w_out = backend.generate([req(p["prompt_id"] + ":w", answer_messages(p["instruction"]), answer) for p in prompts], desc="pairs: y_w")
    log.info("pairs: writing modified instructions x'")
    m_reqs = [
        req(p["prompt_id"] + ":x'", modify_messages(p["instruction"], w[0].text if cfg.modify_with_response else None), modify, prefill=MOD_OPEN + "\n")
        for p, w in zip(prompts, w_out)
    ]
    m_out = backend.generate(m_reqs, desc="pairs: x'")
    mods = [parse_tagged(m[0].text, MOD_OPEN, MOD_CLOSE, m[0].finish_reason, prefilled=True) for m in m_out]
    todo = [i for i, m in enumerate(mods) if m.status == "ok" and not same_text(m.content or "", prompts[i]["instruction"])]
    log.info("pairs: %d/%d modified instructions parsed -> y_l", len(todo), len(prompts))
    l_out = backend.generate([req(prompts[i]["prompt_id"] + ":l", answer_messages(mods[i].content), answer) for i in todo], desc="pairs: y_l")
    y_l = dict(zip(todo, l_out))

    sampling_json = json.dumps({"answer": answer.to_dict(), "modify": modify.to_dict()}, sort_keys=True)
    rows = []
    for i, p in enumerate(prompts):
        w, m, mod = w_out[i][0], m_out[i][0], mods[i]
        l = y_l[i][0] if i in y_l else None
        status = _status(p["instruction"], w.text, mod.status, mod.content, l.text if l else None)
        rows.append(
            {
                "pair_id": p["prompt_id"],
                "prompt_id": p["prompt_id"],
                "split": p["split"],
                "category": p["category"],
                "instruction": p["instruction"],
                "response_w": w.text.strip(),
                "modified_instruction": mod.content,
                "response_l": l.text.strip() if l else None,
                "gen_status": status,
                "generator": backend.model_name,
                "generator_hash": backend.model_hash,
                "sampling": sampling_json,
                "seed": cfg.seed,
                "n_tokens_w": w.n_tokens,
                "n_tokens_modify": m.n_tokens,
                "n_tokens_l": l.n_tokens if l else None,
                "finish_reason_w": w.finish_reason,
                "finish_reason_modify": m.finish_reason,
                "finish_reason_l": l.finish_reason if l else None,
                "raw_modify": m.text,
            }
        )
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["gen_status"]] = counts.get(r["gen_status"], 0) + 1
    log.info("pairs: gen_status counts %s", counts)
    return to_table("pairs", rows)


def same_text(a: str, b: str) -> bool:
    """Equal up to case, whitespace and punctuation ("Calculate 2^10." == "calculate 2^10")."""
    return _ALNUM.sub("", a.casefold()) == _ALNUM.sub("", b.casefold())


_ALNUM = re.compile(r"[\W_]+")
# A "modified instruction" that repeats a demonstration's instruction (Gemma 3 270M pretrained
# wrote the demos' "sum of a list" or "product" one for 91 of 123 instructions) gives a y_l
# off any topic of x: a pair any judge gets right, not the subtle negative the method needs.
_DEMO_TEXTS = tuple(t for x, _, x_mod in MODIFY_DEMOS for t in (x, x_mod))


def _status(x: str, y_w: str, mod_status: str, x_mod: str | None, y_l: str | None) -> str:
    if not y_w.strip():
        return "empty_w"
    if mod_status == "truncated":
        return "truncated"
    if mod_status == "empty":
        return "empty_instruction"
    if mod_status != "ok":
        return "unparsed"
    if same_text(x_mod or "", x):
        return "same_instruction"
    if any(same_text(x_mod or "", d) for d in _DEMO_TEXTS if not same_text(d, x)):
        return "copied_demo"
    if not (y_l or "").strip():
        return "empty_l"
    if same_text(y_l or "", y_w):
        return "same_as_w"
    return "ok"
