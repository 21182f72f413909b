"""Read-only SQL over every dataset the pipeline wrote: `judgeloop audit`.

`open_audit(root)` returns an in-memory DuckDB connection with one view per
dataset kind, each spanning all iterations through a glob:

    prompts    data/prompts.parquet
    pairs      data/pairs.parquet
    rubrics    data/rubrics.parquet         (Likert items)
    judgments  data/*/judgments.parquet     (pairwise and, for Likert iterations, scored rows)
    sft        data/*/sft.parquet
    dpo        data/*/dpo.parquet
    eval       data/*/eval.parquet          (folder = the judge model: it0, it1, ...)
    curation   stats/*/curation.json      (one row per iteration: the curation funnel)

Every view has an `iteration` column (the folder a file lives in; for
prompts, pairs and rubrics, the `split` that consumes the row) and DuckDB's
`filename`. Files are read with `union_by_name=true`, so a later iteration
with an extra column still unions; every column of the schema in
`judgeloop.schemas` is present even when no file has it (typed NULLs), and a
kind with no files at all is an empty view with the schema's columns, so a
query or canned report never breaks on a missing or empty iteration.

The audit never modifies data. Two independent layers make sure of it:

1. `check_read_only(sql)` parses the text with `duckdb.extract_statements`
   and accepts only SELECT-type statements (SELECT, FROM-first, WITH,
   DESCRIBE, SHOW, SUMMARIZE, VALUES) and EXPLAIN of such a statement.
   COPY, CREATE, INSERT, ATTACH, EXPORT, SET, PRAGMA, INSTALL/LOAD, CALL,
   transactions, PIVOT statements ... are refused with a message that says so.
2. After the views exist, the connection itself is locked down: file access
   is limited to the data/, metrics/ and stats/ folders (plus the real folders of
   files that are symlinks, e.g. a DVC cache), external access and extension
   auto-loading are switched off, and `lock_configuration` stops any later
   SET from undoing that. So even a statement that slipped past layer 1
   could not touch a file outside those folders or load an extension.
   (DuckDB's allowed directories permit writes too, so inside data/ and
   stats/ it is layer 1 that refuses COPY/EXPORT; tests check both layers.)

A Likert iteration's judgments (item_id, score, ...) union into the same
judgments view; the pairwise reports keep to rows with a pair_id.

Canned reports (`REPORTS`) are plain SQL over the views, so
`judgeloop audit --report NAME --show-sql` prints a query you can edit.
A SQL macro `iteration_key(it)` sorts iteration names naturally (it2 < it10).
"""

from __future__ import annotations

import glob
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from .datasets import FILES
from .schemas import SCHEMAS
from .sql import ident as _q
from .sql import literal as _lit

log = logging.getLogger(__name__)

# Where each dataset kind lives, relative to the project root (datasets.py).
SOURCES: dict[str, str] = {k: d.pattern for k, d in FILES.items()}
CURATION_SOURCE = "stats/*/curation.json"

# Kinds stored one file per iteration folder; the folder name is the iteration.
PER_ITERATION = {k for k, d in FILES.items() if d.per_iteration}

# The curation funnel keys (see curation.curate_sft). They are not a Parquet
# schema, but the funnel report needs them to exist even in old or empty runs.
CURATION_COLUMNS = [
    ("judgments", "BIGINT"),
    ("groups", "BIGINT"),
    ("unparsed_text", "BIGINT"),
    ("no_verdict", "BIGINT"),
    ("correct", "BIGINT"),
    ("removed_incorrect_or_no_verdict", "BIGINT"),
    ("groups_without_correct", "BIGINT"),
    ("groups_below_min_correct_fraction", "BIGINT"),
    ("pairs_missing_an_order", "BIGINT"),
    ("one_per_group", "BIGINT"),
    ("a_wins_before_balance", "BIGINT"),
    ("b_wins_before_balance", "BIGINT"),
    ("removed_by_balance", "BIGINT"),
    ("kept", "BIGINT"),
    ("keep_rate_pairs", "DOUBLE"),
    ("empty_reason", "VARCHAR"),
]

VIEWS = [*SOURCES, "curation"]

