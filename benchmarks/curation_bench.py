"""Benchmark: judgeloop's curation + validation against plain pandas on synthetic judgments.

    python -m benchmarks.curation_bench --rows 1000000

Generates N judgment rows of one iteration (pairs judged in both orders with S
samples; judgment texts of ~300-1500 characters; pair responses of ~200-1500;
~8% without a verdict, 30% of verdicts parsed with their "[[X]]" tag in the
text, the rest forced; a few rows with a bad parse_status so that two
judgments expectations fail with known counts) plus the matching pairs table,
as Parquet in a temporary project. Then, in the same run, it times:

- curation: judgeloop (`curation.curate_files`, what `run_curate` calls:
  SFT and DPO sets with their funnels, written as Parquet) against the same
  rules written the straightforward pandas way (read the narrow columns,
  groupby, fetch the texts of the kept rows, build prompts by vectorised
  string concatenation, write in chunks of 128k rows);
- validation of the judgments, sft and dpo files: judgeloop
  (`validation.validate_files`: great-expectations suites, results.json and
  Data Docs) against the same checks as pandas masks (isna, isin,
  duplicated, str.len, ...) over the same files, read in chunks.

Both sides use the curation rule documented in `judgeloop.curation` (seeded
numpy keys over rows sorted by judgment_id), so the check is strict: the
funnels must be equal, the output files must have the same example_ids in
the same order with the same prompt/completion/chosen/rejected text (a hash
of every row), and every expectation's unexpected count must match the
pandas check's. Each side runs in its own process (its own peak RSS; the
great-expectations import, ~4 s, is outside the timings). The table shows
wall seconds, their ratio, and CPU seconds of all threads (on a shared
machine the wall time depends on the load average, which is recorded).
Results go to benchmarks/results/curation_bench.json, one entry per row
count under "runs" (so a 1M and a 10M run sit side by side). Run it with
`nice` on a shared machine; at 10M rows each side peaks at ~5-9 GB of RAM
and the temporary project takes ~11 GB of disk.

Before the columnar rewrite (lists of dicts + GX on whole pandas frames),
judgeloop took 29.5 s to curate and 28.3 s to validate 1M rows here (pandas:
26.2 s and 13.4 s in the same run, load average ~2.4-3.9); at 10M rows it
needed more RAM than this machine has.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.audit_bench import POOL, _text_pool
from judgeloop.config import CurationConfig
from judgeloop.io import ROW_GROUP_SIZE, atomic_path, write_json
from judgeloop.schemas import DPO, SFT
from judgeloop.templates import JUDGE_PROMPT

ITERATION = "it1"
BAD_STATUS_EVERY = 9973  # every 9973rd judgment gets parse_status 'weird' (two failing checks)


# ---------------------------------------------------------------- synthetic data


def generate(root: Path, rows: int, samples: int) -> dict[str, Any]:
    """Write data/pairs.parquet and data/it1/judgments.parquet under root."""
    n_pairs = max(1, rows // (2 * samples))
    n = n_pairs * 2 * samples
    con = duckdb.connect()
    # bounded memory (DuckDB spills to disk beyond it): the texts alone are ~1 KB per row
    con.execute(f"SET memory_limit = '3GB'; SET temp_directory = '{root}/.duckdb_tmp'")
    con.execute("CREATE TABLE pool(idx BIGINT, txt VARCHAR)")
    con.executemany("INSERT INTO pool VALUES (?, ?)", list(enumerate(_text_pool())))
    (root / "data" / ITERATION).mkdir(parents=True, exist_ok=True)
    len_w = "(200 + hash(p, 'w') % 1300)::BIGINT"
    len_l = "(200 + hash(p, 'l') % 1300)::BIGINT"
    con.execute(
        f"""COPY (
            SELECT printf('p%08d', p) AS pair_id, printf('q%08d', p) AS prompt_id, '{ITERATION}' AS split,
                   'reasoning' AS category,
                   'Instruction ' || p || ': ' || substr(w.txt, 1, 40 + p % 200) AS instruction,
                   substr(w.txt || w.txt, 1, {len_w}) || ' (w' || p || ')' AS response_w,
                   'Modified instruction ' || p AS modified_instruction,
                   substr(l.txt || l.txt, 1, {len_l}) || ' (l' || p || ')' AS response_l,
                   'ok' AS gen_status, 'models/it0' AS generator
            FROM range({n_pairs}) t(p)
            JOIN pool w ON w.idx = hash(p, 1) % {POOL}
            JOIN pool l ON l.idx = hash(p, 2) % {POOL}
        ) TO '{root}/data/pairs.parquet' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_SIZE})"""
    )
    # Row r: pair r // 2S, order (r // S) % 2, sample r % S; u1..u5 from hashes:
    # ~8% without a verdict, 15% "A" from position bias, else correct with p=0.65.
    con.execute(
        f"""COPY (
            WITH b AS (
                SELECT r, r // {2 * samples} AS p,
                       CASE WHEN (r // {samples}) % 2 = 0 THEN 'wl' ELSE 'lw' END AS "order",
                       r % {samples} AS sample_idx,
                       hash(r, 1) % 100000 / 100000.0 AS u1, hash(r, 2) % 100000 / 100000.0 AS u2,
                       hash(r, 3) % 100000 / 100000.0 AS u3, hash(r, 4) % 100000 / 100000.0 AS u4,
                       hash(r, 6) % 100000 / 100000.0 AS u5, hash(r, 5) % {POOL} AS t
                FROM range({n}) x(r)
            ),
            v AS (
                SELECT *,
                       CASE WHEN u1 < 0.08 THEN NULL
                            WHEN u2 < 0.15 THEN 'A'
                            WHEN u3 < 0.65 THEN (CASE WHEN "order" = 'wl' THEN 'A' ELSE 'B' END)
                            ELSE (CASE WHEN "order" = 'wl' THEN 'B' ELSE 'A' END) END AS verdict
                FROM b
            ),
            s AS (
                SELECT *, CASE WHEN verdict IS NULL THEN NULL WHEN u4 < 0.3 THEN 'parsed' ELSE 'forced' END AS src
                FROM v
            )
            SELECT printf('{ITERATION}:p%08d:%s:%d', p, "order", sample_idx) AS judgment_id,
                   printf('p%08d', p) AS pair_id, '{ITERATION}' AS iteration,
                   'models/it0' AS judge_model, 'sha256:{0:064d}' AS judge_hash,
                   "order", sample_idx::BIGINT AS sample_idx, (hash(r, 7) % 1000000)::BIGINT AS seed,
                   '{{"max_tokens": 512, "n": {samples}, "temperature": 0.7, "top_p": 0.95}}' AS sampling,
                   pool.txt || ' [' || r || ']'
                       || CASE WHEN src = 'parsed' THEN ' Final verdict: [[' || verdict || ']]' ELSE '' END
                       || CASE WHEN u5 < 0.1 THEN E'\\n' ELSE '' END AS text,
                   verdict,
                   CASE WHEN r % {BAD_STATUS_EVERY} = 5 THEN 'weird'
                        WHEN src = 'parsed' THEN 'ok' WHEN u1 < 0.03 THEN 'truncated' ELSE 'none' END AS parse_status,
                   src AS verdict_source,
                   CASE WHEN src = 'forced' THEN u4 END AS p_a,
                   CASE WHEN src = 'forced' THEN 1 - u4 END AS p_b,
                   CASE WHEN verdict IS NULL THEN NULL
                        ELSE verdict = (CASE WHEN "order" = 'wl' THEN 'A' ELSE 'B' END) END AS correct,
                   (length(pool.txt) // 4)::BIGINT AS n_tokens,
                   CASE WHEN u1 < 0.03 THEN 'length' ELSE 'stop' END AS finish_reason,
                   CASE WHEN "order" = 'wl' THEN {len_w} ELSE {len_l} END AS len_a,
                   CASE WHEN "order" = 'wl' THEN {len_l} ELSE {len_w} END AS len_b
            FROM s JOIN pool ON pool.idx = s.t
        ) TO '{root}/data/{ITERATION}/judgments.parquet' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_SIZE})"""
    )
    con.close()
    shutil.rmtree(root / ".duckdb_tmp", ignore_errors=True)
    return {"pairs": n_pairs, "judgments": n}


# ---------------------------------------------------------------- the pandas side

NARROW = ["judgment_id", "pair_id", "order", "verdict", "verdict_source", "parse_status", "correct"]


def _rng(seed: int, iteration: str, what: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{iteration}:{what}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def _gather_text(path: Path, positions: np.ndarray) -> pd.Series:
    """The text of the given file rows (any order), read one row group at a time."""
    order = np.argsort(positions, kind="stable")
    want = positions[order]
    parts, start = [], 0
    f = pq.ParquetFile(path)
    for i in range(f.num_row_groups):
        n = f.metadata.row_group(i).num_rows
        lo, hi = np.searchsorted(want, [start, start + n])
        if hi > lo:
            col = f.read_row_group(i, columns=["text"]).column("text")
            parts.append(col.take(pa.array(want[lo:hi] - start)))
        start += n
    # large_string: the kept texts of 10M judgments pass 2 GB
    texts = pa.chunked_array([p.cast(pa.large_string()) for p in parts], type=pa.large_string()).combine_chunks() \
        if parts else pa.array([], pa.large_string())
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return pd.Series(texts.take(pa.array(back)), dtype=pd.StringDtype("pyarrow"))


class PandasCuration:
    """The curation rules written the straightforward pandas way."""

    def __init__(self, root: Path, cfg: CurationConfig, iteration: str = ITERATION, chunk: int = ROW_GROUP_SIZE):
        self.root, self.cfg, self.it, self.chunk = root, cfg, iteration, chunk
        self.jpath = root / "data" / iteration / "judgments.parquet"

    def run(self) -> dict[str, Any]:
        j = pd.read_parquet(self.jpath, columns=NARROW)
        j["pos"] = np.arange(len(j))
        j = j.sort_values("judgment_id", kind="stable").reset_index(drop=True)
        pairs = pd.read_parquet(self.root / "data" / "pairs.parquet", columns=["pair_id", "instruction", "response_w", "response_l"])
        pairs = pairs.set_index("pair_id")
        sft_funnel = self.sft(j, pairs)
        dpo_funnel = self.dpo(j, pairs)
        return sft_funnel | {"dpo": dpo_funnel}

    def _prompts(self, pairs: pd.DataFrame, pair_id: pd.Series, order: pd.Series) -> pd.Series:
        p = pairs.loc[pair_id.to_numpy()]
        wl = (order == "wl").to_numpy()
        a = p["response_w"].where(wl, p["response_l"])
        b = p["response_l"].where(wl, p["response_w"])
        head, rest = JUDGE_PROMPT.split("{instruction}")
        mid, rest = rest.split("{response_a}")
        mid2, tail = rest.split("{response_b}")
        out = head + p["instruction"] + mid + a + mid2 + b + tail
        return pd.Series(out.to_numpy(), dtype=pd.StringDtype("pyarrow"))

    @staticmethod
    def _completion(text: pd.Series, verdict: pd.Series, source: pd.Series) -> pd.Series:
        forced = (source == "forced").fillna(False).to_numpy(dtype=bool) & verdict.notna().to_numpy()
        canon = text.str.rstrip() + "\n\nFinal verdict: [[" + verdict.fillna("") + "]]"
        return text.where(~forced, canon)

    def _write(self, frames, schema: pa.Schema, dest: Path) -> None:
        with atomic_path(dest) as tmp:
            with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
                for df in frames:
                    w.write_table(pa.Table.from_pandas(df, schema=schema, preserve_index=False), row_group_size=ROW_GROUP_SIZE)

    def sft(self, j: pd.DataFrame, pairs: pd.DataFrame) -> dict[str, Any]:
        cfg, it = self.cfg, self.it
        rng = _rng(cfg.seed, it, "sft")
        u, v = rng.random(len(j)), rng.random(len(j))
        j = j.assign(u=u, v=v)
        j["group"] = j["pair_id"] if cfg.per == "pair" else j["pair_id"] + ":" + j["order"]
        is_correct = j["correct"].fillna(False).astype(bool)
        f: dict[str, Any] = {"judgments": len(j)}
        g = is_correct.groupby(j["group"]).agg(["sum", "size"])
        f["groups"] = len(g)
        f["unparsed_text"] = int((j["parse_status"] != "ok").fillna(True).sum())
        f["no_verdict"] = int(j["verdict"].isna().sum())
        f["removed_incorrect_or_no_verdict"] = len(j) - int(is_correct.sum())
        f["correct"] = int(is_correct.sum())
        frac = g["sum"] / g["size"]
        f["groups_without_correct"] = int((frac == 0).sum())
        f["groups_below_min_correct_fraction"] = int(((frac > 0) & (frac < cfg.min_correct_fraction)).sum())
        kept = frac.index[(frac >= cfg.min_correct_fraction) & (frac > 0)]
        c = j[is_correct & j["group"].isin(kept)]
        chosen = c.sort_values(["group", "u"]).groupby("group", sort=False).head(1)
        f["one_per_group"] = len(chosen)
        a, b = chosen[chosen.verdict == "A"], chosen[chosen.verdict == "B"]
        f["a_wins_before_balance"], f["b_wins_before_balance"] = len(a), len(b)
        if cfg.balance == "truncate":
            k = min(len(a), len(b))
            if k == 0 and len(chosen):
                missing, present = ("A", b) if len(a) == 0 else ("B", a)
                other = "B" if missing == "A" else "A"
                f["empty_reason"] = (
                    f"balancing removed everything: no kept judgment says '{missing} wins' "
                    f"({len(present)} say '{other} wins'); the judge is position-biased. "
                    "Use curation.balance: none, more samples, or a higher judging temperature."
                )
            chosen = pd.concat([a.nsmallest(k, "v", keep="first"), b.nsmallest(k, "v", keep="first")])
        f["removed_by_balance"] = f["one_per_group"] - len(chosen)
        f["kept"] = len(chosen)
        f["keep_rate_pairs"] = round(chosen["pair_id"].nunique() / max(1, j["pair_id"].nunique()), 4)
        if not len(chosen) and "empty_reason" not in f:
            f["empty_reason"] = "no judgment picked the known winner" if len(j) else "no judgments to curate"
        chosen = chosen.sort_index()  # the judgment_id order
        text = _gather_text(self.jpath, chosen["pos"].to_numpy())
        chosen = chosen.reset_index(drop=True)

        def frames():
            for s in range(0, len(chosen), self.chunk):
                ch = chosen.iloc[s:s + self.chunk]
                t = text.iloc[s:s + self.chunk].reset_index(drop=True)
                yield pd.DataFrame({
                    "example_id": (f"{it}:sft:" + ch["judgment_id"]).to_numpy(), "pair_id": ch["pair_id"].to_numpy(),
                    "iteration": it, "order": ch["order"].to_numpy(), "judgment_id": ch["judgment_id"].to_numpy(),
                    "verdict": ch["verdict"].to_numpy(), "verdict_source": ch["verdict_source"].to_numpy(),
                    "prompt": self._prompts(pairs, ch["pair_id"], ch["order"]),
                    "completion": self._completion(t, ch["verdict"].reset_index(drop=True), ch["verdict_source"].reset_index(drop=True)),
                })

        self._write(frames(), SFT, self.root / "data" / it / "sft.parquet")
        return f

    def dpo(self, j: pd.DataFrame, pairs: pd.DataFrame) -> dict[str, Any]:
        cfg, it = self.cfg, self.it
        rng = _rng(cfg.seed, it, "dpo")
        j = j.assign(idx=np.arange(len(j)), good=j["correct"].fillna(False).astype(bool))
        f: dict[str, Any] = {"judgments": len(j)}
        g = j.groupby(["pair_id", "order"], sort=False)["good"].agg(["sum", "size"])
        f["groups"] = len(g)
        f["groups_all_correct"] = int((g["sum"] == g["size"]).sum())
        f["groups_none_correct"] = int((g["sum"] == 0).sum())
        f["groups_mixed"] = len(g) - f["groups_all_correct"] - f["groups_none_correct"]
        good = j.loc[j.good, ["idx", "pair_id", "order"]]
        bad = j.loc[~j.good, ["idx", "pair_id", "order"]]
        combos = good.merge(bad, on=["pair_id", "order"], suffixes=("_g", "_b")).sort_values(["idx_g", "idx_b"], ignore_index=True)
        combos["w"] = rng.random(len(combos))
        picked = combos.sort_values(["pair_id", "order", "w"]).groupby(["pair_id", "order"], sort=False).head(cfg.pairs_per_input)
        picked = picked.sort_values(["idx_g", "idx_b"], ignore_index=True)
        f["combinations"] = len(picked)
        picked["chosen_verdict"] = j["verdict"].to_numpy()[picked["idx_g"].to_numpy()]
        a, b = picked[picked.chosen_verdict == "A"], picked[picked.chosen_verdict == "B"]
        f["a_wins_before_balance"], f["b_wins_before_balance"] = len(a), len(b)
        if cfg.dpo_balance_mode == "truncate":
            picked["x"] = rng.random(len(picked))
            a, b = picked[picked.chosen_verdict == "A"], picked[picked.chosen_verdict == "B"]
            k = min(len(a), len(b))
            if k == 0 and len(picked):
                missing = "A" if len(a) == 0 else "B"
                f["empty_reason"] = f"balancing removed everything: no DPO pair has a chosen judgment saying '{missing} wins'"
            picked = pd.concat([a.nsmallest(k, "x", keep="first"), b.nsmallest(k, "x", keep="first")]).sort_values(["idx_g", "idx_b"], ignore_index=True)
        f["kept"] = len(picked)
        if not len(picked) and "empty_reason" not in f:
            f["empty_reason"] = "no pair and order has both a correct and an incorrect judgment" if len(j) else "no judgments to curate"
        gi, bi = picked["idx_g"].to_numpy(), picked["idx_b"].to_numpy()
        pos = j["pos"].to_numpy()
        gtext = _gather_text(self.jpath, pos[gi])
        btext = _gather_text(self.jpath, pos[bi])
        G = j.iloc[gi].reset_index(drop=True)
        B = j.iloc[bi].reset_index(drop=True)

        def frames():
            for s in range(0, len(G), self.chunk):
                g_, b_ = G.iloc[s:s + self.chunk].reset_index(drop=True), B.iloc[s:s + self.chunk].reset_index(drop=True)
                gt, bt = gtext.iloc[s:s + self.chunk].reset_index(drop=True), btext.iloc[s:s + self.chunk].reset_index(drop=True)
                yield pd.DataFrame({
                    "example_id": (f"{it}:dpo:" + g_["judgment_id"] + "|" + b_["judgment_id"]).to_numpy(),
                    "pair_id": g_["pair_id"].to_numpy(), "iteration": it, "order": g_["order"].to_numpy(),
                    "prompt": self._prompts(pairs, g_["pair_id"], g_["order"]),
                    "chosen": self._completion(gt, g_["verdict"], g_["verdict_source"]),
                    "rejected": self._completion(bt, b_["verdict"], b_["verdict_source"]),
                    "chosen_judgment_id": g_["judgment_id"].to_numpy(), "rejected_judgment_id": b_["judgment_id"].to_numpy(),
                    "chosen_verdict": g_["verdict"].to_numpy(), "rejected_verdict": b_["verdict"].to_numpy(),
                    "rejected_reason": np.where(b_["verdict"].notna(), "wrong", "unparsed"),
                })

        self._write(frames(), DPO, self.root / "data" / it / "dpo.parquet")
        return f


# The checks of judgeloop's suites for these three kinds, as pandas masks over
# file chunks: (expectation, column) -> unexpected count.
TEXT_MAX = 200_000


class PandasValidation:
    def __init__(self, files: dict[str, Path], ab_tolerance: float | None, chunk: int = ROW_GROUP_SIZE):
        self.files, self.ab, self.chunk = files, ab_tolerance, chunk

    def run(self) -> dict[str, dict[tuple[str, str], int]]:
        return {kind: getattr(self, kind)(path) for kind, path in self.files.items()}

    def _chunks(self, path: Path, columns: list[str]):
        f = pq.ParquetFile(path)
        for batch in f.iter_batches(batch_size=self.chunk, columns=columns):
            yield batch.to_pandas()

    @staticmethod
    def _add(out: dict, key: tuple[str, str], n: int) -> None:
        out[key] = out.get(key, 0) + int(n)

    def _common(self, path: Path, key: str, not_null: list[str], in_set: dict[str, list], lengths: dict[str, tuple],
                flags: Callable[[pd.DataFrame], dict[str, pd.Series]], extra: list[str]) -> tuple[dict, list]:
        out: dict[tuple[str, str], int] = {}
        names = pq.read_schema(path).names
        cols = list(dict.fromkeys([key, *not_null, *in_set, *lengths, *extra]))
        keys = []
        for df in self._chunks(path, [c for c in cols if c in names]):
            keys.append(df[key])
            for c in not_null:
                self._add(out, ("expect_column_values_to_not_be_null", c), df[c].isna().sum())
            for c, vals in in_set.items():
                self._add(out, ("expect_column_values_to_be_in_set", c), (df[c].notna() & ~df[c].isin(vals)).sum())
            for c, (lo, hi) in lengths.items():
                n = df[c].str.len()
                self._add(out, ("expect_column_value_lengths_to_be_between", c),
                          (n.notna() & ((n < (lo or 0)) | (n > (hi if hi is not None else np.inf)))).sum())
            for c, ok in flags(df).items():
                self._add(out, ("expect_column_values_to_be_in_set", c), (~ok).sum())
        ids = pd.concat(keys, ignore_index=True)
        out[("expect_column_values_to_be_unique", key)] = int((ids.notna() & ids.duplicated(keep=False)).sum())
        return out, keys

    def judgments(self, path: Path) -> dict:
        def flags(d):
            not_ok = (d["parse_status"] != "ok").fillna(True)
            parsed = (d["verdict_source"] == "parsed").fillna(False)
            return {"_correct_null_iff_verdict_null": d["correct"].isna() == d["verdict"].isna(),
                    "_parsed_needs_parse_ok": ~(not_ok & parsed)}

        out, _ = self._common(
            path, "judgment_id", ["judgment_id", "pair_id", "iteration", "judge_model", "order", "text", "parse_status"],
            {"order": ["wl", "lw"], "verdict": ["A", "B"], "parse_status": ["ok", "none", "both", "truncated"],
             "verdict_source": ["parsed", "forced"]}, {"text": (None, TEXT_MAX)}, flags, ["correct"])
        return out

    def sft(self, path: Path) -> dict:
        def flags(d):
            ok = pd.Series(False, index=d.index)
            for v in ("A", "B"):  # the completion holds the tag of its own verdict
                ok |= d["verdict"].eq(v).fillna(False) & d["completion"].str.contains(f"[[{v}]]", regex=False).fillna(False)
            return {"_tag_matches_verdict": ok}

        out, _ = self._common(
            path, "example_id", ["example_id", "pair_id", "judgment_id", "prompt", "completion", "verdict"],
            {"verdict": ["A", "B"]}, {"pair_id": (1, None), "judgment_id": (1, None), "prompt": (1, TEXT_MAX),
                                      "completion": (1, TEXT_MAX)}, flags, [])
        n = pq.ParquetFile(path).metadata.num_rows
        if self.ab is not None and n >= 4:
            is_a = pd.read_parquet(path, columns=["verdict"])["verdict"].eq("A").fillna(False)
            share = float(is_a.mean())
            lo, hi = 0.5 - self.ab, 0.5 + self.ab
            bad = 0 if lo <= share <= hi else int(is_a.eq(share > hi).sum())
            out[("expect_column_mean_to_be_between", "_is_a")] = bad
        return out

    def dpo(self, path: Path) -> dict:
        def flags(d):
            return {"_chosen_differs_rejected": ~(d["chosen"] == d["rejected"]).fillna(False)}

        return self._common(
            path, "example_id", ["example_id", "pair_id", "prompt", "chosen", "rejected", "chosen_judgment_id",
                                 "rejected_judgment_id", "chosen_verdict"],
            {"rejected_reason": ["wrong", "unparsed", "farther_from_gold"]},
            {"prompt": (1, TEXT_MAX), "chosen": (1, TEXT_MAX), "rejected": (1, TEXT_MAX)}, flags, [])[0]


# ---------------------------------------------------------------- the judgeloop side


def judgeloop_curate(root: Path, cfg: CurationConfig) -> dict[str, Any]:
    """What pipeline.run_curate does, on the benchmark's paths."""
    from judgeloop import curation

    d = root / "data" / ITERATION
    if hasattr(curation, "curate_files"):
        sft_f, dpo_f = curation.curate_files(d / "judgments.parquet", root / "data" / "pairs.parquet", cfg, ITERATION,
                                             d / "sft.parquet", d / "dpo.parquet")
        return sft_f | {"dpo": dpo_f}
    # judgeloop before the columnar rewrite: lists of dicts
    from judgeloop.io import read_parquet, write_parquet
    from judgeloop.schemas import to_table

    judgments = read_parquet(d / "judgments.parquet").to_pylist()
    pairs = {p["pair_id"]: p for p in read_parquet(root / "data" / "pairs.parquet").to_pylist()}
    sft_rows, sft_f = curation.curate_sft(judgments, pairs, cfg, ITERATION)
    dpo_rows, dpo_f = curation.curate_dpo(judgments, pairs, cfg, ITERATION)
    del judgments, pairs
    write_parquet(to_table("sft", sft_rows), d / "sft.parquet")
    write_parquet(to_table("dpo", dpo_rows), d / "dpo.parquet")
    return sft_f | {"dpo": dpo_f}


