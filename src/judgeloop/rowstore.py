"""Rows of Parquet files fetched by position, and training texts rendered column-wise (for curation.py).

`Rows` reads only the row groups that hold the rows asked for; `RowGroups`
decodes each row group once for the SFT and DPO builders on their two
threads. `PairTexts` renders judge prompts column-wise with the judge
template itself (checked against `templates.judge_messages`), and
`completions` is `curation.training_completion` column-wise.
"""

from __future__ import annotations

import contextlib
import string
import threading
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .parsing import canonical_verdict_line
from .templates import JUDGE_TEMPLATES, judge_messages

# the characters Python's str.rstrip() removes (str.isspace), for the columnar rstrip
PY_WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_VERDICT_HEAD, _VERDICT_TAIL = canonical_verdict_line("\0").split("\0")


@lru_cache(maxsize=4)
def template_parts(template: str) -> tuple[str, ...]:
    """A judge template as (literal, field, literal, field, ...) for columnar formatting."""
    text = JUDGE_TEMPLATES[template]
    parts: list[str] = []
    for literal, field, spec, conv in string.Formatter().parse(text):
        parts.append(literal)
        if field is not None:
            if spec or conv or field not in ("instruction", "response_a", "response_b"):
                raise ValueError(f"judge template {template!r}: field {{{field}}} cannot be filled column-wise")
            parts.append(field)
    # the columnar prompt must be exactly what judge_messages sends
    probe = dict(zip(("instruction", "response_a", "response_b"), "\x01\x02\x03"))
    assert judge_messages(*probe.values(), template)[0]["content"] == "".join(
        probe[p] if i % 2 else p for i, p in enumerate(parts))
    return tuple(parts)


class RowGroups:
    """Row groups of one Parquet file, decoded once for several consumers (the SFT and DPO builders,
    each on its own thread, walk the judgments and pairs files in about the same order).

    A group stays cached until every consumer still running has asked for a later one; a consumer
    more than WINDOW groups ahead of another waits for it, so at most about WINDOW + 2 groups are
    held. (Two consumers cannot both wait: each would have to be more than WINDOW groups ahead of
    the other.) A consumer that comes back to an evicted group (a file far from the output order)
    reads it again. `done` releases a consumer that finished or failed.
    """

    WINDOW = 2

    def __init__(self, path: str | Path, columns: list[str], consumers: tuple[str, ...]):
        self.path, self.columns = path, columns
        self.cond = threading.Condition()
        self.at = {c: -1 for c in consumers}  # the row group each consumer last asked for
        self.finished: set[str] = set()
        self.cache: dict[int, pa.Table] = {}
        self.loading: set[int] = set()
        self.local = threading.local()

    def _running(self) -> list[str]:
        return [c for c in self.at if c not in self.finished]

    def _evict(self) -> None:
        running = self._running()
        low = min((self.at[c] for c in running), default=None)
        for g in [g for g in self.cache if low is None or g < low]:
            del self.cache[g]

    def get(self, g: int, who: str) -> pa.Table:
        with self.cond:
            self.at[who] = g
            self._evict()
            self.cond.notify_all()
            self.cond.wait_for(lambda: all(g <= self.at[o] + self.WINDOW for o in self._running() if o != who)
                               and g not in self.loading)
            if g in self.cache:
                return self.cache[g]
            self.loading.add(g)
        try:
            if getattr(self.local, "file", None) is None:
                self.local.file = pq.ParquetFile(self.path)  # a reader per thread
            with names_the_file(self.path):
                t = self.local.file.read_row_group(g, columns=self.columns)
        finally:
            with self.cond:
                self.loading.discard(g)
                self.cond.notify_all()
        with self.cond:
            if any(o != who for o in self._running()):
                self.cache[g] = t
                self._evict()
        return t

    def done(self, who: str) -> None:
        with self.cond:
            self.finished.add(who)
            self._evict()
            self.cond.notify_all()


class Rows:
    """Rows of a table fetched by position: from memory, or from a Parquet file reading only the
    row groups that hold them (a file written in about the output's order is read about once)."""

    def __init__(self, columns: list[str], table: pa.Table | None = None, path: str | Path | None = None,
                 consumers: tuple[str, ...] = ()):
        self.columns, self.table, self.path = columns, table, path
        self.groups = RowGroups(path, columns, consumers) if path is not None and consumers else None
        if table is None:
            f = pq.ParquetFile(path)
            md = f.metadata
            self.schema = f.schema_arrow
            self.starts = np.cumsum([0] + [md.row_group(g).num_rows for g in range(md.num_row_groups)])
            names = self.schema.names
            size = sum(md.row_group(g).column(i).total_uncompressed_size
                       for g in range(md.num_row_groups) for i, n in enumerate(names) if n in columns)
            self.row_bytes = size / max(1, md.num_rows)
        else:
            self.row_bytes = table.nbytes / max(1, table.num_rows)

    def fetch(self, positions: np.ndarray, who: str | None = None) -> pa.Table:
        """The rows at `positions` (ascending, distinct), in that order; `who`: the consumer asking."""
        if self.table is not None:
            return self.table.select(self.columns).take(pa.array(positions, pa.int64()))
        parts = []
        file = None
        for g in range(len(self.starts) - 1):
            lo, hi = np.searchsorted(positions, [self.starts[g], self.starts[g + 1]])
            if hi > lo:
                if self.groups is not None and who is not None:
                    t = self.groups.get(g, who)
                else:
                    file = file or pq.ParquetFile(self.path)  # a reader per call: callers may be on threads
                    with names_the_file(self.path):
                        t = file.read_row_group(g, columns=self.columns)
                parts.append(t.take(pa.array(positions[lo:hi] - self.starts[g])))
        if not parts:
            return self.schema.empty_table().select(self.columns)
        return pa.concat_tables(parts)


