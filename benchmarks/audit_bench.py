"""Benchmark: judgeloop's SQL audit and diff against plain pandas on synthetic judgments.

    python -m benchmarks.audit_bench --rows 10000000

Generates N judgment rows (several iterations judging the same pairs in both
orders with S samples; judgment texts of ~300-1500 characters; pairs with
categories; an SFT subset; curation.json funnels) as Parquet in a temporary
project, then times, in the same run, every canned report and a diff of two
iterations' judgments three ways:

- judgeloop: open_audit + run_report + fetch (diff: judgeloop.diff),
- pandas, whole files: what one writes without judgeloop. Each report
  reads the files it needs whole (`pd.concat(pd.read_parquet(f) for f in
  glob(...))`, every column), then selects, merges and groups; the diff
  reads both files whole and outer-merges them.
- pandas, projecting: the optimised pandas. Each report reads only the
  columns it needs (pyarrow column projection; the text of parse_failures'
  example rows through a row filter); the diff hashes the text columns one
  at a time as it reads them, as judgeloop does.

Every measurement runs in its own fresh process (spawned, so nothing is
inherited) whose resident memory the parent polls every 20 ms: past
--mem-cap-gb (default 10) it is killed and reported as out of memory, with
how long it had run, instead of taking the machine down. Both pandas
variants are checked to give the same numbers as judgeloop. Prints a table
with the ratios (pandas time / judgeloop time) and each side's peak memory,
and writes JSON to benchmarks/results/audit_bench.json. Run it with `nice`
on a shared machine.
"""

from __future__ import annotations

import argparse
import glob
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import duckdb
import numpy as np
import pandas as pd

from judgeloop import audit
from judgeloop.diff import DIFF_KEYS, diff_iterations, iteration_ignores
from benchmarks import finish
from judgeloop.io import ROW_GROUP_SIZE, write_json

CATEGORIES = ["reasoning", "coding", "math", "writing", "extraction", "roleplay", "stem", "humanities"]
POOL = 4096  # distinct text bodies; each row's text is made unique by a suffix


# ---------------------------------------------------------------- synthetic data