def judgeloop_validate(files: dict[str, Path], out: Path, ab_tolerance: float | None) -> dict[str, dict[tuple[str, str], int]]:
    from judgeloop.validation import validate_files  # imported (and timed) in main: GX takes seconds to import

    reports = validate_files({k: str(v) for k, v in files.items()}, str(out), ab_tolerance=ab_tolerance)
    counts: dict[str, dict[tuple[str, str], int]] = {}
    for r in reports:
        c = counts.setdefault(r.dataset, {})
        for res in r.results:
            if res["expectation"] == "expect_table_columns_to_match_set":
                continue
            key = (res["expectation"], res["kwargs"].get("column"))
            c[key] = c.get(key, 0) + res["unexpected_count"]
    return counts


# ---------------------------------------------------------------- comparing


def file_digest(path: Path, columns: list[str]) -> tuple[int, str]:
    """Rows and a hash over every value of the given string columns, in file order."""
    h = hashlib.sha256()
    n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65536, columns=columns):
        n += batch.num_rows
        for c in columns:
            col = batch.column(c)
            h.update(col.is_null().to_numpy(zero_copy_only=False).tobytes())
            filled = pa.concat_arrays([pc.fill_null(col, "")])
            offsets = np.frombuffer(filled.buffers()[1], dtype=np.int32)[filled.offset:filled.offset + len(filled) + 1]
            h.update(np.diff(offsets).tobytes())
            if len(filled):
                h.update(memoryview(filled.buffers()[2])[offsets[0]:offsets[-1]])
    return n, h.hexdigest()