class Slab:
    """Fetched rows, looked up by the positions they were fetched for."""

    def __init__(self, rows: Rows, positions: np.ndarray, who: str | None = None):
        self.keys = np.unique(positions)
        # one chunk per column: a take from a many-chunked column would concatenate the whole slab every time
        self.table = rows.fetch(self.keys, who).combine_chunks()
        self._both: pa.Array | None = None  # see responses()

    def index(self, positions: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.keys, positions)

    def column(self, name: str, positions: np.ndarray) -> pa.Array:
        return self.take(name, self.index(positions))

    def take(self, name: str, idx: np.ndarray) -> pa.Array:
        """Rows `idx` of a column: a zero-copy slice when they are a run of consecutive rows."""
        col = whole(self.table.column(name))
        if len(idx) and idx[-1] - idx[0] == len(idx) - 1 and (len(idx) == 1 or bool(np.all(np.diff(idx) == 1))):
            return col.slice(int(idx[0]), len(idx))
        return col.take(pa.array(idx, pa.int64()))

    def responses(self) -> pa.Array:
        """[response_w; response_l] of the slab as one array (pairs slabs only), built once."""
        if self._both is None:
            w, l_ = whole(self.table.column("response_w")), whole(self.table.column("response_l"))
            if w.nbytes + l_.nbytes >= 1 << 31:  # past 32-bit string offsets
                w, l_ = w.cast(pa.large_string()), l_.cast(pa.large_string())
            self._both = pa.concat_arrays([w, l_])
        return self._both


class PairTexts:
    """The pairs' texts, looked up by pair_id (the last row wins on a duplicate id, like a dict)."""

    def __init__(self, pair_ids: pa.Table, rows: Rows, template: str = "standard"):
        ids = pl.from_arrow(pair_ids.select(["pair_id"])).with_row_index("row")
        self.index = ids.unique(subset="pair_id", keep="last", maintain_order=True)
        self.rows = rows
        self.parts = template_parts(template)

    def rows_of(self, pair_ids: pl.Series) -> np.ndarray:
        m = pl.DataFrame({"pair_id": pair_ids}).join(self.index, on="pair_id", how="left", maintain_order="left",
                                                      nulls_equal=True)
        if m["row"].null_count():
            missing = m.filter(pl.col("row").is_null())["pair_id"].head(5).to_list()
            raise ValueError(f"judged pairs missing from the pairs table: {missing}")
        return m["row"].to_numpy().astype(np.int64)

    def prompts(self, slab: Slab, rows: np.ndarray, order: pa.Array) -> pa.Array:
        idx = slab.index(rows)
        wl = pc.fill_null(pc.equal(order, "wl"), False).to_numpy(zero_copy_only=False)
        # response_a/_b taken straight from [response_w; response_l] (one copy each, no if_else copies)
        both = slab.responses()
        n = slab.table.num_rows
        fields = {"instruction": slab.take("instruction", idx),
                  "response_a": both.take(pa.array(np.where(wl, idx, idx + n), pa.int64())).cast(pa.string()),
                  "response_b": both.take(pa.array(np.where(wl, idx + n, idx), pa.int64())).cast(pa.string())}
        args = [fields[p] if i % 2 else pa.scalar(p) for i, p in enumerate(self.parts)]
        return whole(pc.binary_join_element_wise(*args, ""))


def whole(x: pa.Array | pa.ChunkedArray) -> pa.Array:
    return x.combine_chunks() if isinstance(x, pa.ChunkedArray) else x


def completions(text: pa.Array, verdict: pa.Array, source: pa.Array, forced_text: str = "keep") -> pa.Array:
    """training_completion column-wise: forced verdicts (with a verdict) get the canonical line."""
    forced = pc.and_(pc.fill_null(pc.equal(source, "forced"), False), pc.is_valid(verdict))
    kept = () if forced_text == "drop" else (pc.utf8_rtrim(text, characters=PY_WHITESPACE), "\n\n")
    canon = pc.binary_join_element_wise(*kept, _VERDICT_HEAD, verdict, _VERDICT_TAIL, "")
    return whole(pc.if_else(forced, canon, text))


UNREADABLE = (pa.lib.ArrowException, OSError, pl.exceptions.PolarsError)


@contextlib.contextmanager
def names_the_file(path: str | Path) -> Iterator[None]:
    """A corrupted page read mid-way fails naming the file, like io.read_parquet."""
    try:
        yield
    except UNREADABLE as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable Parquet file ({e}); re-run the stage that writes it") from None