def _text_pool(seed: int = 0) -> list[str]:
    """Judgment-like texts of 300-1500 characters from a random vocabulary."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(3000)]
    out = []
    for _ in range(POOL):
        target = rng.randint(300, 1500)
        words, n = [], 0
        while n < target:
            w = rng.choice(vocab)
            words.append(w)
            n += len(w) + 1
        out.append(" ".join(words)[:target])
    return out


def generate(root: Path, rows: int, iterations: int, samples: int, row_group_size: int = ROW_GROUP_SIZE) -> dict[str, Any]:
    """Write data/, stats/ under root; returns what was generated."""
    n_pairs = max(1, rows // (iterations * 2 * samples))
    per_iter = n_pairs * 2 * samples
    con = duckdb.connect()
    con.execute("CREATE TABLE pool(idx BIGINT, txt VARCHAR)")
    con.executemany("INSERT INTO pool VALUES (?, ?)", list(enumerate(_text_pool())))
    cats = "[" + ", ".join(f"'{c}'" for c in CATEGORIES) + "]"
    (root / "data").mkdir(parents=True, exist_ok=True)
    # Answer lengths per pair, shared by pairs.parquet and the judgments' len_a/len_b.
    len_w = "(200 + hash(p, 'w') % 1300)::BIGINT"
    len_l = "(200 + hash(p, 'l') % 1300)::BIGINT"
    con.execute(
        f"""COPY (
            SELECT printf('p%08d', p) AS pair_id, printf('q%08d', p) AS prompt_id, 'it1' AS split,
                   CASE WHEN p % 11 = 0 THEN NULL ELSE {cats}[1 + p % 8] END AS category,
                   'instruction ' || p AS instruction,
                   substr(w.txt || w.txt, 1, {len_w}) AS response_w,
                   'modified instruction ' || p AS modified_instruction,
                   substr(l.txt || l.txt, 1, {len_l}) AS response_l,
                   'ok' AS gen_status, 'models/it0' AS generator
            FROM range({n_pairs}) t(p)
            JOIN pool w ON w.idx = hash(p, 1) % {POOL}
            JOIN pool l ON l.idx = hash(p, 2) % {POOL}
        ) TO '{root}/data/pairs.parquet' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {row_group_size})"""
    )
    for k in range(1, iterations + 1):
        it = f"it{k}"
        acc = min(0.95, 0.55 + 0.1 * k)  # later judges are better
        d = root / "data" / it
        d.mkdir(parents=True, exist_ok=True)
        # Row n: pair n // (2S), order by (n // S) % 2, sample n % S. Uniform
        # numbers u1..u4 from hashes make the verdicts: ~8% without a verdict,
        # 15% "A" from position bias, otherwise correct with probability acc.
        con.execute(
            f"""COPY (
                WITH b AS (
                    SELECT n, n // {2 * samples} AS p,
                           CASE WHEN (n // {samples}) % 2 = 0 THEN 'wl' ELSE 'lw' END AS "order",
                           n % {samples} AS sample_idx,
                           hash(n, {k}, 1) % 100000 / 100000.0 AS u1,
                           hash(n, {k}, 2) % 100000 / 100000.0 AS u2,
                           hash(n, {k}, 3) % 100000 / 100000.0 AS u3,
                           hash(n, {k}, 4) % 100000 / 100000.0 AS u4,
                           hash(n, {k}, 5) % {POOL} AS t
                    FROM range({per_iter}) r(n)
                ),
                v AS (
                    SELECT *,
                           CASE WHEN u1 < 0.08 THEN NULL
                                WHEN u2 < 0.15 THEN 'A'
                                WHEN u3 < {acc} THEN (CASE WHEN "order" = 'wl' THEN 'A' ELSE 'B' END)
                                ELSE (CASE WHEN "order" = 'wl' THEN 'B' ELSE 'A' END) END AS verdict
                    FROM b
                )
                SELECT printf('{it}:p%08d:%s:%d', p, "order", sample_idx) AS judgment_id,
                       printf('p%08d', p) AS pair_id,
                       '{it}' AS iteration,
                       'models/it{k - 1}' AS judge_model,
                       'sha256:{k - 1:064d}' AS judge_hash,
                       "order", sample_idx::BIGINT AS sample_idx,
                       (hash(n, {k}, 6) % 1000000)::BIGINT AS seed,
                       '{{"max_tokens": 512, "n": {samples}, "temperature": 0.7, "top_p": 0.95}}' AS sampling,
                       pool.txt || ' [' || n || ']' AS text,
                       verdict,
                       CASE WHEN verdict IS NOT NULL THEN 'ok' WHEN u1 < 0.03 THEN 'truncated' ELSE 'none' END AS parse_status,
                       CASE WHEN verdict IS NULL THEN NULL WHEN u4 < 0.3 THEN 'parsed' ELSE 'forced' END AS verdict_source,
                       CASE WHEN verdict IS NOT NULL AND u4 >= 0.3 THEN u4 END AS p_a,
                       CASE WHEN verdict IS NOT NULL AND u4 >= 0.3 THEN 1 - u4 END AS p_b,
                       CASE WHEN verdict IS NULL THEN NULL ELSE verdict = (CASE WHEN "order" = 'wl' THEN 'A' ELSE 'B' END) END AS correct,
                       (length(pool.txt) // 4)::BIGINT AS n_tokens,
                       CASE WHEN u1 < 0.03 THEN 'length' ELSE 'stop' END AS finish_reason,
                       CASE WHEN "order" = 'wl' THEN {len_w} ELSE {len_l} END AS len_a,
                       CASE WHEN "order" = 'wl' THEN {len_l} ELSE {len_w} END AS len_b
                FROM v JOIN pool ON pool.idx = v.t
            ) TO '{d}/judgments.parquet' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {row_group_size})"""
        )
        # SFT: one correct judgment per pair and order (lowest sample), two thirds of the groups.
        con.execute(
            f"""COPY (
                SELECT '{it}:sft:' || judgment_id AS example_id, pair_id, iteration, "order", judgment_id,
                       verdict, verdict_source, 'Which answer is better? ' || pair_id AS prompt, text AS completion
                FROM read_parquet('{d}/judgments.parquet')
                WHERE correct AND hash(pair_id, "order", 7) % 3 <> 0
                QUALIFY row_number() OVER (PARTITION BY pair_id, "order" ORDER BY sample_idx) = 1
            ) TO '{d}/sft.parquet' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {row_group_size})"""
        )
        j, c, nv, pairs_j = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE correct), count(*) FILTER (WHERE verdict IS NULL), count(DISTINCT pair_id) "
            f"FROM read_parquet('{d}/judgments.parquet')"
        ).fetchall()[0]
        kept, pairs_k, a_w, b_w = con.execute(
            f"SELECT count(*), count(DISTINCT pair_id), count(*) FILTER (WHERE verdict = 'A'), count(*) FILTER (WHERE verdict = 'B') "
            f"FROM read_parquet('{d}/sft.parquet')"
        ).fetchall()[0]
        write_json(
            {
                "judgments": j, "groups": n_pairs * 2, "unparsed_text": nv, "no_verdict": nv, "correct": c,
                "removed_incorrect_or_no_verdict": j - c, "groups_without_correct": 0,
                "groups_below_min_correct_fraction": 0, "one_per_group": kept, "a_wins_before_balance": a_w,
                "b_wins_before_balance": b_w, "removed_by_balance": 0, "kept": kept,
                "keep_rate_pairs": round(pairs_k / max(1, pairs_j), 4),
            },
            root / "stats" / it / "curation.json",
        )
    con.close()
    return {"pairs": n_pairs, "judgments_per_iteration": per_iter, "judgments": per_iter * iterations}


# ---------------------------------------------------------------- the pandas side


class PandasReports:
    """The canned reports in pandas, optimised: each reads only the columns it needs, then merges and groups.

    The report methods are shared with PandasWholeFiles; only the reading differs.
    """

    label = "projecting"

    def __init__(self, root: Path):
        self.root = Path(root)

    def files(self, kind: str) -> list[str]:
        return sorted(glob.glob(str(self.root / "data" / "*" / f"{kind}.parquet")))

    def read_pairs(self, columns: list[str]) -> pd.DataFrame:
        return pd.read_parquet(self.root / "data" / "pairs.parquet", columns=columns)

    def read(self, kind: str, columns: list[str]) -> pd.DataFrame:
        frames = []
        for f in self.files(kind):
            df = pd.read_parquet(f, columns=[c for c in columns if c != "iteration"])
            df["iteration"] = Path(f).parent.name
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def read_where(self, kind: str, columns: list[str], condition: tuple) -> pd.DataFrame:
        frames = []
        for f in self.files(kind):
            df = pd.read_parquet(f, columns=columns, filters=[condition])
            df["iteration"] = Path(f).parent.name
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    @staticmethod
    def _iter_order(its) -> list[str]:
        import re

        def key(it: str):
            m = re.match(r"(.*?)(\d+)$", it)
            return (m.group(1), int(m.group(2))) if m else (it, -1)

        return sorted(its, key=key)

    def _majority(self, j: pd.DataFrame) -> pd.DataFrame:
        j = j.assign(is_a=j["verdict"].eq("A"), is_b=j["verdict"].eq("B"))
        v = j.groupby(["iteration", "pair_id", "order"], as_index=False).agg(n=("is_a", "size"), n_a=("is_a", "sum"), n_b=("is_b", "sum"))
        v["majority"] = np.where(v.n_a > v.n_b, "A", np.where(v.n_b > v.n_a, "B", None))
        return v

    def funnel(self) -> pd.DataFrame:
        cur = pd.DataFrame(
            [json.loads(Path(f).read_text()) | {"iteration": Path(f).parent.name}
             for f in sorted(glob.glob(str(self.root / "stats" / "*" / "curation.json")))]
        )
        sft = self.read("sft", ["iteration"]).groupby("iteration").size().rename("sft_rows").reset_index()
        out = cur.merge(sft, on="iteration", how="left")
        out["sft_rows"] = out["sft_rows"].fillna(0).astype(int)
        return out

    def keep_rate_by_category(self) -> pd.DataFrame:
        j = self.read("judgments", ["pair_id"]).drop_duplicates()
        s = self.read("sft", ["pair_id"]).drop_duplicates().assign(kept=True)
        pairs = self.read_pairs(["pair_id", "category"]).drop_duplicates("pair_id")
        m = j.merge(s, on=["iteration", "pair_id"], how="left").merge(pairs, on="pair_id", how="left")
        m["kept"] = m["kept"].fillna(False).astype(bool)
        m["category"] = m["category"].fillna("(none)")
        per = m.groupby(["iteration", "category"], as_index=False).agg(judged_pairs=("kept", "size"), kept_pairs=("kept", "sum"))
        tot = m.groupby("iteration", as_index=False).agg(judged_pairs=("kept", "size"), kept_pairs=("kept", "sum")).assign(category="(all)")
        out = pd.concat([tot, per], ignore_index=True)
        out["keep_rate"] = (out.kept_pairs / out.judged_pairs).round(4)
        return out

    def position_bias(self) -> pd.DataFrame:
        j = self.read("judgments", ["pair_id", "order", "verdict", "correct"])
        j["correct"] = j["correct"].astype("boolean")
        j["is_a"] = j["verdict"].eq("A")
        g = j.groupby(["iteration", "order"])
        per = pd.DataFrame({"judgments": g.size(), "with_verdict": g["verdict"].count(), "n_a": g["is_a"].sum(), "accuracy": g["correct"].mean()})
        per = per.reset_index()
        per["verdict_rate"] = (per.with_verdict / per.judgments).round(4)
        per["a_rate"] = (per.n_a / per.with_verdict).round(4)
        per["accuracy"] = per["accuracy"].astype(float).round(4)
        v = self._majority(j)
        v["pick"] = np.where(v.majority.isna(), None, np.where((v.order == "wl") == (v.majority == "A"), "w", "l"))
        both = v[v.order == "wl"].merge(v[v.order == "lw"], on=["iteration", "pair_id"], suffixes=("_wl", "_lw"))
        both["consistent"] = both.pick_wl.notna() & (both.pick_wl == both.pick_lw)
        cons = both.groupby("iteration", as_index=False).agg(pairs_both_orders=("consistent", "size"), consistent_pairs=("consistent", "sum"))
        cons["consistency"] = (cons.consistent_pairs / cons.pairs_both_orders).round(4)
        return per.merge(cons, on="iteration", how="left")

    def parse_failures(self) -> pd.DataFrame:
        # Two steps, like the SQL: group on the narrow columns, then read the
        # text of the few example rows only (reading all text would need ~1 KB x rows of RAM).
        j = self.read("judgments", ["judgment_id", "parse_status", "verdict_source"])
        j["parse_status"] = j["parse_status"].fillna("(null)")
        j["forced"] = j["verdict_source"].eq("forced")
        j = j.sort_values("judgment_id")  # examples: the smallest ids
        g = j.groupby(["iteration", "parse_status"], sort=False)
        out = g.agg(judgments=("forced", "size"), forced_verdicts=("forced", "sum")).reset_index()
        ex = g["judgment_id"].apply(lambda s: list(s.head(3))).rename("example_ids").reset_index()
        out = out.merge(ex, on=["iteration", "parse_status"])
        out["rate"] = (out.judgments / out.groupby("iteration")["judgments"].transform("sum")).round(4)
        first = [ids[0] for ids in out["example_ids"]]
        texts = self.read_where("judgments", ["judgment_id", "text"], ("judgment_id", "in", first))
        texts["example_text"] = texts["text"].str.split().str.join(" ").str.slice(0, 120)
        out["first_id"] = first
        out = out.merge(texts[["iteration", "judgment_id", "example_text"]], left_on=["iteration", "first_id"],
                        right_on=["iteration", "judgment_id"], how="left")
        return out.drop(columns=["first_id", "judgment_id"])

    def length_bias(self) -> pd.DataFrame:
        j = self.read("judgments", ["judgment_id", "order", "verdict", "len_a", "len_b"])
        d = j[j.verdict.isin(["A", "B"]) & j.len_a.notna() & j.len_b.notna() & (j.len_a != j.len_b)].copy()
        d["longer"] = np.where(d.len_a > d.len_b, "A", "B")
        d["picked_longer"] = d.verdict == d.longer
        d["w_longer"] = (d.order == "wl") == (d.len_a > d.len_b)
        out = d.groupby("iteration", as_index=False).agg(
            judged=("picked_longer", "size"), picked_longer_rate=("picked_longer", "mean"), correct_is_longer_rate=("w_longer", "mean")
        )
        s = self.read("sft", ["judgment_id", "verdict"]).drop(columns="iteration")
        s = s.merge(d[["judgment_id", "iteration", "longer"]], on="judgment_id")
        s["picked_longer"] = s.verdict == s.longer
        ss = s.groupby("iteration", as_index=False).agg(sft_examples=("picked_longer", "size"), sft_picked_longer_rate=("picked_longer", "mean"))
        out = out.merge(ss, on="iteration", how="left")
        for c in ("picked_longer_rate", "correct_is_longer_rate", "sft_picked_longer_rate"):
            out[c] = out[c].round(4)
        return out

    def dpo_pairs(self) -> pd.DataFrame:
        # the synthetic project has no DPO sets: the group counts are the work
        j = self.read("judgments", ["pair_id", "order", "correct"])
        j["ok"] = j["correct"].fillna(False).astype(bool)
        g = j.groupby(["iteration", "pair_id", "order"], as_index=False).agg(n_correct=("ok", "sum"), n=("ok", "size"))
        g["mixed"] = (g.n_correct > 0) & (g.n > g.n_correct)
        g["combos"] = np.where(g.mixed, g.n_correct * (g.n - g.n_correct), 0)
        return g.groupby("iteration", as_index=False).agg(
            groups=("mixed", "size"), groups_mixed=("mixed", "sum"), combinations_possible=("combos", "sum"))

    def sample_agreement(self) -> pd.DataFrame:
        v = self._majority(self.read("judgments", ["pair_id", "order", "verdict"]))
        top = np.maximum(v.n_a, v.n_b)
        v["agree"] = top / v.n
        v["agree_v"] = top / (v.n_a + v.n_b).replace(0, np.nan)
        v["unanimous"] = (v.n_a == v.n) | (v.n_b == v.n)
        out = v.groupby("iteration", as_index=False).agg(
            groups=("n", "size"), samples_per_group=("n", "mean"), mean_agreement=("agree", "mean"),
            mean_agreement_verdicts=("agree_v", "mean"), unanimous_rate=("unanimous", "mean"),
        )
        return out.round({"samples_per_group": 2, "mean_agreement": 4, "mean_agreement_verdicts": 4, "unanimous_rate": 4})

    def verdict_change(self) -> pd.DataFrame:
        v = self._majority(self.read("judgments", ["pair_id", "order", "verdict"]))
        v["correct"] = v.majority.notna() & ((v.order == "wl") == (v.majority == "A"))
        its = self._iter_order(v.iteration.unique())
        rows = []
        for a, b in zip(its, its[1:]):
            m = v[v.iteration == a].merge(v[v.iteration == b], on=["pair_id", "order"], suffixes=("_a", "_b"))
            same = (m.majority_a == m.majority_b) | (m.majority_a.isna() & m.majority_b.isna())
            rows.append({
                "iteration_a": a, "iteration_b": b, "compared": len(m), "unchanged": int(same.sum()), "changed": int((~same).sum()),
                "changed_rate": round((~same).sum() / len(m), 4) if len(m) else None,
                "became_correct": int((~m.correct_a & m.correct_b).sum()), "became_wrong": int((m.correct_a & ~m.correct_b).sum()),
            })
        return pd.DataFrame(rows)

    @staticmethod
    def _read_hashed(path: Path, keys: list[str]) -> pd.DataFrame:
        """A file with its text columns replaced by 64-bit hashes, one column at a time.

        Holding two iterations' raw text and their merge would need ~6x the
        text size in RAM (about 20 GB at 10M rows); hashing, as judgeloop's
        diff does, keeps the comparison the same and the memory bounded.
        """
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        text = [f.name for f in schema if f.name not in keys and str(f.type) in ("string", "large_string")]
        df = pd.read_parquet(path, columns=[n for n in schema.names if n not in text])
        for c in text:
            col = pd.read_parquet(path, columns=[c])[c]
            h = pd.Series(pd.util.hash_pandas_object(col, index=False).to_numpy(), dtype="UInt64")
            h[col.isna().to_numpy()] = pd.NA
            df[c] = h
        return df

    def diff_frames(self, a: str, b: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        keys = DIFF_KEYS["judgments"]
        fa = self.root / "data" / a / "judgments.parquet"
        fb = self.root / "data" / b / "judgments.parquet"
        return self._read_hashed(fa, keys), self._read_hashed(fb, keys)

    def diff(self, a: str, b: str) -> dict[str, int]:
        keys = DIFF_KEYS["judgments"]
        da, db = self.diff_frames(a, b)
        ignore = set(iteration_ignores("judgments", list(da.columns), keys))
        cols = [c for c in da.columns if c in db.columns and c not in keys and c not in ignore]
        m = da.merge(db, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
        both = m[m["_merge"] == "both"]
        changed = np.zeros(len(both), dtype=bool)
        for c in cols:
            x, y = both[f"{c}_a"], both[f"{c}_b"]
            same = (x == y).fillna(False).to_numpy(dtype=bool) | (x.isna() & y.isna()).to_numpy()
            changed |= ~same
        return {"added": int((m["_merge"] == "right_only").sum()), "removed": int((m["_merge"] == "left_only").sum()), "changed": int(changed.sum())}


class PandasWholeFiles(PandasReports):
    """The same reports as one writes them without judgeloop: read the files whole, then select columns.

    `pd.concat(pd.read_parquet(f) for f in glob)` per report, every column
    (judgment text included); the diff reads both files whole and merges.
    """

    label = "whole files"

    def __init__(self, root: Path):
        super().__init__(root)
        self._last: tuple[str, pd.DataFrame] | None = None

    def _whole(self, kind: str) -> pd.DataFrame:
        frames = []
        for f in self.files(kind):
            df = pd.read_parquet(f)
            if "iteration" not in df.columns:
                df["iteration"] = Path(f).parent.name
            frames.append(df)
        df = pd.concat(frames, ignore_index=True)
        self._last = (kind, df)  # kept for a read_where in the same report (parse_failures)
        return df

    def read_pairs(self, columns: list[str]) -> pd.DataFrame:
        return pd.read_parquet(self.root / "data" / "pairs.parquet")[columns]

    def read(self, kind: str, columns: list[str]) -> pd.DataFrame:
        return self._whole(kind)[list(dict.fromkeys([*columns, "iteration"]))]

    def read_where(self, kind: str, columns: list[str], condition: tuple) -> pd.DataFrame:
        col, op, values = condition
        assert op == "in"
        # what one writes: filter the frame already loaded for this report, no second read
        df = self._last[1] if self._last is not None and self._last[0] == kind else self._whole(kind)
        self._last = None
        return df[df[col].isin(values)][list(dict.fromkeys([*columns, "iteration"]))]

    def diff_frames(self, a: str, b: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        return (pd.read_parquet(self.root / "data" / a / "judgments.parquet"),
                pd.read_parquet(self.root / "data" / b / "judgments.parquet"))


PANDAS_VARIANTS: dict[str, type[PandasReports]] = {"whole": PandasWholeFiles, "projecting": PandasReports}


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# ---------------------------------------------------------------- comparing results

# key columns and value columns checked between judgeloop and pandas, per report
CHECKS: dict[str, tuple[list[str], list[str]]] = {
    "funnel": (["iteration"], ["judgments", "kept", "sft_rows"]),
    "keep_rate_by_category": (["iteration", "category"], ["judged_pairs", "kept_pairs", "keep_rate"]),
    "position_bias": (
        ["iteration", "order"],
        ["judgments", "with_verdict", "verdict_rate", "a_rate", "accuracy", "pairs_both_orders", "consistent_pairs", "consistency"],
    ),
    "parse_failures": (["iteration", "parse_status"], ["judgments", "rate", "forced_verdicts"]),
    "length_bias": (["iteration"], ["judged", "picked_longer_rate", "correct_is_longer_rate", "sft_examples", "sft_picked_longer_rate"]),
    "dpo_pairs": (["iteration"], ["groups", "groups_mixed", "combinations_possible"]),
    "sample_agreement": (["iteration"], ["groups", "samples_per_group", "mean_agreement", "mean_agreement_verdicts", "unanimous_rate"]),
    "verdict_change": (["iteration_a", "iteration_b"], ["compared", "unchanged", "changed", "became_correct", "became_wrong"]),
}


def same_numbers(ours: pd.DataFrame, theirs: pd.DataFrame, keys: list[str], values: list[str]) -> bool:
    if len(ours) != len(theirs):
        return False
    m = ours[keys + values].merge(theirs[keys + values], on=keys, suffixes=("_j", "_p"))
    if len(m) != len(ours):
        return False
    for c in values:
        x = pd.to_numeric(m[f"{c}_j"], errors="coerce").astype(float).to_numpy()
        y = pd.to_numeric(m[f"{c}_p"], errors="coerce").astype(float).to_numpy()
        if not np.allclose(x, y, atol=2e-4, equal_nan=True):
            return False
    return True


# ---------------------------------------------------------------- running


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        out = None  # drop the previous result before the next run
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# The measured sides, in the order they run; the pandas ones are PANDAS_VARIANTS' keys.
SIDES = ("judgeloop", "projecting", "whole")
SIDE_LABELS = {"judgeloop": "judgeloop", "projecting": "pandas, projecting", "whole": "pandas, whole files"}
DIFF = "diff"


def _work(side: str, root: str, name: str, a: str, b: str) -> Any:
    """One report (or the diff) by one side; the result, for comparing the numbers."""
    if side == "judgeloop":
        if name == DIFF:
            res = diff_iterations(root, "judgments", a, b, sample=5)
            return {"added": res.added, "removed": res.removed, "changed": res.changed}
        con = audit.open_audit(root)
        try:
            return audit.run_report(con, name).to_arrow_table().to_pandas()
        finally:
            con.close()
    reports = PANDAS_VARIANTS[side](Path(root))
    return reports.diff(a, b) if name == DIFF else getattr(reports, name)()


def _child(conn, side: str, root: str, name: str, a: str, b: str, repeat: int) -> None:
    """Runs in a fresh process: say when the timed part starts, then send (seconds, result, peak RSS)."""
    try:
        conn.send(("start", None))
        secs, out = timed(lambda: _work(side, root, name, a, b), repeat)
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec from the parent
        conn.send(("ok", (secs, out, _proc_status(os.getpid(), "VmHWM"))))
    except MemoryError:  # includes pyarrow's ArrowMemoryError
        conn.send(("oom", traceback.format_exc(limit=3)))
    except BaseException:  # noqa: BLE001 - reported to the parent, which prints it
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _proc_status(pid: int, field: str) -> int:
    """A memory field of /proc/PID/status (VmRSS, VmHWM) in bytes; 0 when gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(side: str, root: Path, name: str, a: str, b: str, repeat: int, cap: int, floor: int) -> dict[str, Any]:
    """Run one measurement in a spawned process under a memory cap.

    The parent polls the child's RSS every 20 ms and kills it above `cap`
    bytes, or when the machine's available memory falls below `floor` (other
    jobs share it). Returns status ok / oom / low_memory / error, seconds (the
    timed part; for a killed run, how long it had run), peak_gb, result.
    """
    import importlib

    target = importlib.import_module("benchmarks.audit_bench")._child  # importable by name in the child
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(send, side, str(root), name, a, b, repeat), daemon=True)
    proc.start()
    send.close()
    started, peak = None, 0
    out: dict[str, Any] = {"status": "error", "seconds": None, "peak_gb": None, "result": None, "detail": None}
    try:
        while True:
            if recv.poll(0.02):
                try:
                    kind, payload = recv.recv()
                except EOFError:
                    out["detail"] = f"the process died (exit code {proc.exitcode})"
                    break
                if kind == "start":
                    started = time.perf_counter()
                    continue
                if kind == "ok":
                    secs, res, child_peak = payload
                    out.update(status="ok", seconds=secs, result=res)
                    peak = max(peak, child_peak)
                else:
                    out.update(status=kind, detail=payload)
                    if started is not None:
                        out["seconds"] = time.perf_counter() - started
                break
            rss = _proc_status(proc.pid, "VmRSS")
            peak = max(peak, rss)
            low = _available_ram() < floor
            if rss > cap or low:
                proc.kill()
                out.update(status="low_memory" if low and rss <= cap else "oom",
                           seconds=None if started is None else time.perf_counter() - started,
                           detail=f"killed at {rss / 2**30:.1f} GB RSS" + (
                               f", {_available_ram() / 2**30:.1f} GB available on the machine" if low else ""))
                break
            if not proc.is_alive() and not recv.poll():
                out["detail"] = f"the process died (exit code {proc.exitcode})"
                break
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        recv.close()
    out["peak_gb"] = round(peak / 2**30, 2)
    return out