def compare_outputs(a: Path, b: Path) -> bool:
    for name, schema in (("sft.parquet", SFT), ("dpo.parquet", DPO)):
        if file_digest(a / name, schema.names) != file_digest(b / name, schema.names):
            return False
    return True


# ---------------------------------------------------------------- running


CPU: dict[str, float] = {}  # CPU seconds (all threads) of the last timed call, by label


def timed(fn: Callable[[], Any], label: str = "") -> tuple[float, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    CPU[label] = time.process_time() - c0
    return time.perf_counter() - t0, out


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _side(which: str, root: Path, cfg: dict[str, Any], ab: float | None) -> dict[str, Any]:
    """One implementation's curation + validation, in its own process (its own peak memory)."""
    t0 = time.perf_counter()
    import judgeloop.validation  # noqa: F401  great-expectations takes seconds to import: kept out of the timings
    import_s = time.perf_counter() - t0
    c = CurationConfig(**cfg)
    d = root / "data" / ITERATION
    files = {"judgments": d / "judgments.parquet", "sft": d / "sft.parquet", "dpo": d / "dpo.parquet"}
    if which == "judgeloop":
        cur_s, funnel = timed(lambda: judgeloop_curate(root, c), "curate")
        rss_cur = _rss_mb()
        val_s, counts = timed(lambda: judgeloop_validate(files, root / "reports" / "validation", ab), "validate")
    else:
        cur_s, funnel = timed(lambda: PandasCuration(root, c).run(), "curate")
        rss_cur = _rss_mb()
        val_s, counts = timed(lambda: PandasValidation(files, ab).run(), "validate")
    return {"curate_s": cur_s, "validate_s": val_s, "curate_cpu_s": CPU["curate"], "validate_cpu_s": CPU["validate"],
            "funnel": funnel, "counts": counts, "import_s": import_s,
            "max_rss_mb_after_curate": rss_cur, "max_rss_mb": _rss_mb()}


def _in_child(*args: Any) -> dict[str, Any]:
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_side, args)


