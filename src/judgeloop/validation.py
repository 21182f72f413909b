"""Data-quality gate for the pairs, judgments and sft datasets.

Each dataset kind gets a great-expectations suite built from the column names in
`schemas.py` (keys unique and not null, enums in their sets, texts non-empty and
bounded, cross-column consistency via computed boolean columns, A/B balance for
sft). The suites run on pandas frames in an ephemeral GX context, so nothing is
written to a GX project folder. `validate_files` validates parquet files, writes
`results.json` and GX Data Docs HTML, and `raise_on_failure` turns failed
reports into one `DataValidationError` naming the dataset, the expectation and a
few offending row ids (the key values of the rows GX's COMPLETE result format
lists as unexpected; for the A/B balance, a mean, the over-represented side).

Large files are validated in parts so that neither memory nor GX's per-metric
row filtering grows with the text: GX runs each batch's expectations on (1) a
frame of the narrow columns plus the computed check columns, whole, (2) each
long text column (judgment texts, prompts, completions, ...) with the key,
a chunk of row groups (~256 MB of text) at a time (one column per GX run:
GX filters the frame it is given for every column-map metric, so a frame of
all the long columns was copied whole per text check), and (3) the table-columns
check on a 0-row frame with the file's columns. Every expectation runs on
every row exactly once; a report merges the parts (success: all parts pass;
unexpected_count: the sum). GX's batch fingerprint (an md5 over the frame's
contents, a batch marker nothing here reads) is turned off while judgeloop
validates: it cost more than all the expectations together.
"""

from __future__ import annotations

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import contextlib
from collections.abc import Iterator

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from great_expectations.execution_engine import pandas_execution_engine as _gx_pandas
from great_expectations.data_context.types.base import ProgressBarsConfig

from judgeloop.parsing import parse_verdict
from judgeloop.datasets import DATASETS
from judgeloop.schemas import SCHEMAS

GEN_STATUSES = ["ok", "unparsed", "truncated", "empty_w", "empty_l", "same_as_w",
                "empty_instruction", "same_instruction", "copied_demo"]
# The batches each kind is validated as (datasets.py): pairs also checks its gen_status == "ok" rows.
BATCHES = {k: list(d.validation) for k, d in DATASETS.items() if d.validation}
MAX_EXAMPLES = 20  # offending ids kept per expectation (the message shows 5)
# Long text columns: checked a chunk at a time, never copied into the narrow frame.
LONG_TEXT = {"text", "prompt", "completion", "chosen", "rejected", "instruction", "response_w", "response_l",
             "modified_instruction", "response", "reference_answer", "criteria",
             *(f"score{k}_description" for k in range(1, 6))}
# Computed check columns that need a long text column (computed chunk by chunk), and their inputs.
TEXT_FLAGS = {"pairs_ok": ["_w_differs_l"], "sft": ["_parses_to_verdict"], "dpo": ["_chosen_differs_rejected"],
              "likert_sft": ["_parses_to_verdict"]}
FLAG_INPUTS = {"pairs_ok": ["response_w", "response_l"], "sft": ["completion", "verdict"],
               "dpo": ["chosen", "rejected"], "likert_sft": ["completion", "verdict"]}
# Inputs of the computed check columns that are not long texts (read with the narrow columns).
NARROW_FLAG_INPUTS = {"judgments": ["verdict", "correct", "parse_status", "verdict_source", "order"], "sft": ["verdict"],
                      "dpo": ["order", "chosen_verdict"],
                      "likert_judgments": ["parse_status", "score_source"], "pairs_ok": ["gen_status"]}
CHUNK_BYTES = 1 << 28  # uncompressed long-text bytes per validated chunk (256 MB: measured faster than 1 GB)


class DataValidationError(RuntimeError):
    """A dataset broke its expectations; the message names dataset, expectation and ids."""


