"""Rejection sampling: from sampled judgments to SFT and DPO sets (METHOD.md 1.3, 1.6).

Rules, applied in order, each counted in the funnel:
1. keep judgments whose verdict matches the construction label (`correct`);
2. optionally drop groups whose fraction of correct samples is below
   `min_correct_fraction` (unparsed samples count as not correct);
3. keep one correct judgment per pair (or per pair and order), a seeded draw;
4. balance "A wins" and "B wins" (`truncate`: cut the larger side to the
   smaller with a seeded draw; `none`: keep as is).

The work is columnar (polars/numpy over the narrow columns, pyarrow for the
texts), so a file of millions of judgments curates in seconds:
`curate_files` is what the curate stage runs (it reads only the texts of the
rows it keeps and writes the sets in row groups); `curate_sft` / `curate_dpo`
take and return lists of dicts and run the same code.

The seeded draws (stable across runs, machines and input row order):
- the judgments are ordered by `judgment_id` (ties keep the input order);
- SFT: a numpy Generator seeded with sha256(f"{seed}:{iteration}:sft") draws
  u = rng.random(n), then v = rng.random(n), one number per judgment in
  that order. Each kept group keeps its correct judgment with the smallest
  u; `truncate` keeps, of each side, the k judgments with the smallest v
  (k = the smaller side's size).
- DPO: a Generator seeded with sha256(f"{seed}:{iteration}:dpo"). The
  (correct, incorrect) combinations of every group that has both are ordered
  by (chosen judgment_id, rejected judgment_id); w = rng.random(#combinations)
  in that order; each group keeps its `pairs_per_input` combinations with the
  smallest w (a uniform draw without replacement). `truncate` then draws
  x = rng.random(#kept) in the same order and keeps, of each chosen-verdict
  side, the k combinations with the smallest x.
Ties on a key (practically impossible with float64) go to the earlier row.
Output rows are sorted by judgment_id (DPO: chosen, then rejected judgment_id).
"""

from __future__ import annotations

import hashlib
import logging
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .config import CurationConfig
from .io import ROW_GROUP_SIZE, atomic_path
from .parsing import canonical_verdict_line
from .schemas import DPO, SFT, check_table
from .templates import JUDGE_PROMPT, judge_messages

log = logging.getLogger(__name__)

# the judgment columns the selection needs (the text is read only for kept rows)
NARROW = ["judgment_id", "pair_id", "order", "verdict", "verdict_source", "parse_status", "correct"]
PAIR_COLUMNS = ["pair_id", "instruction", "response_w", "response_l"]
# the characters Python's str.rstrip() removes (str.isspace), for the columnar rstrip
PY_WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_VERDICT_HEAD, _VERDICT_TAIL = canonical_verdict_line("\0").split("\0")


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