# Statement types a read-only audit may run. DESCRIBE, SHOW, SUMMARIZE and
# VALUES parse as SELECT; EXPLAIN is checked separately (EXPLAIN ANALYZE runs
# the statement it explains).
_READ_ONLY = {duckdb.StatementType.SELECT}


class AuditError(Exception):
    """A query the audit refuses or cannot run; the message is for the user."""


# ---------------------------------------------------------------- read-only check


def _explained(sql: str) -> str | None:
    """The statement an EXPLAIN explains, or None when it cannot be isolated."""
    import re

    m = re.match(r"\s*explain\b\s*(analyze\b\s*)?", sql, flags=re.IGNORECASE)
    if not m:
        return None
    rest = sql[m.end():]
    candidates = [rest]
    # EXPLAIN (FORMAT json) SELECT ...: drop a leading option list too.
    opt = re.match(r"\([^()]*\)\s*", rest)
    if opt:
        candidates.append(rest[opt.end():])
    for cand in candidates:
        try:
            inner = duckdb.extract_statements(cand)
        except duckdb.Error:
            continue
        if len(inner) == 1:
            return cand
    return None


def check_read_only(sql: str) -> str:
    """Return `sql` if it is one read-only statement; raise AuditError otherwise."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise AuditError(f"cannot parse the query: {e}") from None
    if not statements:
        raise AuditError("empty query")
    if len(statements) > 1:
        raise AuditError(f"one statement at a time please (got {len(statements)})")
    st = statements[0]
    if st.type == duckdb.StatementType.EXPLAIN:
        inner = _explained(sql)
        if inner is None:
            raise AuditError("the audit is read-only: cannot tell what this EXPLAIN explains; EXPLAIN a SELECT")
        check_read_only(inner)
        return sql
    if st.type not in _READ_ONLY:
        kind = st.type.name.replace("_", " ")
        raise AuditError(
            f"the audit is read-only: {kind} statements are not allowed; "
            "only SELECT (and WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN). "
            "To save a result use `judgeloop audit ... --format csv|json|parquet --output FILE`."
        )
    return sql


def query(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyRelation:
    """Check that `sql` is read-only, then run it on an audit connection."""
    check_read_only(sql)
    try:
        return con.sql(sql)
    except duckdb.Error as e:
        used = [reason for view, reason in broken_views(con).items() if re.search(rf"\b{view}\b", sql, re.IGNORECASE)]
        raise AuditError("; ".join(used) if used else str(e)) from None


BROKEN = "__judgeloop_broken_views"


def broken_views(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """{view: why it could not be built} for views left out because a file was unreadable."""
    return dict(con.execute(f"SELECT view, reason FROM {BROKEN}").fetchall())


# ---------------------------------------------------------------- views


def _schema_columns(con: duckdb.DuckDBPyConnection, kind: str) -> list[tuple[str, str]]:
    """(name, DuckDB type) of a kind's schema, as DuckDB would read it from Parquet."""
    if kind == "curation":
        return [("iteration", "VARCHAR"), *CURATION_COLUMNS]  # iteration first: one row per iteration
    schema = SCHEMAS.get(kind)
    if schema is None:  # a kind without a contract yet: only the column every view adds
        return [("iteration", "VARCHAR")]
    # Let DuckDB map the Arrow types, so the mapping stays right when the
    # schemas gain a type this module never heard of.
    # (An empty table built from record batches: Schema.empty_table() imports
    # pandas, which alone took ~0.4 s of every `judgeloop audit`.)
    name = f"__judgeloop_empty_{kind}"
    con.register(name, pa.Table.from_batches([], schema=schema))
    try:
        cols = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {_q(name)}").fetchall()]
    finally:
        con.unregister(name)
    if "iteration" not in {c for c, _ in cols}:
        cols.append(("iteration", "VARCHAR"))
    return cols


def _files(root: Path, pattern: str) -> list[str]:
    return sorted(glob.glob(str(root / pattern)))


def _folder_of(col: str) -> str:
    # The name of the folder holding the file: data/<it>/x.parquet -> <it>.
    # DuckDB evaluates it once per vector (filename is constant per file).
    return f"regexp_extract({col}, '([^/\\\\]+)[/\\\\][^/\\\\]+$', 1)"


