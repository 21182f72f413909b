"""The instruction pool: ingest, normalise, de-duplicate, categorise, split.

Splits come from a hash of (split seed, prompt id) mapped to a number u in
[0, 1): u < eval_fraction is the held-out eval split, and each iteration owns
the next range, as wide as its `iteration_fractions` entry, in params order. A prompt's u never
depends on other prompts, so adding prompts or appending an iteration never
moves a prompt that was already assigned.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from typing import Any

import pyarrow as pa

from .backends import Backend, Request, Sampling
from .config import Params
from .loaders import InputError, load_source
from .parsing import parse_category
from .schemas import to_table
from .templates import CATEGORY_PROMPT

log = logging.getLogger(__name__)

_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Unicode NFC, unified newlines, no trailing spaces; inner layout (code) kept."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def dedupe_key(text: str) -> str:
    return _WS.sub(" ", text.casefold()).strip()


def text_id(text: str) -> str:
    return "h-" + hashlib.sha256(dedupe_key(text).encode()).hexdigest()[:12]


def split_u(prompt_id: str, seed: int) -> float:
    h = hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def assign_split(u: float, eval_fraction: float, iterations: list[tuple[str, float]]) -> str:
    if u < eval_fraction:
        return "eval"
    lo = eval_fraction
    for name, frac in iterations:
        if lo <= u < lo + frac:
            return name
        lo += frac
    return "unused"


def categorise(records: list[dict[str, Any]], backend: Backend, params: Params) -> None:
    """Label records lacking a category with the LLM (greedy); status kept per row."""
    cfg = params.prompts.categorize
    todo = [r for r in records if r["category"] is None]
    sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=cfg.max_tokens, n=1, seed=cfg.seed)
    reqs = [
        Request(
            r["prompt_id"],
            ({"role": "user", "content": CATEGORY_PROMPT.format(labels=", ".join(cfg.labels), instruction=r["instruction"])},),
            sampling,
        )
        for r in todo
    ]
    for r, comps in zip(todo, backend.generate(reqs, desc="categorise")):
        label = parse_category(comps[0].text, cfg.labels)
        r["category"] = label
        r["category_source"] = "llm"
        r["category_parse_status"] = "ok" if label else "unparsed"


def build_prompts(params: Params, backend: Backend | None = None) -> pa.Table:
    pc = params.prompts
    records: list[dict[str, Any]] = []
    by_key: dict[str, str] = {}
    ids: dict[str, str] = {}
    dropped = {"duplicate_text": 0, "too_short": 0, "too_long": 0}
    for src in pc.sources:
        for rec in load_source(src):
            text = normalise(rec["instruction"])
            if len(text) < pc.min_chars:
                dropped["too_short"] += 1
                continue
            if len(text) > pc.max_chars:
                dropped["too_long"] += 1
                if dropped["too_long"] <= 5:  # the first few by name, the rest in the count below
                    log.warning(
                        "%s: row %d: instruction of %d characters dropped (prompts.max_chars = %d)",
                        rec["source"], rec["source_row"], len(text), pc.max_chars,
                    )
                continue
            key = dedupe_key(text)
            if key in by_key:
                dropped["duplicate_text"] += 1
                continue
            pid = rec["id"] or text_id(text)
            if pid in ids:
                raise InputError(
                    f"{rec['source']}: row {rec['source_row']}: prompt id {pid!r} also used by source {ids[pid]!r}; "
                    "ids must be unique across sources (set id_column: null on one source to derive ids from text)"
                )
            ids[pid] = rec["source"]
            by_key[key] = pid
            given = rec["category"] is not None
            records.append(
                {
                    "prompt_id": pid,
                    "instruction": text,
                    "source": rec["source"],
                    "source_row": rec["source_row"],
                    "category": rec["category"],
                    "category_source": "given" if given else "none",
                    "category_parse_status": "ok" if given else "skipped",
                }
            )
    log.info("prompts: %d kept, dropped %s", len(records), dropped)
    if not records:
        raise InputError(
            f"prompts: no instruction left after normalising and de-duplicating (dropped: {dropped}; "
            f"prompts.min_chars = {pc.min_chars}, prompts.max_chars = {pc.max_chars})"
        )
    if pc.categorize.enabled:
        if backend is None:
            raise ValueError("prompts.categorize.enabled needs a generation backend")
        categorise(records, backend, params)
    iters = list(pc.split.iteration_fractions.items())
    keep = {c.casefold() for c in pc.categories}
    for r in records:
        r["split_u"] = split_u(r["prompt_id"], pc.split.seed)
        r["split_seed"] = pc.split.seed
        if keep and (r["category"] or "").casefold() not in keep:
            r["split"] = "excluded"
        else:
            r["split"] = assign_split(r["split_u"], pc.split.eval_fraction, iters)
    records.sort(key=lambda r: r["prompt_id"])
    return to_table("prompts", records)