@dataclass
class ValidationReport:
    dataset: str
    path: str
    success: bool
    results: list[dict] = field(default_factory=list)

    def failures(self) -> list[dict]:
        return [r for r in self.results if not r["success"]]

    def message(self) -> str:
        failed = self.failures()
        head = f"{self.dataset} ({self.path}): "
        if not failed:
            return head + f"all {len(self.results)} expectations passed"
        lines = [head + f"{len(failed)} of {len(self.results)} expectations failed"]
        for r in failed:
            args = ", ".join(f"{k}={v!r}" for k, v in r["kwargs"].items())
            where = f" on {r['batch']}" if r["batch"] != self.dataset else ""
            line = f"  - {r['expectation']}({args}){where}: {r['unexpected_count']} unexpected"
            if r["examples"]:
                line += f"; {DATASETS[self.dataset].key}s: " + ", ".join(map(str, r["examples"][:5]))
            if r.get("details"):
                line += f"; details: {r['details']}"
            lines.append(line)
        return "\n".join(lines)


@dataclass(frozen=True)
class _Check:
    """An expectation. GX names the rows a column-map expectation fails (its `unexpected_index_list`);
    an aggregate one (a mean) fails as a whole, and `rows` says which rows to show for it."""

    expectation: gxe.Expectation
    rows: Callable[[pd.DataFrame], pd.Series] | None = None


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    """The column, or all-null when missing (the columns expectation reports that)."""
    return df[name] if name in df.columns else pd.Series(None, index=df.index, dtype=object)


def _not_null(c: str) -> _Check:
    return _Check(gxe.ExpectColumnValuesToNotBeNull(column=c))


def _unique(c: str) -> _Check:
    return _Check(gxe.ExpectColumnValuesToBeUnique(column=c))


def _in_set(c: str, values: list) -> _Check:
    return _Check(gxe.ExpectColumnValuesToBeInSet(column=c, value_set=values, mostly=1.0))


def _lengths(c: str, lo: int | None, hi: int | None) -> _Check:
    return _Check(gxe.ExpectColumnValueLengthsToBeBetween(column=c, min_value=lo, max_value=hi))


def _flag(c: str) -> _Check:
    """A computed boolean column that must be True on every row."""
    return _Check(gxe.ExpectColumnValuesToBeInSet(column=c, value_set=[True]))


def _columns(kind: str) -> _Check:
    names = SCHEMAS[DATASETS[kind].schema].names
    return _Check(gxe.ExpectTableColumnsToMatchSet(column_set=names, exact_match=False))


def _ok_rows(batch: str, df: pd.DataFrame) -> pd.DataFrame:
    """pairs_ok keeps gen_status == "ok" rows; other batches see every row."""
    if batch == "pairs_ok":
        return df[_col(df, "gen_status").eq("ok").fillna(False).astype(bool)]
    return df


def _flags(batch: str, df: pd.DataFrame) -> dict[str, pd.Series]:
    """The computed check columns of a batch (df: its rows, after _ok_rows)."""
    if batch == "pairs_ok":
        same = _col(df, "response_w").eq(_col(df, "response_l")).fillna(False).astype(bool)
        return {"_w_differs_l": ~same}
    if batch == "judgments":
        verdict, correct = _col(df, "verdict"), _col(df, "correct")
        return {"_correct_null_iff_verdict_null": correct.isna() == verdict.isna(),
                "_correct_matches_verdict": _correct_matches_verdict(df),
                "_parsed_needs_parse_ok": _parsed_needs_parse_ok(df, "verdict_source")}
    if batch == "sft":
        return {"_parses_to_verdict": _parses_to_verdict(df, _pairwise_verdict),
                "_is_a": _col(df, "verdict").eq("A").fillna(False).astype(float)}
    if batch == "dpo":
        same = _col(df, "chosen").eq(_col(df, "rejected")).fillna(False).astype(bool)
        # pairwise rows (order wl / lw): the chosen verdict picks the known winner; Likert rows (single) have none
        order, chosen = _col(df, "order"), _col(df, "chosen_verdict")
        pairwise = order.isin(["wl", "lw"]).fillna(False).astype(bool)
        winner = order.map({"wl": "A", "lw": "B"})
        right = chosen.eq(winner).fillna(False).astype(bool)
        return {"_chosen_differs_rejected": ~same, "_chosen_is_the_winner": ~pairwise | right}
    if batch == "likert_judgments":
        return {"_parsed_needs_parse_ok": _parsed_needs_parse_ok(df, "score_source")}
    if batch == "likert_sft":
        return {"_parses_to_verdict": _parses_to_verdict(df, _likert_verdict)}
    return {}