def _create_view(con: duckdb.DuckDBPyConnection, view: str, root: Path) -> None:
    want = _schema_columns(con, view)
    if view == "curation":
        pattern = CURATION_SOURCE
        reader = f"read_json_auto({_lit(str(root / pattern))}, filename=true, union_by_name=true, format='auto')"
    else:
        pattern = SOURCES[view]
        reader = f"read_parquet({_lit(str(root / pattern))}, filename=true, union_by_name=true)"

    if not _files(root, pattern):
        # No file yet (dpo before it is written, sft before curation): an empty view with the
        # schema's columns keeps every query and report runnable.
        cols = ", ".join(f"CAST(NULL AS {t}) AS {_q(c)}" for c, t in want)
        con.execute(f"CREATE VIEW {_q(view)} AS SELECT {cols}, CAST(NULL AS VARCHAR) AS filename WHERE false")
        return

    have = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()}
    if view in PER_ITERATION or view == "curation":
        folder = _folder_of("filename")
        # judgments and sft record their iteration; an older file without it
        # (or a NULL) falls back to the folder it was written to.
        iteration = f"coalesce(iteration, {folder})" if "iteration" in have else folder
    else:  # prompts, pairs, rubrics: one file; the split names the iteration using the row
        iteration = "split" if "split" in have else "CAST(NULL AS VARCHAR)"
    # Explicit column list: the contract's columns in schema order (typed NULLs
    # for any no file has yet: drift the other way), then columns only some
    # files have (drift), then DuckDB's filename.
    cols = []
    for c, t in want:
        if c == "iteration":
            cols.append(f"{iteration} AS iteration")
        elif c in have:
            cols.append(_q(c))
        else:
            cols.append(f"CAST(NULL AS {t}) AS {_q(c)}")
    known = {c for c, _ in want} | {"filename"}
    cols += [_q(c) for c in have if c not in known]
    cols.append("filename")
    select = ", ".join(cols)
    con.execute(f"CREATE VIEW {_q(view)} AS SELECT {select} FROM {reader}")


