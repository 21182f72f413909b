"""Row-level diff of a dataset: between two iterations, or two revisions of one file.

`diff_datasets(kind, a, b, key_cols)` compares two tables (Parquet paths or
in-memory Arrow/pandas/polars tables) on a key and returns a `DiffResult`:
rows added / removed / changed, which columns changed how often, a few
example rows of each, schema changes, and per-column summary deltas (null
rate, mean length of text columns, verdict distribution and transitions).
All of it is computed by DuckDB: narrow scans of the key and verdict
columns, then one pass that reads every column once and joins the two sides
on the key (text compared by a 64-bit hash, so the join carries no text),
then a look-up of the few sampled changed rows. Memory stays bounded and it
scales to millions of rows; Python only touches the sample rows it prints.
The key must be unique and non-NULL on both sides (checked, with a message).

Two ways to pick the two sides (`judgeloop diff`):

- iterations: `--kind judgments --a it1 --b it2` reads data/it1/judgments.parquet
  and data/it2/judgments.parquet. Columns that differ between iterations by
  construction (iteration, judge identity, seeds, ids derived from the
  iteration) are left out of the comparison by default and shown separately.
- revisions: `--path data/it1/judgments.parquet --rev-a HEAD~1 --rev-b HEAD`
  (or `--kind judgments --iteration it1`). Old versions of DVC outputs are
  not in git, only their hashes are, so they are read through
  `dvc.api.open(path, repo=root, rev=rev)`; `workspace` is the file on disk.

Exit status of the command: 0 identical, 1 different, 2 error.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from .datasets import DATASETS, FILES
from .sql import ident as _q
from .sql import literal as _lit

# The key of a row when comparing one dataset kind across iterations or revisions
# (datasets.py; ids of per-iteration kinds embed the iteration name, so across
# iterations the natural key is what the id is made of).
DIFF_KEYS: dict[str, list[str]] = {k: list(d.diff_key) for k, d in FILES.items()}
# Likert (Self-Rationalization) iterations write the same file names with
# other columns: their rows are items, not pairs and orders.
VARIANT_KEYS: dict[str, list[str]] = {d.variant_of: list(d.diff_key) for d in DATASETS.values() if d.variant_of}
PER_ITERATION_KINDS = [k for k, d in FILES.items() if d.per_iteration]
WORKSPACE = "workspace"

# Columns that differ between two iterations by construction: the iteration,
# the judge that produced the rows, seeds derived from the iteration name.
# Ids (any *_id column that is not part of the key) embed the iteration too.
ITERATION_COLUMNS = {"iteration", "judge", "judge_model", "judge_hash", "seed"}

_TEXT_PREVIEW = 60


class DiffError(Exception):
    """The diff cannot be computed; the message names the file or revision."""


@dataclass
class DiffResult:
    kind: str
    label_a: str
    label_b: str
    key_cols: list[str]
    rows_a: int = 0
    rows_b: int = 0
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    compared_columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    added_columns: dict[str, str] = field(default_factory=dict)  # only in b: name -> type
    removed_columns: dict[str, str] = field(default_factory=dict)  # only in a
    type_changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    column_changes: dict[str, int] = field(default_factory=dict)  # rows whose value changed, per column
    verdicts_a: dict[str, int] = field(default_factory=dict)
    verdicts_b: dict[str, int] = field(default_factory=dict)
    verdict_transitions: dict[str, int] = field(default_factory=dict)  # "A->B": rows, among matched rows
    column_summary: list[dict[str, Any]] = field(default_factory=list)
    ignored_values: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # col -> side -> min/max/approx_distinct
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return not (
            self.added or self.removed or self.changed or self.added_columns or self.removed_columns or self.type_changes
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"identical": self.identical}


# ---------------------------------------------------------------- the comparison


def _register(con: duckdb.DuckDBPyConnection, name: str, source: Any) -> None:
    """Make `source` (a Parquet path or an Arrow/pandas/polars table) the view `name`."""
    if isinstance(source, (str, Path)):
        con.execute(f"CREATE VIEW {_q(name)} AS SELECT * FROM read_parquet({_lit(str(source))})")
    else:
        con.register(name, source)


def _columns(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {_q(name)}").fetchall()}


def _is_text(t: str) -> bool:
    return t.upper() == "VARCHAR"


# Types compared by value; anything else (text, blobs, lists, structs) is
# compared by a 64-bit hash computed before the join, so the join carries
# fixed-width values instead of kilobytes of judgment text per row. (A hash
# collision could hide a change with probability ~2**-64 per row.)
_BY_VALUE = {
    "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "FLOAT", "DOUBLE", "DATE", "TIME", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "INTERVAL",
}


def _preview(v: Any) -> Any:
    if isinstance(v, str):
        v = " ".join(v.split())
        return v if len(v) <= _TEXT_PREVIEW else v[: _TEXT_PREVIEW - 1] + "…"
    return v


def _same(x: Any, y: Any) -> bool:
    # Python mirror of IS NOT DISTINCT FROM for the few sample rows (NaN == NaN there).
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return x == y


def _check_unique(con: duckdb.DuckDBPyConnection, name: str, label: str, keys: list[str]) -> None:
    """The key must identify rows: no NULLs (so plain `=` joins, which DuckDB can
    push into the Parquet scans, are exact) and no duplicates."""
    k = ", ".join(_q(c) for c in keys)
    any_null = " OR ".join(f"{_q(c)} IS NULL" for c in keys)
    nulls = con.execute(f"SELECT count(*) FILTER (WHERE {any_null}) FROM {_q(name)}").fetchall()[0][0]
    if nulls:
        raise DiffError(f"{label}: {nulls} rows have a NULL in the key ({', '.join(keys)}); pass --key")
    found = con.execute(f"SELECT {k}, count(*) AS n FROM {_q(name)} GROUP BY ALL HAVING count(*) > 1 LIMIT 1").fetchall()
    if found:
        dup = found[0]
        shown = ", ".join(f"{c}={v!r}" for c, v in zip(keys, dup[:-1]))
        raise DiffError(f"{label}: the key ({', '.join(keys)}) is not unique: {dup[-1]} rows have {shown}; pass --key")


def diff_datasets(
    kind: str,
    a_table: Any,
    b_table: Any,
    key_cols: list[str] | None = None,
    *,
    ignore: list[str] | tuple[str, ...] = (),
    label_a: str = "a",
    label_b: str = "b",
    sample: int = 5,
) -> DiffResult:
    """Compare two versions of a `kind` dataset on `key_cols` (default: DIFF_KEYS[kind]).

    `a_table`/`b_table`: a Parquet path, or an Arrow table / pandas / polars
    frame. `ignore`: columns left out of the row comparison (their range of
    values is still reported).
    """
    keys = list(key_cols or DIFF_KEYS.get(kind) or [])
    if not keys:
        raise DiffError(f"no key for kind {kind!r}; pass key_cols")
    con = duckdb.connect(":memory:")
    con.execute("SET enable_progress_bar = false")  # no bar mixed into the output of long queries
    try:
        _register(con, "src_a", a_table)
        _register(con, "src_b", b_table)
        cols_a, cols_b = _columns(con, "src_a"), _columns(con, "src_b")
        for label, cols in ((label_a, cols_a), (label_b, cols_b)):
            missing = [k for k in keys if k not in cols]
            if missing:
                raise DiffError(f"{label}: key columns {missing} not in the table (columns: {list(cols)})")
        _check_unique(con, "src_a", label_a, keys)
        _check_unique(con, "src_b", label_b, keys)

        res = DiffResult(kind=kind, label_a=label_a, label_b=label_b, key_cols=keys)
        common = [c for c in cols_a if c in cols_b]
        res.added_columns = {c: t for c, t in cols_b.items() if c not in cols_a}
        res.removed_columns = {c: t for c, t in cols_a.items() if c not in cols_b}
        res.type_changes = {c: (cols_a[c], cols_b[c]) for c in common if cols_a[c] != cols_b[c]}
        res.ignored_columns = [c for c in common if c in set(ignore) and c not in keys]
        res.compared_columns = [c for c in common if c not in keys and c not in res.ignored_columns]

        _main_pass(con, res, cols_a, cols_b, sample)
        if res.samples["changed"]:
            _changed_values(con, res)
        _ignored_values(con, res)
        return res
    except duckdb.Error as e:
        raise DiffError(f"{kind} {label_a} vs {label_b}: {e}") from None
    finally:
        con.close()


def _verdicts(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, int]:
    rows = con.execute(
        f"SELECT coalesce(CAST(verdict AS VARCHAR), '(null)') AS v, count(*) FROM {_q(name)} GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {v: n for v, n in rows}


def _main_pass(con: duckdb.DuckDBPyConnection, res: DiffResult, cols_a: dict, cols_b: dict, sample: int) -> None:
    """Everything but the sample values in one scan of each side and one full outer join.

    Each side is first projected to its keys plus, per column, a comparable
    value (the value, or its hash), and the length of text columns. With
    unique keys every row of a side appears exactly once in the full outer
    join, so the per-side summaries (null rates, mean lengths) are
    aggregates over the join too.
    """
    keys = res.key_cols
    columns = list(dict.fromkeys([*cols_a, *cols_b]))
    idx = {c: i for i, c in enumerate(columns)}

    def project(side: str, cols: dict[str, str]) -> str:
        exprs = [f"{_q(k)} AS {side}k{i}" for i, k in enumerate(keys)]
        exprs.append(f"true AS {side}_in")
        for c, t in cols.items():
            i, e = idx[c], _q(c)
            if c in res.type_changes:  # compared as text on both sides
                e = f"CAST({e} AS VARCHAR)"
            if t.upper() in _BY_VALUE and c not in res.type_changes:
                exprs.append(f"{e} AS {side}h{i}")
            else:
                exprs.append(f"CASE WHEN {e} IS NULL THEN NULL ELSE hash({e}) END AS {side}h{i}")
            if _is_text(t):
                exprs.append(f"length({_q(c)}) AS {side}l{i}")
        if "verdict" in cols:
            exprs.append(f"CAST(verdict AS VARCHAR) AS {side}v")
        return ", ".join(exprs)

    on = " AND ".join(f"ak{i} = bk{i}" for i in range(len(keys)))
    # Per-row flags first (c<i>: column i changed in a matched row), so each
    # aggregate below is a cheap count over a boolean or a nullable column.
    flags = [f"a_in AND b_in AND ah{idx[c]} IS DISTINCT FROM bh{idx[c]} AS c{idx[c]}" for c in res.compared_columns]
    changed = "(" + (" OR ".join(f"c{idx[c]}" for c in res.compared_columns) or "false") + ")"
    aggs: list[tuple[str, str]] = [
        ("rows_a", "count(a_in)"),
        ("rows_b", "count(b_in)"),
        ("removed", "count(*) FILTER (WHERE a_in AND b_in IS NULL)"),
        ("added", "count(*) FILTER (WHERE b_in AND a_in IS NULL)"),
        ("changed", f"count(*) FILTER (WHERE {changed})"),
    ]
    aggs += [(f"chg:{c}", f"count(*) FILTER (WHERE c{idx[c]})") for c in res.compared_columns]
    for side, cols in (("a", cols_a), ("b", cols_b)):
        for c, t in cols.items():
            # h<i> is NULL exactly where the value is NULL (or the row is absent from that side)
            aggs.append((f"present_{side}:{c}", f"count({side}h{idx[c]})"))
            if _is_text(t):
                aggs.append((f"len_{side}:{c}", f"avg({side}l{idx[c]})"))
    transitions: list[tuple[Any, Any]] = []
    if "verdict" in res.compared_columns:
        # Verdict distributions: a narrow scan of one column each (cheap in Parquet).
        res.verdicts_a, res.verdicts_b = _verdicts(con, "src_a"), _verdicts(con, "src_b")
        values = [None if v == "(null)" else v for v in dict.fromkeys([*res.verdicts_a, *res.verdicts_b])]
        if len(values) <= 12:  # a verdict scale, not free text: count each transition in this pass
            transitions = [(x, y) for x in values for y in values if x != y]
    else:
        if "verdict" in cols_a:
            res.verdicts_a = _verdicts(con, "src_a")
        if "verdict" in cols_b:
            res.verdicts_b = _verdicts(con, "src_b")
    for x, y in transitions:
        cx = "av IS NULL" if x is None else f"av = {_lit(str(x))}"
        cy = "bv IS NULL" if y is None else f"bv = {_lit(str(y))}"
        name = f"tr:{'null' if x is None else x}->{'null' if y is None else y}"
        aggs.append((name, f"count(*) FILTER (WHERE a_in AND b_in AND {cx} AND {cy})"))
    if sample > 0:
        # The `sample` smallest keys of each kind of difference, in the same pass.
        ka = "struct_pack(" + ", ".join(f"k{i} := ak{i}" for i in range(len(keys))) + ")"
        kb = "struct_pack(" + ", ".join(f"k{i} := bk{i}" for i in range(len(keys))) + ")"
        n = int(sample)
        aggs += [
            ("sample_removed", f"min({ka}, {n}) FILTER (WHERE a_in AND b_in IS NULL)"),
            ("sample_added", f"min({kb}, {n}) FILTER (WHERE b_in AND a_in IS NULL)"),
            ("sample_changed", f"min({ka}, {n}) FILTER (WHERE {changed})"),
        ]
    sql = (
        f"WITH a AS (SELECT {project('a', cols_a)} FROM src_a), b AS (SELECT {project('b', cols_b)} FROM src_b), "
        f"j AS (SELECT *{''.join(', ' + f for f in flags)} FROM a FULL OUTER JOIN b ON {on}) "
        f"SELECT {', '.join(e for _, e in aggs)} FROM j"
    )
    row = dict(zip([name for name, _ in aggs], con.execute(sql).fetchall()[0]))

    res.rows_a, res.rows_b = row["rows_a"], row["rows_b"]
    res.removed, res.added, res.changed = row["removed"], row["added"], row["changed"]
    res.unchanged = res.rows_a - res.removed - res.changed
    res.column_changes = {c: row[f"chg:{c}"] for c in res.compared_columns if row[f"chg:{c}"]}
    tr = {k[3:]: v for k, v in row.items() if k.startswith("tr:") and v}
    res.verdict_transitions = dict(sorted(tr.items(), key=lambda kv: (-kv[1], kv[0])))
    for c in columns:
        entry: dict[str, Any] = {"column": c}
        for side, cols, n_rows in (("a", cols_a, res.rows_a), ("b", cols_b, res.rows_b)):
            present = row.get(f"present_{side}:{c}")
            entry[f"null_rate_{side}"] = None if present is None else ((n_rows - present) / n_rows if n_rows else 0.0)
            entry[f"mean_len_{side}"] = row.get(f"len_{side}:{c}")
        res.column_summary.append(entry)
    res.samples = {"added": [], "removed": [], "changed": []}
    for what in res.samples:
        for s in row.get(f"sample_{what}") or []:
            res.samples[what].append({k: s[f"k{i}"] for i, k in enumerate(keys)})


def _sql_literal(v: Any) -> str | None:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return _lit(v)
    return None  # other types: no literal, use a registered table


def _changed_values(con: duckdb.DuckDBPyConnection, res: DiffResult) -> None:
    """Fetch both versions of the few sampled changed rows and name what changed."""
    keys = res.key_cols
    wanted = [tuple(s[k] for k in keys) for s in res.samples["changed"]]
    lits = [[_sql_literal(v) for v in row] for row in wanted]
    names = ", ".join(f"s{i}" for i in range(len(keys)))
    if all(x is not None for row in lits for x in row):
        # A literal VALUES list lets DuckDB push the keys' min/max into the
        # Parquet scan and skip row groups, instead of re-reading whole files.
        values = ", ".join("(" + ", ".join(row) + ")" for row in lits)
        keyset = f"(VALUES {values}) s({names})"
    else:
        import pyarrow as pa

        con.register("__sample_keys", pa.table({f"s{i}": [r[i] for r in wanted] for i in range(len(keys))}))
        keyset = "__sample_keys s"
    on = " AND ".join(f"t.{_q(k)} = s.s{i}" for i, k in enumerate(keys))
    cols = ", ".join(_q(c) for c in [*keys, *res.compared_columns])
    found = {}
    for side in ("src_a", "src_b"):
        rows = con.execute(f"SELECT {cols} FROM {side} t SEMI JOIN {keyset} ON {on}").fetchall()
        found[side] = {tuple(r[: len(keys)]): r[len(keys):] for r in rows}
    for entry, k in zip(res.samples["changed"], wanted):
        va, vb = found["src_a"].get(k), found["src_b"].get(k)
        changes = {}
        if va is not None and vb is not None:
            for i, c in enumerate(res.compared_columns):
                if not _same(va[i], vb[i]):
                    changes[c] = [_preview(va[i]), _preview(vb[i])]
        entry["changes"] = changes


def _ignored_values(con: duckdb.DuckDBPyConnection, res: DiffResult) -> None:
    """Range and approximate number of distinct values (HyperLogLog) of the columns not compared."""
    if not res.ignored_columns:
        return
    for side, src in (("a", "src_a"), ("b", "src_b")):
        exprs = []
        for c in res.ignored_columns:
            exprs += [f"min({_q(c)})", f"max({_q(c)})", f"approx_count_distinct({_q(c)})"]
        row = con.execute(f"SELECT {', '.join(exprs)} FROM {src}").fetchall()[0]
        for i, c in enumerate(res.ignored_columns):
            lo, hi, n = row[3 * i: 3 * i + 3]
            res.ignored_values.setdefault(c, {})[side] = {"min": lo, "max": hi, "approx_distinct": int(n or 0)}


# ---------------------------------------------------------------- picking the sides


def default_keys(kind: str, columns: list[str]) -> list[str]:
    """The diff key of `kind` for a file with these columns (pairwise or Likert)."""
    keys = DIFF_KEYS[kind]
    alt = VARIANT_KEYS.get(kind)
    if alt and not set(keys) <= set(columns) and set(alt) <= set(columns):
        return list(alt)
    return list(keys)


def _file_columns(*paths: Path) -> list[str]:
    import pyarrow.parquet as pq

    names: list[str] = []
    for p in paths:
        try:
            names += pq.read_schema(p).names
        except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
            raise DiffError(f"{p}: not a readable Parquet file ({e})") from None
    return list(dict.fromkeys(names))


def iteration_ignores(kind: str, columns: list[str], keys: list[str]) -> list[str]:
    """Columns that differ between iterations by construction (see ITERATION_COLUMNS)."""
    return [c for c in columns if c not in keys and (c in ITERATION_COLUMNS or c.endswith("_id"))]


def dataset_path(kind: str, iteration: str | None = None) -> str:
    """The path of a dataset relative to the project root."""
    if kind not in FILES:
        raise DiffError(f"unknown kind {kind!r}; kinds: {', '.join(DIFF_KEYS)}")
    if FILES[kind].per_iteration and not iteration:
        raise DiffError(f"{kind} is per iteration: name one (--iteration IT, or --a/--b)")
    return FILES[kind].path(iteration)


def kind_of_path(path: str) -> str:
    stem = Path(path).name.split(".")[0]
    if stem not in DIFF_KEYS:
        raise DiffError(f"{path}: cannot tell the dataset kind from the file name; pass --kind ({', '.join(DIFF_KEYS)})")
    return stem


def _existing(root: Path, rel: str, what: str) -> Path:
    p = root / rel
    if not p.is_file():
        raise DiffError(f"{rel}: missing ({what}); has the stage that writes it run? (`dvc repro`)")
    return p


def diff_iterations(
    root: str | Path, kind: str, a: str, b: str, *, key_cols=None, ignore=(), compare_all=False, sample=5
) -> DiffResult:
    """Diff data/<a>/<kind>.parquet against data/<b>/<kind>.parquet."""
    if kind not in PER_ITERATION_KINDS:
        raise DiffError(f"{kind} is one file for all iterations; compare revisions of it (--rev-a/--rev-b)")
    root = Path(root)
    rel_a, rel_b = dataset_path(kind, a), dataset_path(kind, b)
    pa_, pb_ = _existing(root, rel_a, f"iteration {a}"), _existing(root, rel_b, f"iteration {b}")
    names = _file_columns(pa_, pb_)
    keys = list(key_cols or default_keys(kind, names))
    ign = list(ignore)
    if not compare_all:
        ign += iteration_ignores(kind, names, keys)
    return diff_datasets(kind, str(pa_), str(pb_), keys, ignore=ign, label_a=rel_a, label_b=rel_b, sample=sample)


def _materialise_rev(root: Path, rel: str, rev: str, tmpdir: Path) -> Path:
    """A local Parquet file with `rel` as of `rev` (read through DVC), or the workspace file."""
    if rev == WORKSPACE:
        return _existing(root, rel, "workspace")
    try:
        import dvc.api

        dest = tmpdir / f"{rev.replace('/', '_').replace('~', '_').replace('^', '_')}-{Path(rel).name}"
        # Stream to a temp file so DuckDB can scan it lazily (no full read into memory).
        with dvc.api.open(rel, repo=str(root), rev=rev, mode="rb") as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        return dest
    except Exception as e:  # noqa: BLE001 - dvc/scmrepo raise many types; all mean "cannot read it"
        msg = str(e) or type(e).__name__
        raise DiffError(f"{rel}@{rev}: cannot read it through DVC: {msg}") from None


def diff_revisions(
    root: str | Path, rel_path: str, rev_a: str, rev_b: str = WORKSPACE, *, kind=None, key_cols=None, ignore=(), sample=5
) -> DiffResult:
    """Diff one output file between two git revisions (or a revision and the workspace)."""
    root = Path(root).resolve()
    kind = kind or kind_of_path(rel_path)
    with tempfile.TemporaryDirectory(prefix="judgeloop-diff-") as tmp:
        pa_ = _materialise_rev(root, rel_path, rev_a, Path(tmp))
        pb_ = _materialise_rev(root, rel_path, rev_b, Path(tmp))
        key_cols = key_cols or (default_keys(kind, _file_columns(pa_, pb_)) if kind in DIFF_KEYS else None)
        return diff_datasets(
            kind, str(pa_), str(pb_), key_cols, ignore=ignore, label_a=f"{rel_path}@{rev_a}", label_b=f"{rel_path}@{rev_b}",
            sample=sample,
        )


# ---------------------------------------------------------------- rendering


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def render_text(res: DiffResult) -> str:
    """A human-readable report of a DiffResult."""
    lines = [f"diff {res.kind}: {res.label_a} -> {res.label_b}"]
    lines.append(f"key: {', '.join(res.key_cols)}")
    if res.ignored_columns:
        lines.append(f"not compared (differ by construction): {', '.join(res.ignored_columns)}")
    delta = res.rows_b - res.rows_a
    lines.append(f"rows: {res.rows_a} -> {res.rows_b} ({delta:+d})")
    lines.append(f"added {res.added}, removed {res.removed}, changed {res.changed}, unchanged {res.unchanged}")
    lines.append("IDENTICAL" if res.identical else "DIFFERENT")
    if res.added_columns or res.removed_columns or res.type_changes:
        lines.append("schema:")
        lines += [f"  + {c} ({t})" for c, t in res.added_columns.items()]
        lines += [f"  - {c} ({t})" for c, t in res.removed_columns.items()]
        lines += [f"  ~ {c}: {ta} -> {tb}" for c, (ta, tb) in res.type_changes.items()]
    if res.column_changes:
        lines.append("changed rows per column:")
        width = max(len(c) for c in res.column_changes)
        lines += [f"  {c:<{width}}  {n}" for c, n in sorted(res.column_changes.items(), key=lambda kv: -kv[1])]
    if res.verdicts_a or res.verdicts_b:
        lines.append("verdicts:")
        na, nb = max(1, res.rows_a), max(1, res.rows_b)
        for v in sorted(set(res.verdicts_a) | set(res.verdicts_b)):
            a, b = res.verdicts_a.get(v, 0), res.verdicts_b.get(v, 0)
            lines.append(f"  {v:<7} {a:>8} ({_pct(a / na)}) -> {b:>8} ({_pct(b / nb)})")
    if res.verdict_transitions:
        lines.append("verdict transitions (matched rows): " + ", ".join(f"{k} {v}" for k, v in res.verdict_transitions.items()))
    if res.ignored_values:
        lines.append("columns not compared (values a | b):")
        for c, sides in res.ignored_values.items():
            lines.append(f"  {c}: {_range(sides.get('a'))} | {_range(sides.get('b'))}")
    if res.column_summary:
        lines.append("columns (null rate a -> b, mean length a -> b):")
        width = max(len(e["column"]) for e in res.column_summary)
        for e in res.column_summary:
            s = f"  {e['column']:<{width}}  {_pct(e['null_rate_a']):>6} -> {_pct(e['null_rate_b']):>6}"
            if e["mean_len_a"] is not None or e["mean_len_b"] is not None:
                s += f"   {_num(e['mean_len_a']):>8} -> {_num(e['mean_len_b']):>8}"
            lines.append(s.rstrip())
    for what in ("added", "removed", "changed"):
        rows = res.samples.get(what) or []
        if rows:
            lines.append(f"sample {what}:")
            for r in rows:
                key = " ".join(f"{k}={r[k]}" for k in res.key_cols)
                if what == "changed":
                    ch = "; ".join(f"{c}: {va!r} -> {vb!r}" for c, (va, vb) in r["changes"].items())
                    lines.append(f"  {key}: {ch}")
                else:
                    lines.append(f"  {key}")
    return "\n".join(lines) + "\n"


def _range(v: dict[str, Any] | None) -> str:
    if not v or v["min"] is None:
        return "-"
    if v["min"] == v["max"]:
        return repr(_preview(v["min"]))
    return f"{_preview(v['min'])!r} .. {_preview(v['max'])!r}"