def _prepare(batch: str, df: pd.DataFrame) -> pd.DataFrame:
    """The frame GX sees: pairs_ok keeps gen_status == "ok" rows; computed check columns added."""
    df = _ok_rows(batch, df)
    return df.assign(**_flags(batch, df))


def _correct_matches_verdict(df: pd.DataFrame) -> pd.Series:
    """`correct` is what the verdict, the order and the known winner say (recomputed, not trusted)."""
    verdict, correct, order = _col(df, "verdict"), _col(df, "correct"), _col(df, "order")
    winner = order.map({"wl": "A", "lw": "B"})
    expected = verdict.eq(winner).astype("boolean")  # NA where there is no verdict (or no order)
    has = (verdict.notna() & correct.notna()).astype(bool)
    same = correct.astype("boolean").eq(expected).fillna(False).astype(bool)
    return ~has | same


def _parsed_needs_parse_ok(df: pd.DataFrame, source_col: str) -> pd.Series:
    """A verdict/score the judge wrote itself ("parsed") needs parse_status ok."""
    not_ok = _col(df, "parse_status").ne("ok").fillna(True).astype(bool)
    parsed = _col(df, source_col).eq("parsed").fillna(False).astype(bool)
    return ~(not_ok & parsed)


def _parses_to_verdict(df: pd.DataFrame, parse: Callable[[str], str | None]) -> pd.Series:
    """The completion, read by the judge's own parser, gives the row's verdict.

    Not a substring test: a completion holding both [[A]] and [[B]] contains
    its own tag but parses to no verdict, and would teach the next judge to
    take both sides."""
    flags = [isinstance(c, str) and isinstance(v, str) and parse(c) == v
             for c, v in zip(_col(df, "completion"), _col(df, "verdict"))]
    return pd.Series(flags, index=df.index, dtype=bool)


def _pairwise_verdict(text: str) -> str | None:
    return parse_verdict(text).verdict


def _likert_verdict(text: str) -> str | None:
    from .parsing import parse_score

    score, _ = parse_score(text)
    return None if score is None else str(score)