def run(rows: int, samples: int, workdir: Path | None, keep: bool, skip_pandas: bool, cfg: CurationConfig) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="judgeloop-curbench-", dir=workdir))
    try:
        t0 = time.perf_counter()
        info = generate(tmp, rows, samples)
        gen_s = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in tmp.rglob("*.parquet"))
        print(f"generated {info['judgments']:,} judgments ({info['pairs']:,} pairs x 2 orders x {samples} samples), "
              f"{size / 1e6:.0f} MB of Parquet in {gen_s:.1f} s under {tmp}", flush=True)
        # the pandas side writes into a copy of the project (same inputs, its own outputs)
        ptmp = tmp / "pandas"
        (ptmp / "data" / ITERATION).mkdir(parents=True)
        for f in ("data/pairs.parquet", f"data/{ITERATION}/judgments.parquet"):
            os.link(tmp / f, ptmp / f)
        ab = 0.2 if cfg.balance == "truncate" else None
        J = _in_child("judgeloop", tmp, cfg.model_dump(), ab)
        print(f"  judgeloop: curate {J['curate_s']:.2f} s, validate {J['validate_s']:.2f} s, max RSS {J['max_rss_mb']} MB", flush=True)
        P = None
        same_funnel = same_rows = same_counts = None
        if not skip_pandas:
            P = _in_child("pandas", ptmp, cfg.model_dump(), ab)
            print(f"  pandas:    curate {P['curate_s']:.2f} s, validate {P['validate_s']:.2f} s, max RSS {P['max_rss_mb']} MB", flush=True)
            same_funnel = json.dumps(J["funnel"], sort_keys=True) == json.dumps(P["funnel"], sort_keys=True)
            if not same_funnel:
                print(f"  funnels differ:\n    judgeloop {J['funnel']}\n    pandas    {P['funnel']}", flush=True)
            same_rows = compare_outputs(tmp / "data" / ITERATION, ptmp / "data" / ITERATION)
            same_counts = J["counts"] == P["counts"]
            if not same_counts:
                print(f"  unexpected counts differ:\n    judgeloop {J['counts']}\n    pandas    {P['counts']}", flush=True)
        ok = None if skip_pandas else bool(same_funnel and same_rows)
        results = [
            {"step": "curate (sft + dpo)", "judgeloop_s": J["curate_s"], "pandas_s": P and P["curate_s"], "match": ok,
             "judgeloop_cpu_s": J["curate_cpu_s"], "pandas_cpu_s": P and P["curate_cpu_s"]},
            {"step": "validate (judgments, sft, dpo)", "judgeloop_s": J["validate_s"], "pandas_s": P and P["validate_s"],
             "match": same_counts, "judgeloop_cpu_s": J["validate_cpu_s"], "pandas_cpu_s": P and P["validate_cpu_s"]},
            {"step": "total", "judgeloop_s": J["curate_s"] + J["validate_s"],
             "pandas_s": P and P["curate_s"] + P["validate_s"], "match": None if skip_pandas else bool(ok and same_counts),
             "judgeloop_cpu_s": J["curate_cpu_s"] + J["validate_cpu_s"],
             "pandas_cpu_s": P and P["curate_cpu_s"] + P["validate_cpu_s"]},
        ]
        d = tmp / "data" / ITERATION
        out_sizes = {k: pq.ParquetFile(d / f"{k}.parquet").metadata.num_rows for k in ("judgments", "sft", "dpo")}
        failing = {k: {f"{e}({c})": n for (e, c), n in v.items() if n} for k, v in J["counts"].items()}
        return {
            "rows": info["judgments"], "requested_rows": rows, "pairs": info["pairs"], "samples": samples,
            "curation": cfg.model_dump(), "parquet_mb_inputs": round(size / 1e6, 1),
            "parquet_mb_outputs": round(sum((d / f"{k}.parquet").stat().st_size for k in ("sft", "dpo")) / 1e6, 1),
            "output_rows": out_sizes, "funnel": J["funnel"], "unexpected_counts": failing,
            "generate_s": round(gen_s, 2), "results": results, "gx_import_s": round(J["import_s"], 2),
            "max_rss_mb": {"judgeloop": J["max_rss_mb"], "judgeloop_after_curate": J["max_rss_mb_after_curate"],
                           "pandas": P and P["max_rss_mb"], "pandas_after_curate": P and P["max_rss_mb_after_curate"]},
        }
    finally:
        if keep:
            print(f"kept the data in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def render(report: dict[str, Any]) -> str:
    head = f"{'step':<32} {'judgeloop s':>11} {'pandas s':>9} {'ratio':>7}  same  {'cpu s (jl / pd)':>17}"
    lines = [f"{report['rows']:,} judgments, {report['pairs']:,} pairs; sft {report['output_rows']['sft']:,} rows, "
             f"dpo {report['output_rows']['dpo']:,} rows", head, "-" * len(head)]
    for r in report["results"]:
        p = r["pandas_s"]
        ratio = f"{p / r['judgeloop_s']:.1f}x" if p is not None and r["judgeloop_s"] > 0 else "-"
        pc_ = r["pandas_cpu_s"]
        cpu = f"{r['judgeloop_cpu_s']:.1f} / {'-' if pc_ is None else f'{pc_:.1f}'}"
        lines.append(f"{r['step']:<32} {r['judgeloop_s']:>11.2f} {('-' if p is None else f'{p:.2f}'):>9} {ratio:>7}  "
                     f"{'-' if r['match'] is None else ('yes' if r['match'] else 'NO'):<4}  {cpu:>17}")
    lines.append("ratio = pandas wall time / judgeloop wall time (higher: judgeloop faster); "
                 "cpu s = CPU seconds of all threads (the machine is shared)")
    m = report.get("machine", {})
    if m:
        lines.append(f"load average at start {tuple(round(x, 2) for x in m['load_avg_at_start'])}, "
                     f"at end {tuple(round(x, 2) for x in m['load_avg_at_end'])}; {m['cpus']} CPUs")
    r = report["max_rss_mb"]
    pandas_rss = "-" if r["pandas"] is None else f"{r['pandas']:.0f}"
    lines.append(f"peak RSS: judgeloop {r['judgeloop']:.0f} MB, pandas {pandas_rss} MB (each side in its own process)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.curation_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="judgment rows (default 10M)")
    ap.add_argument("--samples", type=int, default=4, help="samples per pair and order (default params: 4)")
    ap.add_argument("--per", choices=["pair", "pair_order"], default="pair_order")
    ap.add_argument("--balance", choices=["truncate", "none"], default="truncate")
    ap.add_argument("--dpo-balance", choices=["truncate", "none"], default="none")
    ap.add_argument("--pairs-per-input", type=int, default=1)
    ap.add_argument("--workdir", type=Path, help="where to put the temporary project (default: the system temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    ap.add_argument("--skip-pandas", action="store_true")
    ap.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "curation_bench.json")
    args = ap.parse_args(argv)
    cfg = CurationConfig(per=args.per, balance=args.balance, dpo_balance=args.dpo_balance, pairs_per_input=args.pairs_per_input)

    load_at_start = os.getloadavg()
    report = run(args.rows, args.samples, args.workdir, args.keep, args.skip_pandas, cfg)
    report["machine"] = {
        "platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count(),
        "pandas": pd.__version__, "polars": pl.__version__, "pyarrow": pa.__version__, "duckdb": duckdb.__version__,
        "load_avg_at_start": load_at_start, "load_avg_at_end": os.getloadavg(),
    }
    report["when"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    print()
    print(render(report))
    # one file, one entry per row count: a 1M and a 10M run live side by side
    runs = {}
    if args.output.exists():
        try:
            runs = json.loads(args.output.read_text()).get("runs", {})
        except (ValueError, AttributeError):
            runs = {}
    runs[str(report["requested_rows"])] = report | {"table": render(report)}
    write_json({"runs": runs}, args.output)
    print(f"\nwrote {args.output} (runs: {', '.join(sorted(runs, key=int))} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