def _dvc_cache_dir(root: Path) -> Path:
    """The project's DVC cache (`cache.dir` in .dvc/config[.local], default .dvc/cache), resolved."""
    import configparser

    cache = root / ".dvc" / "cache"
    for name in ("config", "config.local"):
        cfg = configparser.ConfigParser()
        try:
            cfg.read(root / ".dvc" / name, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue
        if cfg.has_option("cache", "dir"):
            cache = (root / ".dvc" / cfg.get("cache", "dir")).resolve()
    return cache.resolve()


def _allowed_directories(root: Path) -> list[str]:
    """Folders the locked connection may read: data/, metrics/, stats/, and the real
    folders behind symlinked files (DVC's `cache.type symlink`).

    A link may point into the project or into its DVC cache, nowhere else: a
    link to /etc would add /etc to what SQL can read, so the audit refuses to
    open (naming the link) rather than widen its sandbox."""
    cache = _dvc_cache_dir(root)

    def checked(path: str) -> str:
        real = os.path.realpath(path)
        if not (Path(real).is_relative_to(root) or Path(real).is_relative_to(cache)):
            rel = os.path.relpath(path, root)
            raise AuditError(f"{rel} is a link to {real}, outside the project and its DVC cache; the audit reads "
                             "only the project's own data (remove or replace the link)")
        return real

    dirs = {str(root / d) for d in ("data", "metrics", "stats")}
    for d in ("data", "metrics", "stats"):
        dirs.add(checked(str(root / d)))
        # DuckDB allows a path by its spelling: data/evil/x reads through a link data/evil -> /etc
        for here, subdirs, files in os.walk(root / d):
            for name in [*subdirs, *files]:
                if os.path.islink(os.path.join(here, name)):
                    checked(os.path.join(here, name))
    for pattern in [*SOURCES.values(), CURATION_SOURCE]:
        for f in _files(root, pattern):
            dirs.add(os.path.dirname(checked(f)))
    return sorted(d.rstrip("/") + "/" for d in dirs)


def _lock(con: duckdb.DuckDBPyConnection, allowed: list[str]) -> None:
    dirs = ", ".join(_lit(d) for d in allowed)
    con.execute(f"SET allowed_directories = [{dirs}]")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def open_audit(root: str | Path = ".", lock: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the audit views over `root`'s outputs.

    Run user SQL through `query(con, sql)`, which refuses anything but reads.
    `lock=False` leaves the connection unlocked (tests of the lock only).
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise AuditError(f"--root {root}: not a directory")
    allowed = _allowed_directories(root)  # before any file is read: a link out of the project stops here
    con = duckdb.connect(":memory:")
    con.execute("SET enable_progress_bar = false")  # no bar mixed into the output of long queries
    try:
        # Natural order of iteration names, so it2 sorts before it10.
        con.execute(
            "CREATE MACRO iteration_key(it) AS "
            "regexp_replace(it, '[0-9]+$', '') || lpad(regexp_extract(it, '[0-9]+$'), 12, '0')"
        )
        # A file that cannot be read (corrupted, not Parquet) takes down its own view only:
        # the others stay queryable, and a query that uses the broken one says why it is missing.
        broken = []
        for view in VIEWS:
            try:
                _create_view(con, view, root)
            except duckdb.Error as e:
                broken.append((view, f"the {view} view is unavailable: {e}"))
                log.warning("audit: %s (the other views work)", broken[-1][1])
        con.execute(f"CREATE TABLE {BROKEN} (view VARCHAR, reason VARCHAR)")
        if broken:
            con.executemany(f"INSERT INTO {BROKEN} VALUES (?, ?)", broken)
        if lock:
            _lock(con, allowed)
    except BaseException:
        con.close()
        raise
    return con


def describe_views(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    """{view: [(column, type), ...]} for the audit views."""
    out: dict[str, list[tuple[str, str]]] = {}
    broken = broken_views(con)
    for view in VIEWS:
        if view not in broken:
            out[view] = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {_q(view)}").fetchall()]
    return out


def view_files(root: str | Path = ".") -> dict[str, list[str]]:
    """{view: [file, ...]} relative to root: which files each view reads."""
    root = Path(root).resolve()
    pats = {**SOURCES, "curation": CURATION_SOURCE}
    return {v: [os.path.relpath(f, root) for f in _files(root, p)] for v, p in pats.items()}


# ---------------------------------------------------------------- canned reports


@dataclass(frozen=True)
class Report:
    name: str
    description: str
    sql: str


# A pair's majority verdict over its samples in one order: A, B, or NULL on a
# tie or when no sample has a verdict. Shared by several reports.
_MAJORITY_CTES = """votes AS (
    SELECT iteration, pair_id, "order",
           count(*) FILTER (WHERE verdict = 'A') AS n_a,
           count(*) FILTER (WHERE verdict = 'B') AS n_b
    FROM judgments WHERE pair_id IS NOT NULL GROUP BY iteration, pair_id, "order"
),
majority AS (
    SELECT iteration, pair_id, "order",
           CASE WHEN n_a > n_b THEN 'A' WHEN n_b > n_a THEN 'B' END AS verdict
    FROM votes
)"""

REPORTS: dict[str, Report] = {}


def _report(name: str, description: str, sql: str) -> None:
    REPORTS[name] = Report(name, description, sql.strip() + "\n")


_report(
    "funnel",
    "Curation funnel per iteration (stats/<it>/curation.json), with the rows actually in data/<it>/sft.parquet.",
    """
WITH sft_rows AS (SELECT iteration, count(*) AS sft_rows FROM sft GROUP BY iteration)
SELECT c.iteration,
       c.judgments,
       c.correct,
       c.removed_incorrect_or_no_verdict,
       c.groups_without_correct,
       c.groups_below_min_correct_fraction,
       c.pairs_missing_an_order,
       c.one_per_group,
       c.a_wins_before_balance,
       c.b_wins_before_balance,
       c.removed_by_balance,
       c.kept,
       coalesce(s.sft_rows, 0) AS sft_rows,
       c.keep_rate_pairs,
       c.empty_reason
FROM curation c LEFT JOIN sft_rows s USING (iteration)
ORDER BY iteration_key(c.iteration)
""",
)

_report(
    "dpo_pairs",
    "DPO sets per iteration: (pair, order) groups judged, groups with both a correct and a not-correct sample "
    "(the only ones that can give a pair), possible combinations, then the rows in data/<it>/dpo.parquet "
    "by chosen verdict and rejected reason.",
    """
WITH grp AS (
    SELECT iteration, pair_id, "order",
           count(*) FILTER (WHERE correct) AS n_correct,
           count(*) FILTER (WHERE correct IS NOT TRUE) AS n_other
    FROM judgments WHERE pair_id IS NOT NULL
    GROUP BY iteration, pair_id, "order"
), g AS (
    SELECT iteration,
           count(*) AS groups,
           count(*) FILTER (WHERE n_correct > 0 AND n_other > 0) AS groups_mixed,
           sum(CASE WHEN n_correct > 0 AND n_other > 0 THEN n_correct * n_other ELSE 0 END) AS combinations_possible
    FROM grp GROUP BY iteration
), d AS (
    SELECT iteration,
           count(*) AS dpo_rows,
           count(*) FILTER (WHERE chosen_verdict = 'A') AS chosen_a,
           count(*) FILTER (WHERE chosen_verdict = 'B') AS chosen_b,
           count(*) FILTER (WHERE rejected_reason = 'wrong') AS rejected_wrong,
           count(*) FILTER (WHERE rejected_reason = 'unparsed') AS rejected_unparsed,
           count(*) FILTER (WHERE rejected_reason NOT IN ('wrong', 'unparsed')) AS rejected_other
    FROM dpo GROUP BY iteration
)
SELECT iteration,
       coalesce(g.groups, 0) AS groups,
       coalesce(g.groups_mixed, 0) AS groups_mixed,
       coalesce(g.combinations_possible, 0) AS combinations_possible,
       coalesce(d.dpo_rows, 0) AS dpo_rows,
       coalesce(d.chosen_a, 0) AS chosen_a,
       coalesce(d.chosen_b, 0) AS chosen_b,
       coalesce(d.rejected_wrong, 0) AS rejected_wrong,
       coalesce(d.rejected_unparsed, 0) AS rejected_unparsed,
       coalesce(d.rejected_other, 0) AS rejected_other
FROM g FULL OUTER JOIN d USING (iteration)
ORDER BY iteration_key(iteration)
""",
)

_report(
    "keep_rate_by_category",
    "Per iteration and prompt category: pairs judged, pairs kept in the SFT set, keep rate ('(all)' = the iteration).",
    """
WITH judged AS (SELECT DISTINCT iteration, pair_id FROM judgments WHERE pair_id IS NOT NULL),
     kept AS (SELECT DISTINCT iteration, pair_id FROM sft WHERE pair_id IS NOT NULL),
     category AS (SELECT pair_id, any_value(category) AS category FROM pairs GROUP BY pair_id),
     rows AS (
         SELECT j.iteration, coalesce(c.category, '(none)') AS category, k.pair_id IS NOT NULL AS kept
         FROM judged j
         LEFT JOIN kept k ON k.iteration = j.iteration AND k.pair_id = j.pair_id
         LEFT JOIN category c ON c.pair_id = j.pair_id
     )
SELECT iteration,
       CASE WHEN grouping(category) = 1 THEN '(all)' ELSE category END AS category,
       count(*) AS judged_pairs,
       count(*) FILTER (WHERE kept) AS kept_pairs,
       round(count(*) FILTER (WHERE kept) / count(*), 4) AS keep_rate
FROM rows
GROUP BY GROUPING SETS ((iteration, category), (iteration))
ORDER BY iteration_key(iteration), grouping(category) DESC, category
""",
)

_report(
    "position_bias",
    "Per iteration and order: verdict rate, share of verdicts saying A, accuracy among verdicts; "
    "consistency = share of pairs judged in both orders whose two majority verdicts pick the same response.",
    f"""
WITH per_order AS (
    SELECT iteration, "order",
           count(*) AS judgments,
           count(verdict) AS with_verdict,
           round(count(verdict) / count(*), 4) AS verdict_rate,
           round(count(*) FILTER (WHERE verdict = 'A') / nullif(count(verdict), 0), 4) AS a_rate,
           round(avg(correct::INT), 4) AS accuracy
    FROM judgments WHERE pair_id IS NOT NULL GROUP BY iteration, "order"
),
{_MAJORITY_CTES},
-- which response the majority picks: wl shows y_w as A, lw shows y_l as A
pick AS (
    SELECT iteration, pair_id, "order",
           CASE WHEN verdict IS NULL THEN NULL
                WHEN ("order" = 'wl') = (verdict = 'A') THEN 'w' ELSE 'l' END AS pick
    FROM majority
),
consistency AS (
    SELECT w.iteration,
           count(*) AS pairs_both_orders,
           count(*) FILTER (WHERE w.pick = l.pick) AS consistent_pairs,
           round(count(*) FILTER (WHERE w.pick = l.pick) / count(*), 4) AS consistency,
           round(count(*) FILTER (WHERE w.pick = 'w' AND l.pick = 'w') / count(*), 4) AS both_orders_correct
    FROM pick w JOIN pick l
      ON l.iteration = w.iteration AND l.pair_id = w.pair_id AND w."order" = 'wl' AND l."order" = 'lw'
    GROUP BY w.iteration
)
SELECT p.iteration, p."order", p.judgments, p.with_verdict, p.verdict_rate, p.a_rate, p.accuracy,
       coalesce(c.pairs_both_orders, 0) AS pairs_both_orders,
       coalesce(c.consistent_pairs, 0) AS consistent_pairs,
       c.consistency, c.both_orders_correct
FROM per_order p LEFT JOIN consistency c USING (iteration)
ORDER BY iteration_key(p.iteration), p."order" DESC
""",
)

_report(
    "parse_failures",
    "Per iteration and parse_status: judgments, share of the iteration, forced verdicts, "
    "3 example judgment_ids (smallest) and the first one's text.",
    r"""
WITH groups AS (
    SELECT iteration,
           coalesce(parse_status, '(null)') AS parse_status,
           count(*) AS judgments,
           count(*) FILTER (WHERE verdict_source = 'forced') AS forced_verdicts,
           min(judgment_id, 3) AS example_ids
    FROM judgments
    GROUP BY iteration, coalesce(parse_status, '(null)')
),
-- the text of each group's first example only: filtering on judgment_id lets
-- DuckDB skip the row groups (and the text) of everything else
example AS (
    SELECT iteration, judgment_id, left(regexp_replace(any_value(text), '\s+', ' ', 'g'), 120) AS example_text
    FROM judgments
    WHERE judgment_id IN (SELECT example_ids[1] FROM groups)
    GROUP BY iteration, judgment_id
)
SELECT g.iteration, g.parse_status, g.judgments,
       round(g.judgments / sum(g.judgments) OVER (PARTITION BY g.iteration), 4) AS rate,
       g.forced_verdicts, g.example_ids, e.example_text
FROM groups g
LEFT JOIN example e ON e.iteration = g.iteration AND e.judgment_id = g.example_ids[1]
ORDER BY iteration_key(g.iteration), g.judgments DESC, g.parse_status
""",
)

_report(
    "length_bias",
    "Does the judge prefer the longer answer? Among judgments with a verdict and answers of different length: "
    "share picking the longer one, share where the correct answer is the longer one (the unbiased target), "
    "and the same pick rate in the curated SFT set (does curation teach it?).",
    """
WITH judged AS (
    SELECT iteration, judgment_id, verdict,
           CASE WHEN len_a > len_b THEN 'A' ELSE 'B' END AS longer,
           ("order" = 'wl') = (len_a > len_b) AS w_is_longer
    FROM judgments
    WHERE verdict IN ('A', 'B') AND len_a IS NOT NULL AND len_b IS NOT NULL AND len_a <> len_b
),
j AS (
    SELECT iteration,
           count(*) AS judged,
           round(avg((verdict = longer)::INT), 4) AS picked_longer_rate,
           round(avg(w_is_longer::INT), 4) AS correct_is_longer_rate
    FROM judged GROUP BY iteration
),
s AS (
    SELECT d.iteration,
           count(*) AS sft_examples,
           round(avg((s.verdict = d.longer)::INT), 4) AS sft_picked_longer_rate
    FROM sft s JOIN judged d ON d.judgment_id = s.judgment_id
    GROUP BY d.iteration
)
SELECT j.iteration, j.judged, j.picked_longer_rate, j.correct_is_longer_rate,
       coalesce(s.sft_examples, 0) AS sft_examples, s.sft_picked_longer_rate
FROM j LEFT JOIN s USING (iteration)
ORDER BY iteration_key(j.iteration)
""",
)

_report(
    "sample_agreement",
    "Per iteration: for each pair and order, the share of its N samples agreeing with the majority verdict "
    "(samples without a verdict disagree), averaged; also among verdicts only, and the unanimous share.",
    """
WITH g AS (
    SELECT iteration, pair_id, "order",
           count(*) AS n,
           count(*) FILTER (WHERE verdict = 'A') AS n_a,
           count(*) FILTER (WHERE verdict = 'B') AS n_b
    FROM judgments WHERE pair_id IS NOT NULL GROUP BY iteration, pair_id, "order"
)
SELECT iteration,
       count(*) AS groups,
       round(avg(n), 2) AS samples_per_group,
       round(avg(greatest(n_a, n_b) / n), 4) AS mean_agreement,
       round(avg(greatest(n_a, n_b) / nullif(n_a + n_b, 0)), 4) AS mean_agreement_verdicts,
       round(avg((n_a = n OR n_b = n)::INT), 4) AS unanimous_rate
FROM g GROUP BY iteration
ORDER BY iteration_key(iteration)
""",
)

_report(
    "verdict_change",
    "The same pair_id and order judged in consecutive iterations (natural name order): majority verdict "
    "unchanged / changed, and how many became correct or wrong. Iterations judge disjoint prompt splits "
    "by default, so 'compared' is 0 unless they share pairs.",
    f"""
WITH {_MAJORITY_CTES},
iters AS (
    SELECT iteration, row_number() OVER (ORDER BY iteration_key(iteration)) AS k
    FROM (SELECT DISTINCT iteration FROM majority)
),
m AS (
    SELECT majority.*, iters.k,
           verdict IS NOT NULL AND ("order" = 'wl') = (verdict = 'A') AS correct
    FROM majority JOIN iters USING (iteration)
),
steps AS (
    SELECT a.iteration AS iteration_a, b.iteration AS iteration_b, a.k
    FROM iters a JOIN iters b ON b.k = a.k + 1
),
changes AS (
    SELECT a.iteration AS iteration_a, b.iteration AS iteration_b,
           count(*) AS compared,
           count(*) FILTER (WHERE a.verdict IS NOT DISTINCT FROM b.verdict) AS unchanged,
           count(*) FILTER (WHERE a.verdict IS DISTINCT FROM b.verdict) AS changed,
           count(*) FILTER (WHERE NOT a.correct AND b.correct) AS became_correct,
           count(*) FILTER (WHERE a.correct AND NOT b.correct) AS became_wrong
    FROM m a JOIN m b ON b.pair_id = a.pair_id AND b."order" = a."order" AND b.k = a.k + 1
    GROUP BY a.iteration, b.iteration
)
SELECT s.iteration_a, s.iteration_b,
       coalesce(c.compared, 0) AS compared,
       coalesce(c.unchanged, 0) AS unchanged,
       coalesce(c.changed, 0) AS changed,
       round(c.changed / c.compared, 4) AS changed_rate,
       coalesce(c.became_correct, 0) AS became_correct,
       coalesce(c.became_wrong, 0) AS became_wrong
FROM steps s LEFT JOIN changes c USING (iteration_a, iteration_b)
ORDER BY s.k
""",
)


def run_report(con: duckdb.DuckDBPyConnection, name: str) -> duckdb.DuckDBPyRelation:
    if name not in REPORTS:
        raise AuditError(f"unknown report {name!r}; reports: {', '.join(REPORTS)}")
    return query(con, REPORTS[name].sql)