def _checks(batch: str, df: pd.DataFrame, ab_tolerance: float | None, max_text_chars: int) -> list[_Check]:
    """The expectations of a batch (df is the prepared frame)."""
    if batch == "pairs":
        return [_columns("pairs"), _unique("pair_id"),
                *map(_not_null, ["pair_id", "prompt_id", "generator", "gen_status"]),
                _in_set("gen_status", GEN_STATUSES)]
    if batch == "pairs_ok":
        texts = ["instruction", "response_w", "response_l", "modified_instruction"]
        return [*map(_not_null, texts), *(_lengths(c, 1, max_text_chars) for c in texts),
                _flag("_w_differs_l")]
    if batch == "judgments":
        return [_columns("judgments"), _unique("judgment_id"),
                *map(_not_null, ["judgment_id", "pair_id", "iteration", "judge_model", "order",
                                 "text", "parse_status"]),
                _in_set("order", ["wl", "lw"]), _in_set("verdict", ["A", "B"]),
                _in_set("parse_status", ["ok", "none", "both", "truncated"]),
                _in_set("verdict_source", ["parsed", "forced"]),
                _lengths("text", None, max_text_chars),
                _flag("_correct_null_iff_verdict_null"), _flag("_correct_matches_verdict"),
                _flag("_parsed_needs_parse_ok")]
    if batch == "sft":
        checks = [_columns("sft"), _unique("example_id"),
                  *map(_not_null, ["example_id", "pair_id", "judgment_id", "prompt", "completion",
                                   "verdict"]),
                  *(_lengths(c, 1, None) for c in ["pair_id", "judgment_id"]),
                  *(_lengths(c, 1, max_text_chars) for c in ["prompt", "completion"]),
                  _in_set("verdict", ["A", "B"]), _flag("_parses_to_verdict")]
        # the A/B balance means nothing on a handful of rows, nor when curation
        # was told not to balance (ab_tolerance None)
        if ab_tolerance is not None and len(df) >= 4:
            lo, hi = 0.5 - ab_tolerance, 0.5 + ab_tolerance
            share = float(df["_is_a"].mean())
            side = 1.0 if share > hi else 0.0  # the over-represented verdict's rows

            def bad(d: pd.DataFrame) -> pd.Series:  # the over-represented side's rows
                return d["_is_a"].eq(side)

            checks.append(_Check(gxe.ExpectColumnMeanToBeBetween(column="_is_a", min_value=lo,
                                                                  max_value=hi), bad))
        return checks
    if batch == "dpo":
        return [_columns("dpo"), _unique("example_id"),
                *map(_not_null, ["example_id", "pair_id", "prompt", "chosen", "rejected",
                                 "chosen_judgment_id", "rejected_judgment_id", "chosen_verdict"]),
                *(_lengths(c, 1, max_text_chars) for c in ["prompt", "chosen", "rejected"]),
                _in_set("rejected_reason", ["wrong", "unparsed", "farther_from_gold"]),
                _flag("_chosen_differs_rejected"), _flag("_chosen_is_the_winner")]
    if batch == "rubrics":
        texts = ["instruction", "response", "criteria"] + [f"score{k}_description" for k in range(1, 6)]
        return [_columns("rubrics"), _unique("item_id"), *map(_not_null, ["item_id", "gold_score", "split", *texts]),
                *(_lengths(c, 1, max_text_chars) for c in texts), _in_set("gold_score", [1, 2, 3, 4, 5])]
    if batch == "likert_judgments":
        return [_columns("likert_judgments"), _unique("judgment_id"),
                *map(_not_null, ["judgment_id", "item_id", "iteration", "judge_model", "text", "parse_status", "gold_score"]),
                _in_set("score", [1, 2, 3, 4, 5]), _in_set("gold_score", [1, 2, 3, 4, 5]),
                _in_set("parse_status", ["ok", "none", "truncated", "multiple", "out_of_range"]),
                _in_set("score_source", ["parsed", "forced"]), _lengths("text", None, max_text_chars),
                _flag("_parsed_needs_parse_ok")]
    if batch == "likert_sft":
        return [_columns("likert_sft"), _unique("example_id"),
                *map(_not_null, ["example_id", "pair_id", "judgment_id", "prompt", "completion", "verdict"]),
                _in_set("verdict", ["1", "2", "3", "4", "5"]), _flag("_parses_to_verdict")]
    raise ValueError(f"unknown dataset kind {batch!r}; expected one of {sorted(BATCHES)} or pairs_ok")


def _suite(batch: str, df: pd.DataFrame, ab_tolerance: float, max_text_chars: int):
    checks = _checks(batch, df, ab_tolerance, max_text_chars)
    for i, c in enumerate(checks):
        c.expectation.meta = {"check": i}  # results come back unordered; meta maps them back
    return gx.ExpectationSuite(name=batch, expectations=[c.expectation for c in checks]), checks


def build_suite(kind: str, df: pd.DataFrame, *, ab_tolerance: float = 0.2,
                max_text_chars: int = 200_000) -> gx.ExpectationSuite:
    """The GX suite for `kind` ("pairs", "pairs_ok", "judgments" or "sft") on frame `df`."""
    return _suite(kind, _prepare(kind, df), ab_tolerance, max_text_chars)[0]