def _rng(seed: int, iteration: str, what: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{iteration}:{what}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


# ---------------------------------------------------------------- selection (narrow columns)


def _prepare(narrow: pl.DataFrame) -> pl.DataFrame:
    """The narrow judgments with `pos` (input row) and `i` (rank by judgment_id)."""
    df = narrow.select(NARROW).with_row_index("pos")
    df = df.sort("judgment_id", maintain_order=True, nulls_last=False)
    return df.with_row_index("i")


def _keep_smallest(keys: np.ndarray, k: int) -> np.ndarray:
    """Positions (into keys) of the k smallest keys, earlier first on ties."""
    return np.sort(np.argsort(keys, kind="stable")[:k])


def _select_sft(df: pl.DataFrame, cfg: CurationConfig, iteration: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Rows of `df` (its `i`) kept for SFT, ascending, and the funnel."""
    n = df.height
    keys = ["pair_id"] if cfg.per == "pair" else ["pair_id", "order"]
    rng = _rng(cfg.seed, iteration, "sft")
    u, v = rng.random(n), rng.random(n)
    good = df["correct"].fill_null(False)
    funnel: dict[str, Any] = {"judgments": n}
    groups = df.with_columns(good=good).group_by(keys).agg(c=pl.col("good").sum(), size=pl.len())
    funnel["groups"] = groups.height
    funnel["unparsed_text"] = int(df["parse_status"].ne("ok").fill_null(True).sum())
    funnel["no_verdict"] = int(df["verdict"].is_null().sum())
    n_correct = int(good.sum())
    funnel["removed_incorrect_or_no_verdict"] = n - n_correct
    funnel["correct"] = n_correct
    frac = groups["c"].cast(pl.Float64) / groups["size"].cast(pl.Float64)
    funnel["groups_without_correct"] = int((frac == 0).sum())
    funnel["groups_below_min_correct_fraction"] = int(((frac > 0) & (frac < cfg.min_correct_fraction)).sum())
    kept_groups = groups.filter((frac >= cfg.min_correct_fraction) & (frac > 0)).select(keys)
    cand = df.select("i", *keys).with_columns(u=pl.Series(u)).filter(good)
    cand = cand.join(kept_groups, on=keys, how="semi", nulls_equal=True)
    chosen = np.sort(cand.group_by(keys).agg(pl.col("i").sort_by("u", "i").first())["i"].to_numpy())
    funnel["one_per_group"] = len(chosen)

    verdict = df["verdict"].to_numpy()[chosen] if len(chosen) else np.array([], dtype=object)
    sides = {s: chosen[verdict == s] for s in ("A", "B")}
    funnel["a_wins_before_balance"], funnel["b_wins_before_balance"] = len(sides["A"]), len(sides["B"])
    if cfg.balance == "truncate":
        k = min(len(sides["A"]), len(sides["B"]))
        if k == 0 and len(chosen):
            missing = "A" if not len(sides["A"]) else "B"
            present = "B" if missing == "A" else "A"
            funnel["empty_reason"] = (
                f"balancing removed everything: no kept judgment says '{missing} wins' "
                f"({len(sides[present])} say '{present} wins'); the judge is position-biased. "
                "Use curation.balance: none, more samples, or a higher judging temperature."
            )
        chosen = np.sort(np.concatenate([sides[s][_keep_smallest(v[sides[s]], k)] for s in ("A", "B")]))
    funnel["removed_by_balance"] = funnel["one_per_group"] - len(chosen)
    funnel["kept"] = len(chosen)
    pair_id = df["pair_id"]
    kept_pairs = pair_id.gather(chosen).n_unique() if len(chosen) else 0
    funnel["keep_rate_pairs"] = round(kept_pairs / max(1, pair_id.n_unique() if n else 0), 4)
    if not len(chosen) and "empty_reason" not in funnel:
        funnel["empty_reason"] = "no judgment picked the known winner" if n else "no judgments to curate"
    return chosen.astype(np.int64), funnel


def _select_dpo(df: pl.DataFrame, cfg: CurationConfig, iteration: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(chosen rows, rejected rows) of `df` (its `i`), ordered, and the funnel."""
    keys = ["pair_id", "order"]
    rng = _rng(cfg.seed, iteration, "dpo")
    funnel: dict[str, Any] = {"judgments": df.height}
    d = df.select("i", *keys, good=pl.col("correct").fill_null(False))
    groups = d.group_by(keys).agg(c=pl.col("good").sum(), size=pl.len())
    funnel["groups"] = groups.height
    all_correct = int((groups["c"] == groups["size"]).sum())
    none_correct = int((groups["c"] == 0).sum())
    stats = {"all_correct": all_correct, "none_correct": none_correct, "mixed": groups.height - all_correct - none_correct}
    funnel.update({f"groups_{k}": v for k, v in stats.items()})
    goods = d.filter(pl.col("good")).select(*keys, gi="i")
    bads = d.filter(~pl.col("good")).select(*keys, bi="i")
    combos = goods.join(bads, on=keys, nulls_equal=True).sort("gi", "bi")
    combos = combos.with_columns(w=pl.Series(rng.random(combos.height), dtype=pl.Float64))
    rank = pl.col("w").rank("ordinal").over(keys) if combos.height else pl.lit(1)
    picked = combos.filter(rank <= cfg.pairs_per_input).sort("gi", "bi")
    gi, bi = picked["gi"].to_numpy().astype(np.int64), picked["bi"].to_numpy().astype(np.int64)
    funnel["combinations"] = len(gi)
    verdict = df["verdict"].to_numpy()[gi] if len(gi) else np.array([], dtype=object)
    sides = {s: np.flatnonzero(verdict == s) for s in ("A", "B")}
    funnel["a_wins_before_balance"], funnel["b_wins_before_balance"] = len(sides["A"]), len(sides["B"])
    if cfg.dpo_balance_mode == "truncate":
        x = rng.random(len(gi))
        k = min(len(sides["A"]), len(sides["B"]))
        if k == 0 and len(gi):
            missing = "A" if not len(sides["A"]) else "B"
            funnel["empty_reason"] = f"balancing removed everything: no DPO pair has a chosen judgment saying '{missing} wins'"
        keep = np.sort(np.concatenate([sides[s][_keep_smallest(x[sides[s]], k)] for s in ("A", "B")]))
        gi, bi = gi[keep], bi[keep]
    funnel["kept"] = len(gi)
    if not len(gi) and "empty_reason" not in funnel:
        funnel["empty_reason"] = (
            "no pair and order has both a correct and an incorrect judgment" if df.height else "no judgments to curate"
        )
    return gi, bi, funnel


# ---------------------------------------------------------------- building the rows


def _template_parts() -> list[str]:
    """JUDGE_PROMPT as [literal, field, literal, field, ...] for columnar formatting."""
    parts: list[str] = []
    for literal, field, spec, conv in string.Formatter().parse(JUDGE_PROMPT):
        parts.append(literal)
        if field is not None:
            if spec or conv or field not in ("instruction", "response_a", "response_b"):
                raise ValueError(f"JUDGE_PROMPT field {{{field}}} cannot be filled column-wise")
            parts.append(field)
    return parts


_PARTS = _template_parts()
# the columnar prompt must be exactly what judge_messages sends
assert judge_messages("\x01", "\x02", "\x03")[0]["content"] == JUDGE_PROMPT.format(
    instruction="\x01", response_a="\x02", response_b="\x03")


class _Pairs:
    """The pairs' texts, looked up by pair_id (the last row wins on a duplicate id, like a dict)."""

    def __init__(self, table: pa.Table):
        table = table.select(PAIR_COLUMNS)
        ids = pl.from_arrow(table.select(["pair_id"])).with_row_index("row")
        self.index = ids.unique(subset="pair_id", keep="last", maintain_order=True)
        self.cols = {c: table.column(c) for c in PAIR_COLUMNS[1:]}

    def rows_of(self, pair_ids: pl.Series) -> np.ndarray:
        m = pl.DataFrame({"pair_id": pair_ids}).join(self.index, on="pair_id", how="left", maintain_order="left",
                                                      nulls_equal=True)
        if m["row"].null_count():
            missing = m.filter(pl.col("row").is_null())["pair_id"].head(5).to_list()
            raise ValueError(f"judged pairs missing from the pairs table: {missing}")
        return m["row"].to_numpy().astype(np.int64)

    def prompts(self, rows: np.ndarray, order: pa.Array) -> pa.Array:
        idx = pa.array(rows)
        w, l_ = self.cols["response_w"].take(idx), self.cols["response_l"].take(idx)
        wl = pc.fill_null(pc.equal(order, "wl"), False)
        fields = {"instruction": self.cols["instruction"].take(idx),
                  "response_a": pc.if_else(wl, w, l_), "response_b": pc.if_else(wl, l_, w)}
        args = [fields[p] if i % 2 else pa.scalar(p) for i, p in enumerate(_PARTS)]
        return _arr(pc.binary_join_element_wise(*args, ""))


def _arr(x: pa.Array | pa.ChunkedArray) -> pa.Array:
    return x.combine_chunks() if isinstance(x, pa.ChunkedArray) else x


def _completions(text: pa.Array, verdict: pa.Array, source: pa.Array) -> pa.Array:
    """training_completion column-wise: forced verdicts (with a verdict) get the canonical line."""
    forced = pc.and_(pc.fill_null(pc.equal(source, "forced"), False), pc.is_valid(verdict))
    canon = pc.binary_join_element_wise(pc.utf8_rtrim(text, characters=PY_WHITESPACE), "\n\n" + _VERDICT_HEAD,
                                        verdict, _VERDICT_TAIL, "")
    return _arr(pc.if_else(forced, canon, text))


def _col(df: pl.DataFrame, name: str, rows: np.ndarray) -> pa.Array:
    return df[name].gather(rows).to_arrow().cast(pa.string())


def _sft_batches(df: pl.DataFrame, rows: np.ndarray, texts: pa.Array, text_idx: np.ndarray, pairs: _Pairs,
                 iteration: str, batch: int) -> Iterator[pa.RecordBatch]:
    pair_rows = pairs.rows_of(df["pair_id"].gather(rows)) if len(rows) else np.array([], dtype=np.int64)
    for s in range(0, len(rows), batch):
        r = rows[s:s + batch]
        jid, order, verdict, source = (_col(df, c, r) for c in ("judgment_id", "order", "verdict", "verdict_source"))
        text = _arr(texts.take(pa.array(text_idx[s:s + batch])))
        yield pa.RecordBatch.from_arrays([
            pc.binary_join_element_wise(f"{iteration}:sft:", jid, ""), _col(df, "pair_id", r),
            pa.array([iteration] * len(r), pa.string()), order, jid, verdict, source,
            pairs.prompts(pair_rows[s:s + batch], order), _completions(text, verdict, source),
        ], schema=SFT)


def _dpo_batches(df: pl.DataFrame, gi: np.ndarray, bi: np.ndarray, texts: pa.Array, g_idx: np.ndarray,
                 b_idx: np.ndarray, pairs: _Pairs, iteration: str, batch: int) -> Iterator[pa.RecordBatch]:
    pair_rows = pairs.rows_of(df["pair_id"].gather(gi)) if len(gi) else np.array([], dtype=np.int64)
    for s in range(0, len(gi), batch):
        g, b = gi[s:s + batch], bi[s:s + batch]
        gid, bid, order = _col(df, "judgment_id", g), _col(df, "judgment_id", b), _col(df, "order", g)
        gv, bv = _col(df, "verdict", g), _col(df, "verdict", b)
        chosen = _completions(_arr(texts.take(pa.array(g_idx[s:s + batch]))), gv, _col(df, "verdict_source", g))
        rejected = _completions(_arr(texts.take(pa.array(b_idx[s:s + batch]))), bv, _col(df, "verdict_source", b))
        yield pa.RecordBatch.from_arrays([
            pc.binary_join_element_wise(f"{iteration}:dpo:", gid, "|", bid, ""), _col(df, "pair_id", g),
            pa.array([iteration] * len(g), pa.string()), order, pairs.prompts(pair_rows[s:s + batch], order),
            chosen, rejected, gid, bid, gv, bv,
            pc.if_else(pc.is_valid(bv), pa.scalar("wrong"), pa.scalar("unparsed")),
        ], schema=DPO)


def _gather_file_texts(path: str | Path, positions: np.ndarray) -> pa.ChunkedArray:
    """The `text` of the given (ascending, distinct) input rows, read one row group at a time."""
    f = pq.ParquetFile(path)
    parts, start = [], 0
    for g in range(f.num_row_groups):
        n = f.metadata.row_group(g).num_rows
        lo, hi = np.searchsorted(positions, [start, start + n])
        if hi > lo:
            col = f.read_row_group(g, columns=["text"]).column("text")
            parts.append(col.take(pa.array(positions[lo:hi] - start)))
        start += n
    return pa.chunked_array(parts, type=pa.string())  # chunked: the kept texts may pass 2 GB


def _curate(narrow: pl.DataFrame, text_of, pairs: _Pairs, cfg: CurationConfig, iteration: str, want: set[str],
            batch: int = ROW_GROUP_SIZE):
    """Select both sets, then fetch the kept rows' texts once; returns {kind: (funnel, batch iterator)}."""
    df = _prepare(narrow)
    out: dict[str, Any] = {}
    pos = df["pos"].to_numpy().astype(np.int64)
    sel: dict[str, Any] = {}
    if "sft" in want:
        sel["sft"] = _select_sft(df, cfg, iteration)
        log.info("curation %s: %s", iteration, sel["sft"][1])
    if "dpo" in want:
        sel["dpo"] = _select_dpo(df, cfg, iteration)
        log.info("dpo curation %s: %s", iteration, sel["dpo"][2])
    need = [pos[sel["sft"][0]]] if "sft" in sel else []
    if "dpo" in sel:
        need += [pos[sel["dpo"][0]], pos[sel["dpo"][1]]]
    needed = np.unique(np.concatenate(need)) if need else np.array([], dtype=np.int64)
    texts = text_of(needed)
    if "sft" in sel:
        rows, funnel = sel["sft"]
        out["sft"] = (funnel, _sft_batches(df, rows, texts, np.searchsorted(needed, pos[rows]), pairs, iteration, batch))
    if "dpo" in sel:
        gi, bi, funnel = sel["dpo"]
        out["dpo"] = (funnel, _dpo_batches(df, gi, bi, texts, np.searchsorted(needed, pos[gi]),
                                           np.searchsorted(needed, pos[bi]), pairs, iteration, batch))
    return out


def _write(batches: Iterator[pa.RecordBatch], schema: pa.Schema, dest: str | Path) -> int:
    n = 0
    with atomic_path(dest) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
            for b in batches:
                w.write_batch(b, row_group_size=ROW_GROUP_SIZE)
                n += b.num_rows
    return n


def curate_files(judgments_path: str | Path, pairs_path: str | Path, cfg: CurationConfig, iteration: str,
                 sft_path: str | Path, dpo_path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Curate a judgments Parquet file into the SFT and DPO Parquet files; return (sft funnel, dpo funnel).

    Reads the narrow judgment columns whole, the judgment texts of the kept
    rows only (one row group at a time), the pairs' prompt columns, and writes
    both sets in row groups, each file atomically. Same rules and draws as
    `curate_sft` / `curate_dpo`.
    """
    for path, kind in ((judgments_path, "judgments"), (pairs_path, "pairs")):
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: missing (has the stage that makes it run? try `dvc repro`)")
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"{path}: not a readable Parquet file ({e}); re-run the stage that writes it") from None
        if kind == "judgments":
            check_table(kind, schema.empty_table(), str(path))
        elif missing := [c for c in PAIR_COLUMNS if c not in schema.names]:
            raise ValueError(f"{path}: not a pairs table, missing columns {missing}")
    narrow = pl.from_arrow(pq.read_table(judgments_path, columns=NARROW))
    pairs = _Pairs(pq.read_table(pairs_path, columns=PAIR_COLUMNS))
    res = _curate(narrow, lambda p: _gather_file_texts(judgments_path, p), pairs, cfg, iteration, {"sft", "dpo"})
    _write(res["sft"][1], SFT, sft_path)
    _write(res["dpo"][1], DPO, dpo_path)
    return res["sft"][0], res["dpo"][0]


# ---------------------------------------------------------------- list-of-dict entry points


def _from_dicts(judgments: list[dict[str, Any]], pairs: dict[str, dict[str, Any]]):
    types = {"correct": pa.bool_()}
    narrow = pl.from_arrow(pa.table({c: pa.array([j[c] for j in judgments], types.get(c, pa.string())) for c in NARROW}))
    text = pa.array([j["text"] for j in judgments], pa.string())
    table = pa.table({"pair_id": pa.array(list(pairs), pa.string()),
                      **{c: pa.array([p[c] for p in pairs.values()], pa.string()) for c in PAIR_COLUMNS[1:]}})
    return narrow, (lambda positions: text.take(pa.array(positions, pa.int64()))), _Pairs(table)


def _rows(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> list[dict[str, Any]]:
    return pa.Table.from_batches(list(batches), schema=schema).to_pylist()


def curate_sft(
    judgments: list[dict[str, Any]], pairs: dict[str, dict[str, Any]], cfg: CurationConfig, iteration: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return (sft rows, funnel). `pairs` maps pair_id -> pair row (for the prompt text)."""
    narrow, text_of, p = _from_dicts(judgments, pairs)
    funnel, batches = _curate(narrow, text_of, p, cfg, iteration, {"sft"})["sft"]
    return _rows(batches, SFT), funnel


def curate_dpo(
    judgments: list[dict[str, Any]], pairs: dict[str, dict[str, Any]], cfg: CurationConfig, iteration: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """DPO pairs: chosen = a correct judgment, rejected = a wrong or unparsed one of the same pair and order.

    Per (pair, order) up to `pairs_per_input` distinct (correct, incorrect)
    combinations are drawn with a seeded RNG (see the module docstring); then
    "A wins"/"B wins" (the chosen verdict) are balanced when `dpo_balance`
    (default: `balance`) is `truncate`.
    """
    narrow, text_of, p = _from_dicts(judgments, pairs)
    funnel, batches = _curate(narrow, text_of, p, cfg, iteration, {"dpo"})["dpo"]
    return _rows(batches, DPO), funnel
