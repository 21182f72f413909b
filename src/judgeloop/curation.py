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
rows it keeps, through rowstore.py, and writes the sets in row groups); `curate_sft` / `curate_dpo`
take and return lists of dicts and run the same code.

The seeded draws (stable across runs, machines and input row order):
- the judgments are ordered by `judgment_id` (ties keep the input order);
- SFT: a numpy Generator seeded with sha256(f"{seed}:{iteration}:sft") draws
  u = rng.random(n), then v = rng.random(n), one number per judgment in
  that order. Each kept group keeps its correct judgment with the smallest
  u; `truncate` keeps, of each side, the k judgments with the smallest v
  (k = the smaller side's size).
- DPO: a Generator seeded with sha256(f"{seed}:{iteration}:dpo"). Correct
  means a right verdict the judge wrote itself (with `dpo_chosen: parsed`;
  a forced verdict then counts as unparsed, a negative). The
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

import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .config import CurationConfig
from .io import atomic_path
from .parsing import canonical_verdict_line
from .rowstore import PairTexts, Rows, Slab, completions, names_the_file, whole
from .schemas import DPO, SFT, check_table

log = logging.getLogger(__name__)

# the judgment columns the selection needs (the text is read only for kept rows)
NARROW = ["judgment_id", "pair_id", "order", "verdict", "verdict_source", "parse_status", "correct"]
PAIR_COLUMNS = ["pair_id", "instruction", "response_w", "response_l"]


def training_completion(text: str, verdict: str, verdict_source: str, forced_text: str = "keep") -> str:
    """The judgment the next model learns to write.

    A forced verdict is not in the judge's text, so the canonical verdict line
    is appended: the next model learns the format from its own reasoning.
    `forced_text: drop` trains the verdict line alone instead (`curation.forced_text`):
    for a seed whose text does not judge, so that the verdict is learnt from the
    prompt and not from unrelated words before it.
    """
    if verdict_source == "forced":
        line = canonical_verdict_line(verdict)
        return line if forced_text == "drop" else f"{text.rstrip()}\n\n{line}"
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
    funnel["pairs_missing_an_order"] = 0
    if cfg.per == "both_orders":  # a pair whose two orders both have a kept group
        both = kept_groups.group_by("pair_id").agg(pl.len()).filter(pl.col("len") == 2).select("pair_id")
        funnel["pairs_missing_an_order"] = kept_groups["pair_id"].n_unique() - both.height
        kept_groups = kept_groups.join(both, on="pair_id", how="semi", nulls_equal=True)
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
    good = pl.col("correct").fill_null(False)
    if cfg.dpo_chosen == "parsed":  # a forced verdict is not the judge's own: never chosen, may be rejected
        funnel["correct_but_forced"] = int(df.select((good & pl.col("verdict_source").ne("parsed").fill_null(True)).sum()).item())
        good = good & pl.col("verdict_source").eq("parsed").fill_null(False)
    d = df.select("i", *keys, good=good)
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
        if funnel.get("correct_but_forced"):
            funnel["empty_reason"] += (f" ({funnel['correct_but_forced']} right verdicts were forced, not written by the "
                                       "judge; curation.dpo_chosen: parsed_or_forced takes them)")
    return gi, bi, funnel


# ---------------------------------------------------------------- building the rows


def _col(df: pl.DataFrame, name: str, rows: np.ndarray) -> pa.Array:
    return df[name].gather(rows).to_arrow().cast(pa.string())


SLAB_BYTES = 256 << 20  # judgment text fetched per slab of output rows (bounds memory on large inputs)


def _slabs(n: int, texts: Rows, per_row: int, batch: int) -> Iterator[tuple[int, int]]:
    size = max(batch, int(SLAB_BYTES // max(1.0, texts.row_bytes * per_row)) // batch * batch)
    for s in range(0, n, size):
        yield s, min(n, s + size)


def _sft_batches(df: pl.DataFrame, rows: np.ndarray, texts: Rows, pairs: PairTexts,
                 iteration: str, batch: int, forced_text: str) -> Iterator[pa.RecordBatch]:
    pos = df["pos"].to_numpy().astype(np.int64)
    pair_pos = pairs.rows_of(df["pair_id"].gather(rows)) if len(rows) else np.array([], dtype=np.int64)
    for a, z in _slabs(len(rows), texts, 1, batch):
        tslab, pslab = Slab(texts, pos[rows[a:z]], "sft"), Slab(pairs.rows, pair_pos[a:z], "sft")
        for s in range(a, z, batch):
            r = rows[s:min(z, s + batch)]
            jid, order, verdict, source = (_col(df, c, r) for c in ("judgment_id", "order", "verdict", "verdict_source"))
            yield pa.RecordBatch.from_arrays([
                pc.binary_join_element_wise(f"{iteration}:sft:", jid, ""), _col(df, "pair_id", r),
                pa.array([iteration] * len(r), pa.string()), order, jid, verdict, source,
                pairs.prompts(pslab, pair_pos[s:s + len(r)], order),
                completions(tslab.column("text", pos[r]), verdict, source, forced_text),
            ], schema=SFT)


def _dpo_batches(df: pl.DataFrame, gi: np.ndarray, bi: np.ndarray, texts: Rows, pairs: PairTexts,
                 iteration: str, batch: int, forced_text: str) -> Iterator[pa.RecordBatch]:
    pos = df["pos"].to_numpy().astype(np.int64)
    pair_pos = pairs.rows_of(df["pair_id"].gather(gi)) if len(gi) else np.array([], dtype=np.int64)
    for a, z in _slabs(len(gi), texts, 2, batch):
        tslab = Slab(texts, np.concatenate([pos[gi[a:z]], pos[bi[a:z]]]), "dpo")
        pslab = Slab(pairs.rows, pair_pos[a:z], "dpo")
        for s in range(a, z, batch):
            g, b = gi[s:min(z, s + batch)], bi[s:min(z, s + batch)]
            gid, bid, order = _col(df, "judgment_id", g), _col(df, "judgment_id", b), _col(df, "order", g)
            gv, bv = _col(df, "verdict", g), _col(df, "verdict", b)
            chosen = completions(tslab.column("text", pos[g]), gv, _col(df, "verdict_source", g), forced_text)
            # the rejected side is the judge's own text: an unparsed one is a negative as written
            b_parsed = pc.fill_null(pc.equal(_col(df, "verdict_source", b), "parsed"), False)
            rejected = whole(tslab.column("text", pos[b]))
            yield pa.RecordBatch.from_arrays([
                pc.binary_join_element_wise(f"{iteration}:dpo:", gid, "|", bid, ""), _col(df, "pair_id", g),
                pa.array([iteration] * len(g), pa.string()), order, pairs.prompts(pslab, pair_pos[s:s + len(g)], order),
                chosen, rejected, gid, bid, gv, bv,
                pc.if_else(b_parsed, pa.scalar("wrong"), pa.scalar("unparsed")),
            ], schema=DPO)


# output rows per record batch (and Parquet row group): ~100 MB of prompt and texts each
OUT_BATCH = 32 * 1024


def _curate(narrow: pl.DataFrame, texts: Rows, pairs: PairTexts, cfg: CurationConfig, iteration: str, want: set[str],
            batch: int | None = None):
    """Select the sets; returns {kind: (funnel, batch iterator)} (texts are fetched as the batches are built)."""
    df = _prepare(narrow)
    del narrow
    batch = batch or OUT_BATCH
    out: dict[str, Any] = {}
    if "sft" in want:
        rows, funnel = _select_sft(df, cfg, iteration)
        log.info("curation %s: %s", iteration, funnel)
        out["sft"] = (funnel, _sft_batches(df, rows, texts, pairs, iteration, batch, cfg.forced_text))
    if "dpo" in want:
        gi, bi, funnel = _select_dpo(df, cfg, iteration)
        log.info("dpo curation %s: %s", iteration, funnel)
        out["dpo"] = (funnel, _dpo_batches(df, gi, bi, texts, pairs, iteration, batch, cfg.forced_text))
    return out


def _write(batches: Iterator[pa.RecordBatch], schema: pa.Schema, tmp: Path, stop: threading.Event) -> int:
    n = 0
    with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
        for b in batches:
            if stop.is_set():  # the other set failed: nothing will be kept
                break
            w.write_batch(b, row_group_size=OUT_BATCH)
            n += b.num_rows
    return n


def curate_files(judgments_path: str | Path, pairs_path: str | Path, cfg: CurationConfig, iteration: str,
                 sft_path: str | Path, dpo_path: str | Path, template: str = "standard") -> tuple[dict[str, Any], dict[str, Any]]:
    """Curate a judgments Parquet file into the SFT and DPO Parquet files; return (sft funnel, dpo funnel).

    Reads the narrow judgment columns whole; then builds the rows in slabs of
    ~256 MB of judgment text, reading for each slab only the row groups of
    the judgments and pairs files that hold its rows (a judgments file in
    about judgment_id order, as the judge stage writes it, is read about once
    for both sets: the two builders share each decoded row group, see
    `RowGroups`; any order works, with more reading), and writes both sets in
    row groups of 32k rows, on two threads, each file atomically. Memory stays
    bounded by the narrow columns plus a slab per set and a few shared row
    groups. Same rules and draws as `curate_sft` / `curate_dpo`.
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
    with names_the_file(pairs_path):
        pairs = PairTexts(pq.read_table(pairs_path, columns=["pair_id"]),
                       Rows(PAIR_COLUMNS[1:], path=pairs_path, consumers=("sft", "dpo")), template)
    texts = Rows(["text"], path=judgments_path, consumers=("sft", "dpo"))
    with names_the_file(judgments_path):
        # no local reference to the narrow frame: _curate frees it once sorted
        res = _curate(pl.read_parquet(judgments_path, columns=NARROW), texts, pairs, cfg, iteration, {"sft", "dpo"})
    # The two sets are built and compressed on two threads (Arrow and polars release the GIL),
    # each into a temporary file; both are renamed into place only when both are complete.
    stop = threading.Event()
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_path(p)) for p in (sft_path, dpo_path)]
        with ThreadPoolExecutor(2) as pool:
            def write(kind: str, schema: pa.Schema, tmp: Path) -> int:
                try:
                    return _write(res[kind][1], schema, tmp, stop)
                finally:  # finished or failed: the other set no longer waits for it to read on
                    texts.groups.done(kind)
                    pairs.rows.groups.done(kind)

            jobs = [pool.submit(write, k, schema, t) for k, schema, t in (("sft", SFT, tmps[0]), ("dpo", DPO, tmps[1]))]
            for job in jobs:
                if job.exception() is not None:
                    stop.set()
        for job in jobs:
            job.result()  # raises the first failure: the temporaries are removed, nothing is renamed
    return res["sft"][0], res["dpo"][0]


# ---------------------------------------------------------------- list-of-dict entry points


def _from_dicts(judgments: list[dict[str, Any]], pairs: dict[str, dict[str, Any]]):
    types = {"correct": pa.bool_()}
    narrow = pl.from_arrow(pa.table({c: pa.array([j[c] for j in judgments], types.get(c, pa.string())) for c in NARROW}))
    texts = pa.table({"text": pa.array([j["text"] for j in judgments], pa.string())})
    table = pa.table({"pair_id": pa.array(list(pairs), pa.string()),
                      **{c: pa.array([p[c] for p in pairs.values()], pa.string()) for c in PAIR_COLUMNS[1:]}})
    return narrow, Rows(["text"], table=texts), PairTexts(table, Rows(PAIR_COLUMNS[1:], table=table))


def _rows(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> list[dict[str, Any]]:
    return pa.Table.from_batches(list(batches), schema=schema).to_pylist()


def curate_sft(
    judgments: list[dict[str, Any]], pairs: dict[str, dict[str, Any]], cfg: CurationConfig, iteration: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return (sft rows, funnel). `pairs` maps pair_id -> pair row (for the prompt text)."""
    narrow, texts, p = _from_dicts(judgments, pairs)
    funnel, batches = _curate(narrow, texts, p, cfg, iteration, {"sft"})["sft"]
    return _rows(batches, SFT), funnel


def curate_dpo(
    judgments: list[dict[str, Any]], pairs: dict[str, dict[str, Any]], cfg: CurationConfig, iteration: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """DPO pairs: chosen = a correct judgment, rejected = a wrong or unparsed one of the same pair and order.

    The chosen judgment's verdict is one the judge wrote (`dpo_chosen:
    parsed`, the default) and a forced one counts as unparsed; the rejected
    text is the judge's own, with no verdict line added.

    Per (pair, order) up to `pairs_per_input` distinct (correct, incorrect)
    combinations are drawn with a seeded RNG (see the module docstring); then
    "A wins"/"B wins" (the chosen verdict) are balanced when `dpo_balance`
    (default: `balance`) is `truncate`.
    """
    narrow, texts, p = _from_dicts(judgments, pairs)
    funnel, batches = _curate(narrow, texts, p, cfg, iteration, {"dpo"})["dpo"]
    return _rows(batches, DPO), funnel