def _context(docs_dir: str | None = None):
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    for site in list(ctx.list_data_docs_sites()):
        ctx.delete_data_docs_site(site)
    if docs_dir:
        ctx.add_data_docs_site("judgeloop", {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
    ctx.data_sources.add_pandas("judgeloop")
    return ctx


def _ids(keys: pd.Series) -> list[str]:
    """Distinct key values of some rows ("<row i>" where the key itself is null)."""
    ids = [f"<row {i}>" if pd.isna(v) else str(v) for i, v in keys.items()]
    return list(dict.fromkeys(ids))[:MAX_EXAMPLES]


# COMPLETE: every failing row's index (unexpected_index_list); not the SQL-like query GX would also build
RESULT_FORMAT = {"result_format": "COMPLETE", "return_unexpected_index_query": False}


def _column(check: _Check) -> str | None:
    return getattr(check.expectation, "column", None)


class _FrameSource:
    """An in-memory frame: one part of each kind."""

    def __init__(self, df: pd.DataFrame):
        self.df, self.columns = df, list(df.columns)

    def read(self, columns: list[str]) -> pd.DataFrame:
        return self.df[[c for c in columns if c in self.df.columns]]

    def chunks(self, columns: list[str]) -> Iterator[pd.DataFrame]:
        yield self.read(columns)


class _FileSource:
    """A Parquet file: narrow columns read whole, long text a chunk of row groups at a time."""

    def __init__(self, path: str):
        self.file = pq.ParquetFile(path)
        self.columns = self.file.schema_arrow.names

    @staticmethod
    def _pandas(table: pa.Table, start: int = 0) -> pd.DataFrame:
        df = table.combine_chunks().to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get)
        df.index = pd.RangeIndex(start, start + len(df))
        return df

    def read(self, columns: list[str]) -> pd.DataFrame:
        return self._pandas(self.file.read(columns=[c for c in columns if c in self.columns]))

    def chunks(self, columns: list[str]) -> Iterator[pd.DataFrame]:
        md, cols = self.file.metadata, [c for c in columns if c in self.columns]
        long = {i for i, c in enumerate(self.columns) if c in LONG_TEXT and c in cols}
        groups: list[int] = []
        size = start = 0
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            groups.append(g)
            size += sum(rg.column(i).total_uncompressed_size for i in range(rg.num_columns) if i in long)
            if size >= CHUNK_BYTES or g == md.num_row_groups - 1:
                df = self._pandas(self.file.read_row_groups(groups, columns=cols), start)
                start += len(df)
                groups, size = [], 0
                yield df
        if md.num_row_groups == 0:
            yield self._pandas(self.file.schema_arrow.empty_table().select(cols))


@contextlib.contextmanager
def _no_fingerprint() -> Iterator[None]:
    """Skip GX's batch fingerprint (md5 of the whole frame, a batch marker nothing here reads)."""
    saved = _gx_pandas.HASH_THRESHOLD
    _gx_pandas.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        _gx_pandas.HASH_THRESHOLD = saved


class _Part:
    """One GX suite + validation definition over some of a batch's checks, run on one or more frames."""

    def __init__(self, ctx, name: str, checks: dict[int, _Check]):
        self.checks = checks
        for i, c in checks.items():
            c.expectation.meta = {"check": i}  # results come back unordered; meta maps them back
        suite = ctx.suites.add(gx.ExpectationSuite(name=name, expectations=[c.expectation for c in checks.values()]))
        data = ctx.data_sources.get("judgeloop").add_dataframe_asset(name)
        self.vd = ctx.validation_definitions.add(gx.ValidationDefinition(
            name=name, data=data.add_batch_definition_whole_dataframe("whole"), suite=suite))

    def run(self, batch: str, key: str, frame: pd.DataFrame, out: dict[int, dict]) -> None:
        if not self.checks:
            return
        run = self.vd.run(batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT)
        for res in run.results:
            cfg = res.expectation_config
            i = cfg.meta["check"]
            rows, keys = res.result.get("unexpected_index_list"), _col(frame, key)
            if rows is not None:  # a column-map expectation: GX names its rows
                failing = keys.loc[rows]
            else:  # the columns or a mean: the check says which rows to show, if any
                rows_of = self.checks[i].rows
                failing = keys[rows_of(frame).to_numpy(dtype=bool)] if rows_of and not res.success else keys.iloc[:0]
            count = res.result.get("unexpected_count")
            errors = {e.get("exception_message") for e in (res.exception_info or {}).values()
                      if isinstance(e, dict) and e.get("raised_exception")}
            details = res.result.get("details") or res.result.get("observed_value")
            if isinstance(details, dict) and "mismatched" in details:  # the columns check
                details = {"missing columns": details["mismatched"].get("missing", [])}
            r = {
                "batch": batch,
                "expectation": cfg.type,
                "kwargs": {k: v for k, v in cfg.kwargs.items() if k != "batch_id"},
                "success": bool(res.success),
                "unexpected_count": int(count) if count is not None else len(failing),
                "examples": _ids(failing),
                "details": "; ".join(sorted(errors)) if errors else (None if res.success else details),
            }
            if i in out:  # another chunk of the same check
                prev = out[i]
                r["success"] = prev["success"] and r["success"]
                r["unexpected_count"] += prev["unexpected_count"]
                r["examples"] = list(dict.fromkeys(prev["examples"] + r["examples"]))[:MAX_EXAMPLES]
                r["details"] = prev["details"] if prev["details"] is not None else r["details"]
            out[i] = r


def _run_batch(ctx, kind: str, batch: str, source, ab_tolerance: float | None,
               max_text_chars: int) -> list[dict]:
    """Run a batch's checks on the source in three parts (see the module docstring)."""
    key = DATASETS[kind].key
    out: dict[int, dict] = {}
    # the checks that do not depend on the data come first; the A/B balance check (sft) is last
    base = _checks(batch, pd.DataFrame(), ab_tolerance, max_text_chars)
    text = {i: c for i, c in enumerate(base) if _column(c) in LONG_TEXT}
    schema = {i: c for i, c in enumerate(base) if isinstance(c.expectation, gxe.ExpectTableColumnsToMatchSet)}
    long_cols = [c for c in source.columns if c in LONG_TEXT]
    # the narrow frame: only the columns a check or a computed check reads (not sampling JSON, hashes, ...)
    used = {key, *NARROW_FLAG_INPUTS.get(batch, []), *(_column(c) for c in base)}
    narrow_cols = [c for c in source.columns if c not in LONG_TEXT and c in used]
    filter_cols = ["gen_status"] if batch == "pairs_ok" else []
    text_flags = TEXT_FLAGS.get(batch, [])
    flags: dict[str, list[np.ndarray]] = {f: [] for f in text_flags}

    # one GX run per long column and chunk, on [key, column]: GX filters the rows of the frame it
    # is given per column-map metric, so a frame holding every long column was copied whole by each
    by_column: dict[str, dict[int, _Check]] = {}
    for i, c in text.items():
        by_column.setdefault(_column(c), {})[i] = c
    parts = {col: _Part(ctx, f"{batch}.text.{col}", checks) for col, checks in by_column.items()}
    for chunk in source.chunks(list(dict.fromkeys([key, *long_cols, *FLAG_INPUTS.get(batch, []), *filter_cols]))):
        chunk = _ok_rows(batch, chunk)
        if text_flags:
            computed = _flags(batch, chunk)
            for f in text_flags:
                flags[f].append(computed[f].to_numpy(dtype=bool))
        for col, part in parts.items():
            part.run(batch, key, chunk[[c for c in dict.fromkeys([key, col]) if c in chunk.columns]], out)
        del chunk

    frame = _ok_rows(batch, source.read(narrow_cols))
    computed = _flags(batch, frame)
    for f in text_flags:
        computed[f] = pd.Series(np.concatenate(flags[f]) if flags[f] else np.zeros(0, bool), index=frame.index)
    frame = frame.assign(**computed)
    checks = _checks(batch, frame, ab_tolerance, max_text_chars)
    narrow = {i: c for i, c in enumerate(checks) if i not in text and i not in schema}
    _Part(ctx, batch, narrow).run(batch, key, frame, out)
    _Part(ctx, f"{batch}.columns", schema).run(batch, key, pd.DataFrame(columns=source.columns), out)
    return [out[i] for i in range(len(checks))]


def _validate(ctx, kind: str, source, path: str, ab_tolerance: float | None,
              max_text_chars: int) -> ValidationReport:
    if kind not in BATCHES:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {sorted(BATCHES)}")
    with _no_fingerprint():
        results = [r for b in BATCHES[kind]
                   for r in _run_batch(ctx, kind, b, source, ab_tolerance, max_text_chars)]
    return ValidationReport(kind, path, all(r["success"] for r in results), results)


def validate_frame(kind: str, df: pd.DataFrame, path: str = "<memory>", *,
                   ab_tolerance: float = 0.2, max_text_chars: int = 200_000) -> ValidationReport:
    """Validate one in-memory frame of `kind`; never raises on bad data."""
    return _validate(_context(), kind, _FrameSource(df), path, ab_tolerance, max_text_chars)


def _write_atomic(path: str, text: str) -> None:
    folder = os.path.dirname(path) or "."
    with tempfile.NamedTemporaryFile("w", dir=folder, prefix=".tmp-", delete=False,
                                     encoding="utf-8") as f:
        f.write(text)
    os.replace(f.name, path)


def validate_files(files: dict[str, str], out_dir: str, *, ab_tolerance: float = 0.2,
                   max_text_chars: int = 200_000) -> list[ValidationReport]:
    """Validate parquet files ({kind: path}); write out_dir/results.json and out_dir/docs/.

    Data Docs are built into a temporary folder beside docs/ and swapped in, so a reader
    never sees a half-written site. Returns the reports; does not raise on bad data.
    """
    out_dir = os.path.abspath(out_dir)  # GX's docs site needs an absolute base_directory
    os.makedirs(out_dir, exist_ok=True)
    staging = tempfile.mkdtemp(dir=out_dir, prefix=".docs-")
    try:
        reports = _validate_into(files, out_dir, staging, ab_tolerance, max_text_chars)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    docs, old = os.path.join(out_dir, "docs"), None
    if os.path.exists(docs):
        old = tempfile.mkdtemp(dir=out_dir, prefix=".docs-old-")
        os.replace(docs, os.path.join(old, "docs"))
    os.replace(staging, docs)
    if old:
        shutil.rmtree(old, ignore_errors=True)
    return reports


def _validate_into(files: dict[str, str], out_dir: str, staging: str, ab_tolerance: float,
                   max_text_chars: int) -> list[ValidationReport]:
    """Validate every file, write results.json and build the Data Docs site into staging."""
    ctx = _context(staging)
    reports = []
    for kind, path in files.items():
        try:
            source = _FileSource(str(path))
        except Exception as e:  # an unreadable file is a failed report, not a crash
            reports.append(ValidationReport(kind, str(path), False, [{
                "batch": kind, "expectation": "read_parquet", "kwargs": {"path": str(path)},
                "success": False, "unexpected_count": 0, "examples": [], "details": repr(e)}]))
            continue
        reports.append(_validate(ctx, kind, source, str(path), ab_tolerance, max_text_chars))
    text = json.dumps([asdict(r) for r in reports], indent=2, default=str)
    _write_atomic(os.path.join(out_dir, "results.json"), text)
    ctx.build_data_docs()
    return reports


def raise_on_failure(reports: list[ValidationReport]) -> None:
    """Raise DataValidationError listing every failed report; return quietly otherwise."""
    failed = [r.message() for r in reports if not r.success]
    if failed:
        raise DataValidationError("data validation failed:\n" + "\n".join(failed))