def _cell(m: dict[str, Any]) -> str:
    if m["status"] == "ok":
        return f"{m['seconds']:.2f} s, {m['peak_gb']:.1f} GB"
    if m["status"] in ("oom", "low_memory"):
        what = "out of memory" if m["status"] == "oom" else "stopped, machine low on memory"
        after = "" if m["seconds"] is None else f" after {m['seconds']:.1f} s"
        return f"{what} at {m['peak_gb']:.1f} GB{after}"
    return "error"


def run(
    rows: int, iterations: int, samples: int, repeat: int, workdir: Path | None, keep: bool, sides: tuple[str, ...],
    row_group_size: int = ROW_GROUP_SIZE, mem_cap_gb: float = 10.0, min_available_gb: float = 1.5,
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="judgeloop-bench-", dir=workdir))
    cap, floor = int(mem_cap_gb * 2**30), int(min_available_gb * 2**30)
    try:
        t0 = time.perf_counter()
        info = generate(tmp, rows, iterations, samples, row_group_size)
        gen_s = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in tmp.rglob("*.parquet"))
        print(f"generated {info['judgments']:,} judgments ({info['pairs']:,} pairs x 2 orders x {samples} samples x "
              f"{iterations} iterations), {size / 1e6:.0f} MB of Parquet (row groups of {row_group_size:,} rows) "
              f"in {gen_s:.1f} s under {tmp}", flush=True)

        a, b = "it1", "it2" if iterations > 1 else "it1"
        results = []
        for name in [*audit.REPORTS, DIFF]:
            label = name if name != DIFF else f"diff judgments {a} {b}"
            row: dict[str, Any] = {"report": label}
            for side in sides:
                m = measure(side, tmp, name, a, b, repeat, cap, floor)
                res = m.pop("result")
                if side == "judgeloop":
                    ours = res
                    m["rows_out"] = res if name == DIFF else (None if res is None else len(res))
                elif m["status"] == "ok" and ours is not None:
                    if name == DIFF:
                        m["match"] = ours == res
                    else:
                        keys, values = CHECKS[name]
                        m["match"] = same_numbers(ours, res, keys, values)
                    m["ratio"] = m["seconds"] / row["judgeloop"]["seconds"]
                elif m["status"] in ("oom", "low_memory") and m["seconds"] and ours is not None:
                    m["ratio_at_least"] = m["seconds"] / row["judgeloop"]["seconds"]
                row[side] = m
                extra = ""
                if "match" in m:
                    extra = f", same numbers: {m['match']}, ratio {m['ratio']:.1f}x"
                elif "ratio_at_least" in m:
                    extra = f", ratio >= {m['ratio_at_least']:.1f}x"
                print(f"  {label} / {SIDE_LABELS[side]}: {_cell(m)}{extra}"
                      + (f"\n    {m['detail'].strip().splitlines()[-1]}" if m.get("detail") else ""), flush=True)
            results.append(row)
        return {
            "rows": info["judgments"], "requested_rows": rows, "pairs": info["pairs"], "iterations": iterations, "samples": samples,
            "row_group_size": row_group_size, "parquet_mb": round(size / 1e6, 1), "generate_s": round(gen_s, 2), "repeat": repeat,
            "mem_cap_gb": mem_cap_gb, "sides": list(sides), "results": results,
        }
    finally:
        if keep:
            print(f"kept the data in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _ratio(m: dict[str, Any] | None) -> str:
    if not m:
        return "-"
    if "ratio" in m:
        return f"{m['ratio']:.1f}x"
    if "ratio_at_least" in m:
        return f">={m['ratio_at_least']:.1f}x"
    return "-"


def _secs(m: dict[str, Any] | None) -> str:
    if not m:
        return "-"
    if m["status"] == "ok":
        return f"{m['seconds']:.2f}"
    return {"oom": "OOM", "low_memory": "stopped"}.get(m["status"], "error")


def _same(m: dict[str, Any] | None) -> str:
    if not m or "match" not in m:
        return "-"
    return "yes" if m["match"] else "NO"


def render(report: dict[str, Any]) -> str:
    cols = [("report", 24, "<"), ("judgeloop s", 11, ">"), ("GB", 4, ">"),
            ("proj. s", 8, ">"), ("GB", 4, ">"), ("ratio", 6, ">"), ("same", 4, ">"),
            ("whole s", 8, ">"), ("GB", 4, ">"), ("ratio", 7, ">"), ("same", 4, ">")]
    head = "  ".join(f"{h:{al}{w}}" for h, w, al in cols)
    lines = [f"{report['rows']:,} judgment rows, {report['parquet_mb']:,.0f} MB of Parquet; "
             f"load average at start {report['machine']['load_avg_at_start'][0]:.2f}", head, "-" * len(head)]
    for r in report["results"]:
        j, pp, pw = r.get("judgeloop"), r.get("projecting"), r.get("whole")
        gb = lambda m: "-" if not m or m["peak_gb"] is None else f"{m['peak_gb']:.1f}"  # noqa: E731
        cells = [r["report"], _secs(j), gb(j), _secs(pp), gb(pp), _ratio(pp), _same(pp), _secs(pw), gb(pw), _ratio(pw), _same(pw)]
        lines.append("  ".join(f"{c:{al}{w}}" for c, (_, w, al) in zip(cells, cols)))
    lines += [
        "proj.: pandas reading only the columns each report needs (pyarrow projection; the diff hashes text per column)",
        "whole: pandas reading the files whole, every column (pd.concat of pd.read_parquet per file; the diff merges both files)",
        "ratio = pandas time / judgeloop time (higher: judgeloop faster); GB = the process's peak RSS;",
        f"each cell a fresh process, killed as OOM above {report['mem_cap_gb']:g} GB (>=: it had run that long, a lower bound)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.audit_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="judgment rows in all (default 10M)")
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--samples", type=int, default=4, help="samples per pair and order")
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement; the fastest counts")
    ap.add_argument(
        "--row-group-size", type=int, default=ROW_GROUP_SIZE,
        help=f"Parquet row group size (default {ROW_GROUP_SIZE:,} rows: what judgeloop.io.write_parquet writes). "
        "DuckDB scans one row group per thread",
    )
    ap.add_argument("--workdir", type=Path, help="where to put the temporary project (default: the system temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    ap.add_argument("--skip-pandas", action="store_true", help="time judgeloop only")
    ap.add_argument("--skip-whole", action="store_true", help="skip the whole-file pandas variant")
    ap.add_argument("--mem-cap-gb", type=float, default=10.0, help="kill a measurement whose RSS exceeds this (default 10)")
    ap.add_argument("--min-available-gb", type=float, default=1.5,
                    help="also stop a measurement when the machine's available memory falls below this (default 1.5)")
    ap.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "audit_bench.json")
    args = ap.parse_args(argv)

    load_at_start = os.getloadavg()
    sides = ("judgeloop",) if args.skip_pandas else tuple(s for s in SIDES if not (args.skip_whole and s == "whole"))
    report = run(
        args.rows, args.iterations, args.samples, args.repeat, args.workdir, args.keep, sides, args.row_group_size,
        args.mem_cap_gb, args.min_available_gb,
    )
    report["machine"] = {
        "platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count(),
        "duckdb": duckdb.__version__, "pandas": pd.__version__,
        "duckdb_threads": duckdb.connect().execute("SELECT current_setting('threads')").fetchall()[0][0],
        "load_avg_at_start": load_at_start,
    }
    return finish(report, render(report), args.output)


if __name__ == "__main__":
    sys.exit(main())
