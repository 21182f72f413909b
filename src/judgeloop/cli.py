"""The `judgeloop` command line: audit, diff, judge, stage, preset.

    judgeloop audit "SELECT iteration, count(*) FROM judgments GROUP BY 1"
    judgeloop audit --report position_bias [--show-sql]
    judgeloop audit --views | --list-reports
    judgeloop diff --kind judgments --a it1 --b it2
    judgeloop diff --path data/it1/judgments.parquet --rev-a HEAD~1 [--rev-b workspace]
    judgeloop judge data.json --format llmbar --model models/it2 --output out.parquet
    judgeloop stage judge --iteration it1
    judgeloop preset smoke        (writes configs/presets/smoke.yaml into params.yaml)

Every command takes `--root DIR` (the project root, default "."). Exit status:
0 success (diff: identical), 1 diff found differences (or a stage failed),
2 a usage error or a query/diff that could not run. Errors are one plain
message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import Any, NoReturn

# ---------------------------------------------------------------- output helpers


def _err(msg: str) -> None:
    print(f"judgeloop: {msg}", file=sys.stderr)


def _cell(v: Any, width: int) -> str:
    if v is None:
        s = "NULL"
    elif isinstance(v, float):
        s = f"{v:.6g}"
    else:
        s = " ".join(str(v).split()) if isinstance(v, str) else str(v)
    return s if len(s) <= width else s[: width - 1] + "…"


def table_lines(columns: list[str], types: list[str], batches: Iterable[list[tuple]], max_width: int = 60) -> Iterator[str]:
    """A compact aligned text table (numbers right-aligned, long text cut), a batch of rows at a time.

    Column widths come from the header and the first batch, so a result of
    any size prints in flat memory; a later, wider cell widens its column from
    there on (never cut below `max_width`). `footer` writes the line that counts them."""
    numeric = [t.upper().split("(")[0] in _NUMERIC for t in types]
    widths: list[int] | None = None

    def line(vals: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths or [], numeric)).rstrip()

    for rows in batches:
        cells = [[_cell(v, max_width) for v in r] for r in rows]
        if widths is None:
            widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
            yield line(columns)
            yield "  ".join("-" * w for w in widths)
        for r in cells:
            widths = [max(w, len(c)) for w, c in zip(widths, r)]
            yield line(r)
    if widths is None:  # no rows: the header alone
        widths = [len(c) for c in columns]
        yield line(columns)
        yield "  ".join("-" * w for w in widths)


def footer(n: int, more: bool) -> str:
    return f"({n} row{'s' if n != 1 else ''}{', more not shown: use --max-rows or --output' if more else ''})"


def format_table(columns: list[str], types: list[str], rows: list[tuple], more: bool, max_width: int = 60) -> str:
    """`table_lines` for rows in memory, as one string; `more` notes that rows were left out."""
    return "\n".join([*table_lines(columns, types, [rows], max_width), footer(len(rows), more)]) + "\n"


_NUMERIC = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
    "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL",
}


def _json_default(v: Any) -> Any:
    import decimal

    if isinstance(v, decimal.Decimal):  # HUGEINT/DECIMAL results arrive as Decimal
        return int(v) if v == v.to_integral_value() else float(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def _is_nested(t: str) -> bool:
    t = t.upper()
    return t.endswith("]") or t.startswith(("STRUCT", "MAP", "UNION"))


def _int_in(lo: int, hi: int = 2**31 - 1):
    """argparse type: an integer in [lo, hi] (hi: what numpy / torch take as a C int), or one clear error."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v} is out of range: {lo}..{hi}")
        return v
    return parse


def _float_in(lo: float, hi: float, lo_open: bool = False):
    def parse(text: str) -> float:
        import math

        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(v) or v > hi or v < lo or (lo_open and v == lo):
            raise argparse.ArgumentTypeError(f"{text} is out of range: {'(' if lo_open else '['}{lo:g}, {hi:g}]")
        return v
    return parse


# folders whose files the pipeline (DVC) owns: a CLI --output never writes there
PIPELINE_DIRS = ("data", "models", "metrics", "stats", "reports", "cache", ".dvc", ".git")


def output_problem(output: str, root: str = ".", force: bool = False) -> str | None:
    """Why `output` must not be written (None: it may be).

    Not a link, FIFO, folder or other non-regular file; not a file of the
    pipeline's (under data/, models/, metrics/, stats/, reports/ of the project
    root, or an output in dvc.lock); an existing file only with --force."""
    p = Path(output)
    if p.is_symlink():
        return "is a symbolic link; write to a regular file"
    if p.exists() and not p.is_file():
        return "exists and is not a regular file (a folder, FIFO or device)"
    root_r = Path(root).resolve()
    target = p.resolve()
    if target.is_relative_to(root_r):
        rel = target.relative_to(root_r)
        if rel.parts and rel.parts[0] in PIPELINE_DIRS:
            return f"is inside {rel.parts[0]}/, which the pipeline owns (DVC outputs); write the file elsewhere"
        lock = root_r / "dvc.lock"
        if lock.is_file() and f"path: {rel.as_posix()}\n" in lock.read_text(encoding="utf-8", errors="replace"):
            return "is a pipeline output (in dvc.lock); write the file elsewhere"
    if p.exists() and not force:
        return "exists; pass --force to overwrite it"
    return None


STREAM_ROWS = 50_000  # rows per batch when csv / json / parquet results are streamed


def _stream(rel: Any, fmt: str, columns: list[str], types: list[str], output: str | None) -> None:
    """csv / json, a batch of rows at a time: memory stays flat however many rows the query returns."""
    import contextlib

    import pyarrow.csv as pacsv

    from .io import atomic_path

    if fmt == "csv":  # CSV has no lists or structs: render those as DuckDB text
        rel = rel.project(", ".join(
            f'CAST("{c}" AS VARCHAR) AS "{c}"' if _is_nested(t) else f'"{c}"' for c, t in zip(columns, types)))
    reader = rel.to_arrow_reader(STREAM_ROWS)
    with contextlib.ExitStack() as stack:
        if output:
            tmp = stack.enter_context(atomic_path(output))
            out = stack.enter_context(open(tmp, "w", encoding="utf-8", newline=""))
        else:
            out = sys.stdout
        first = True
        for batch in reader:
            if fmt == "csv":
                buf = io.BytesIO()
                pacsv.write_csv(batch, buf, pacsv.WriteOptions(include_header=first))
                out.write(buf.getvalue().decode("utf-8"))
                first = False
            else:
                for r in batch.to_pylist():
                    out.write(("[\n" if first else ",\n") + json.dumps(r, ensure_ascii=False, default=_json_default))
                    first = False
        if fmt == "csv" and first:  # no rows: the header alone
            buf = io.BytesIO()
            pacsv.write_csv(reader.schema.empty_table(), buf)
            out.write(buf.getvalue().decode("utf-8"))
        if fmt == "json":
            out.write("[]\n" if first else "\n]\n")
    if output:
        print(f"wrote {output}", file=sys.stderr)


def _stream_table(rel: Any, columns: list[str], types: list[str], output: str | None, max_rows: int) -> None:
    """The table format a batch at a time (`--max-rows -1` holds no more in memory than csv does)."""
    import contextlib
    import itertools

    from .io import atomic_path

    limited = rel.limit(max_rows + 1) if max_rows >= 0 else rel
    # one row past the limit says whether there is more
    rows = (tuple(r.values()) for batch in limited.to_arrow_reader(STREAM_ROWS) for r in batch.to_pylist())
    seen = 0
    more = False

    def batches() -> Iterator[list[tuple]]:
        nonlocal seen, more
        while chunk := list(itertools.islice(rows, STREAM_ROWS)):
            if max_rows >= 0 and seen + len(chunk) > max_rows:
                chunk, more = chunk[: max_rows - seen], True
            seen += len(chunk)
            if chunk:
                yield chunk

    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(stack.enter_context(atomic_path(output)), "w", encoding="utf-8")) if output else sys.stdout
        for text in table_lines(columns, types, batches()):
            out.write(text + "\n")
        out.write(footer(seen, more) + "\n")
    if output:
        print(f"wrote {output}", file=sys.stderr)


def _write_result(rel: Any, fmt: str, output: str | None, max_rows: int) -> None:
    """Render a DuckDB relation as table/csv/json/parquet to stdout or `output` (atomically)."""
    import pyarrow.parquet as pq

    from .io import atomic_path

    columns, types = list(rel.columns), [str(t) for t in rel.types]
    if fmt == "table" and columns == ["explain_key", "explain_value"]:
        text = "".join(str(v) + "\n" for _, v in rel.fetchall())  # EXPLAIN: the plan as DuckDB draws it
    elif fmt == "table":
        _stream_table(rel, columns, types, output, max_rows)
        return
    elif fmt in ("csv", "json"):
        _stream(rel, fmt, columns, types, output)
        return
    elif fmt == "parquet":
        if not output:
            raise ValueError("--format parquet needs --output FILE")
        reader = rel.to_arrow_reader(STREAM_ROWS)
        with atomic_path(output) as tmp, pq.ParquetWriter(tmp, reader.schema, compression="zstd") as w:
            for batch in reader:
                w.write_batch(batch)
        print(f"wrote {output}", file=sys.stderr)
        return
    else:  # argparse's choices make this unreachable
        raise ValueError(f"unknown format {fmt}")
    if output:
        with atomic_path(output) as tmp:
            tmp.write_text(text, encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


# ---------------------------------------------------------------- audit


def _add_audit_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="read-only SQL over every output (views: prompts, pairs, rubrics, judgments, sft, dpo, eval, curation)",
        description="Run a read-only SQL query (DuckDB) over the pipeline outputs, or a canned report.",
    )
    p.add_argument("sql", nargs="?", help="one SELECT statement ('-' reads it from stdin)")
    p.add_argument("--root", default=".", help="project root (default: .)")
    p.add_argument("--report", metavar="NAME", help="run a canned report (see --list-reports)")
    p.add_argument("--list-reports", action="store_true", help="list the canned reports")
    p.add_argument("--views", action="store_true", help="list the views, their files and columns")
    p.add_argument("--show-sql", action="store_true", help="print the report's SQL instead of running it")
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    p.add_argument("--output", metavar="FILE", help="write the result to FILE (atomically) instead of stdout; never a "
                   "pipeline output or a non-regular file")
    p.add_argument("--force", action="store_true", help="let --output replace an existing regular file")
    p.add_argument("--max-rows", type=_int_in(-1), default=100, help="rows shown by --format table (-1: all; default 100)")
    p.add_argument("--timeout", type=_float_in(0.0, 1e9), default=600.0,
                   help="seconds a query may run before it is stopped (default 600; 0: no limit)")
    p.set_defaults(func=cmd_audit)


def _views_text(con: Any, root: str, detailed: bool) -> str:
    """The views with their columns; `detailed` adds types and the files each reads."""
    from .audit import broken_views, describe_views, view_files

    views, broken = describe_views(con), broken_views(con)
    if not detailed:  # after an error: one compact line per view
        return "".join(f"  {v}: {', '.join(c for c, _ in cols)}\n" for v, cols in views.items()) + "".join(
            f"  {v}: UNAVAILABLE\n" for v in broken
        )
    files = view_files(root)
    lines = []
    for view, cols in views.items():
        fs = files.get(view, [])
        shown = ", ".join(fs[:6]) + (" …" if len(fs) > 6 else "")
        lines.append(f"{view}  ({len(fs)} file{'' if len(fs) == 1 else 's'}{': ' + shown if fs else ''})")
        lines.append("    " + ", ".join(f"{c} {t}" for c, t in cols))
    for view, reason in broken.items():
        lines.append(f"{view}  UNAVAILABLE: {reason}")
    return "\n".join(lines) + "\n"


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit import REPORTS, AuditError, open_audit, query

    if args.list_reports:
        width = max(len(n) for n in REPORTS)
        for r in REPORTS.values():
            print(f"{r.name:<{width}}  {r.description}")
        return 0
    if args.report and args.sql:
        _err("audit: give either SQL or --report, not both")
        return 2
    if args.report:
        if args.report not in REPORTS:
            _err(f"audit: unknown report {args.report!r}; reports: {', '.join(REPORTS)}")
            return 2
        sql = REPORTS[args.report].sql
    elif args.sql == "-":
        sql = sys.stdin.read()
    else:
        sql = args.sql
    if args.show_sql:
        if not sql:
            _err("audit: --show-sql needs SQL or --report NAME")
            return 2
        sys.stdout.write(sql if sql.endswith("\n") else sql + "\n")
        return 0
    if not sql and not args.views:
        _err("audit: give a SQL query, --report NAME, --views or --list-reports")
        return 2
    if args.output and (problem := output_problem(args.output, args.root, args.force)):
        _err(f"audit: --output {args.output} {problem}")
        return 2
    try:
        con = open_audit(args.root)
    except AuditError as e:
        _err(f"audit: {e}")
        return 2
    try:
        if args.views:
            sys.stdout.write(_views_text(con, args.root, detailed=True))
            if not sql:
                return 0
        import threading

        watchdog = threading.Timer(args.timeout, con.interrupt) if args.timeout > 0 else None
        try:
            if watchdog:
                watchdog.start()
            rel = query(con, sql)
            if rel is None:  # not a query with a result; cannot happen for read-only statements
                return 0
            _write_result(rel, args.format, args.output, args.max_rows)
        except AuditError as e:
            _err(f"audit: {e}")
            sys.stderr.write("views:\n" + _views_text(con, args.root, detailed=False))
            return 2
        except Exception as e:  # noqa: BLE001 - a DuckDB error raised while fetching, or a bad --output
            import duckdb

            if not isinstance(e, (duckdb.Error, ValueError, OSError)):
                raise
            if isinstance(e, duckdb.InterruptException):
                _err(f"audit: the query ran longer than --timeout {args.timeout:g} s and was stopped")
                return 2
            _err(f"audit: {e}")
            if isinstance(e, duckdb.Error):
                sys.stderr.write("views:\n" + _views_text(con, args.root, detailed=False))
            return 2
        finally:
            if watchdog:
                watchdog.cancel()
        return 0
    finally:
        con.close()


# ---------------------------------------------------------------- diff


def _add_diff_parser(sub: argparse._SubParsersAction) -> None:
    from .diff import DIFF_KEYS

    p = sub.add_parser(
        "diff",
        help="row-level diff of a dataset between two iterations or two git revisions",
        description=(
            "Between iterations: --kind KIND --a IT --b IT (judgments, sft, dpo, eval). "
            "Between revisions: --path FILE (or --kind KIND [--iteration IT]) --rev-a REV [--rev-b REV|workspace]; "
            "old versions are read through DVC. Exit 0 identical, 1 different, 2 error."
        ),
    )
    p.add_argument("--root", default=".", help="project root, the git/DVC repository (default: .)")
    p.add_argument("--kind", choices=list(DIFF_KEYS), help="dataset kind")
    p.add_argument("--a", metavar="IT", help="first iteration (or model folder for eval)")
    p.add_argument("--b", metavar="IT", help="second iteration")
    p.add_argument("--rev-a", metavar="REV", help="git revision of the old version")
    p.add_argument("--rev-b", metavar="REV", default=None, help="git revision of the new version (default: workspace)")
    p.add_argument("--path", help="output file relative to the root, e.g. data/it1/judgments.parquet")
    p.add_argument("--iteration", metavar="IT", help="with --kind in revision mode: which iteration's file")
    p.add_argument("--key", action="append", metavar="COL", help="key column (repeat for a composite key)")
    p.add_argument("--ignore", action="append", default=[], metavar="COL", help="column not to compare (repeatable)")
    p.add_argument(
        "--compare-all", action="store_true", help="between iterations, also compare iteration/judge/seed/id columns"
    )
    p.add_argument("--sample", type=int, default=5, help="example rows shown per category (default 5)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_diff)


def cmd_diff(args: argparse.Namespace) -> int:
    from .diff import WORKSPACE, DiffError, dataset_path, diff_iterations, diff_revisions, render_text

    iter_mode = args.a is not None or args.b is not None
    rev_mode = args.rev_a is not None or args.rev_b is not None or args.path is not None
    try:
        if iter_mode and rev_mode:
            raise DiffError("use either --a/--b (iterations) or --rev-a/--rev-b (revisions), not both")
        if iter_mode:
            if not (args.a and args.b and args.kind):
                raise DiffError("between iterations give --kind, --a and --b")
            res = diff_iterations(
                args.root, args.kind, args.a, args.b, key_cols=args.key, ignore=args.ignore,
                compare_all=args.compare_all, sample=args.sample,
            )
        elif rev_mode:
            if not args.rev_a:
                raise DiffError("between revisions give --rev-a (and --rev-b, default workspace)")
            rel = args.path or (dataset_path(args.kind, args.iteration) if args.kind else None)
            if not rel:
                raise DiffError("between revisions give --path FILE or --kind KIND [--iteration IT]")
            res = diff_revisions(
                args.root, rel, args.rev_a, args.rev_b or WORKSPACE, kind=args.kind, key_cols=args.key,
                ignore=args.ignore, sample=args.sample,
            )
        else:
            raise DiffError("nothing to compare: give --kind K --a IT --b IT, or --path FILE --rev-a REV")
    except DiffError as e:
        _err(f"diff: {e}")
        return 2
    if args.format == "json":
        print(json.dumps(res.to_dict(), indent=2, default=str, ensure_ascii=False))
    else:
        sys.stdout.write(render_text(res))
    return 0 if res.identical else 1


# ---------------------------------------------------------------- judge


def _add_judge_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "judge",
        help="apply a judge to a pairwise or Likert file (batch inference)",
        description="Judge FILE with any judge; writes Parquet (verdicts/scores, parse status, texts) and prints a summary.",
    )
    p.add_argument("file", help="LLMBar JSON, pairwise JSONL/Parquet, RewardBench / RewardBench 2 / JudgeBench / RM-Bench "
                   "file (as published) or Hugging Face id, Likert JSONL/Parquet")
    p.add_argument("--format", required=True,
                   choices=["llmbar", "pairwise", "rewardbench", "rewardbench2", "judgebench", "rmbench", "likert"])
    p.add_argument("--model", required=True, help="models/itK, a local checkpoint, a Hugging Face id, or the served model name")
    p.add_argument("--output", required=True, help="Parquet file to write (never a pipeline output)")
    p.add_argument("--force", action="store_true", help="let --output replace an existing regular file")
    p.add_argument("--layout", default="judgeloop", choices=["judgeloop", "prometheus", "biggen"], help="Likert file layout")
    p.add_argument("--limit", type=_int_in(1), help="judge at most N examples")
    p.add_argument("--orders", default="both", choices=["both", "random_seeded"])
    p.add_argument("--order-seed", type=_int_in(0), default=0)
    p.add_argument("--samples", type=_int_in(1, 1024), default=1, help="k > 1: majority vote over k sampled judgments")
    p.add_argument("--temperature", type=_float_in(0.0, 100.0, lo_open=True), default=0.7,
                   help="sampling temperature when --samples > 1")
    p.add_argument("--max-tokens", type=_int_in(1, 1_000_000), default=256)
    p.add_argument("--fallback", default="forced", choices=["forced", "none"], help="verdict fallback (see README)")
    p.add_argument("--template", default="standard", choices=["standard", "short"],
                   help="pairwise judge prompt: the one the judge was trained with (params judge_template)")
    p.add_argument("--best-of-n", default="all_at_once", choices=["all_at_once", "knockout"],
                   help="rewardbench2: the official all-four-at-once prompt, or a seeded pairwise knockout (reported apart)")
    p.add_argument("--backend", default="transformers", choices=["auto", "transformers", "vllm", "openai"],
                   help="auto: vllm where installed on a GPU or an AVX-512 CPU, else transformers")
    p.add_argument("--base-url", action="append", help="openai backend: server URL (repeat for several)")
    p.add_argument("--api-key-env", help="openai backend: environment variable holding the API key")
    p.add_argument("--batch-size", type=_int_in(1, 65536), default=16)
    p.set_defaults(func=cmd_judge)


def cmd_judge(args: argparse.Namespace) -> int:
    from .apply import judge_file
    from .config import GenerationConfig, OpenAIConfig
    from .loaders import InputError
    from .pipeline import setup_logging

    setup_logging()
    if problem := output_problem(args.output, ".", args.force):
        _err(f"judge: --output {args.output} {problem}")
        return 2
    if args.backend != "openai" and (problem := _local_model_problem(args.model)):
        _err(f"judge: --model {args.model}: {problem}")
        return 2
    openai = OpenAIConfig(base_urls=args.base_url or OpenAIConfig().base_urls, api_key_env=args.api_key_env,
                          model=args.model if args.backend == "openai" else None)
    gen = GenerationConfig(backend=args.backend, batch_size=args.batch_size, cache_dir=None, openai=openai)
    try:
        summary = judge_file(
            args.file, args.format, args.model, gen, args.output, limit=args.limit, orders=args.orders,
            order_seed=args.order_seed, samples=args.samples, temperature=args.temperature, max_tokens=args.max_tokens,
            fallback=args.fallback, layout=args.layout, template=args.template, best_of_n=args.best_of_n,
        )
    except (InputError, ValueError, OSError, RuntimeError) as e:
        _err(f"judge: {e}")
        return 2
    keys = [k for k in ("accuracy", "accuracy_ci95", "accuracy_by_order", "accuracy_forced", "position_consistency", "parse_rate", "forced_rate",
                        "pearson", "spearman", "kendall_tau", "exact", "within_1", "n_examples", "n", "knockout_draws") if k in summary]
    rows = [(k, json.dumps(summary[k]) if isinstance(summary[k], dict) else summary[k]) for k in keys]
    if "majority" in summary:
        rows.append(("majority_accuracy", summary["majority"].get("majority_accuracy")))
    if "rewardbench" in summary:
        rows.append(("rewardbench_overall", summary["rewardbench"]["all"].get("overall")))
    bench = summary.get("benchmark")
    if bench:
        numbers = [("overall", bench["overall"]), *bench["sections"].items(), *((k, bench[k]) for k in ("easy", "normal", "hard") if k in bench)]
        rows += [(f"{bench['name']}: {k}", "-" if v is None else round(v, 4)) for k, v in numbers]
    rows += [("judge", summary["judge"]), ("output", args.output), ("seconds", summary["seconds"])]
    print(format_table(["metric", "value"], ["VARCHAR", "VARCHAR"], [(k, str(v)) for k, v in rows], more=False))
    if "scoring_rule" in summary:
        print(f"scoring: {summary['scoring_rule']}")
    if bench and bench["scoring_rule"] != summary.get("scoring_rule"):
        print(f"{bench['name']} scoring: {bench['scoring_rule']}")
    return 0


def _local_model_problem(model: str) -> str | None:
    """What is wrong with `--model` when it names a local path (None: fine, or a hub id / packaged:NAME)."""
    p = Path(model).expanduser()
    # `org/name` is a hub id unless a local folder `org` exists (models/it9 is a typo, not a hub id)
    looks_local = p.exists() or model.startswith(("/", ".", "~")) or model.count("/") > 1 or (
        model.count("/") == 1 and p.parent.is_dir())
    if not looks_local:
        return None
    if p.is_file():
        return "is a file, not a model directory"
    if not p.is_dir():
        return "no such model directory"
    if not (p / "config.json").exists():
        return "not a model directory (no config.json)"
    return None


# ---------------------------------------------------------------- stage


def _add_stage_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stage",
        help="run one pipeline stage (what dvc.yaml calls)",
        description="Run a pipeline stage: judgeloop stage NAME [--iteration IT] [--params FILE] [-v].",
    )
    p.add_argument("--root", default=".", help="project root to run in (default: .)")
    p.add_argument("name", help="seed, prompts, pairs, judge, curate, validate, train, evaluate, report")
    p.add_argument("stage_args", nargs=argparse.REMAINDER, help="passed to the stage: --iteration IT --params FILE -v")
    p.set_defaults(func=cmd_stage)


def cmd_stage(args: argparse.Namespace) -> int:
    import os

    from .pipeline import STAGES, run_stage

    # --root may also come after NAME; everything else belongs to the stage.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--root")
    extra, rest = pre.parse_known_args(args.stage_args)
    root = extra.root or args.root
    if args.name not in STAGES:
        _err(f"stage: unknown stage {args.name!r}; stages: {', '.join(STAGES)}")
        return 2
    if root != ".":
        if not Path(root).is_dir():
            _err(f"stage: --root {root}: not a directory")
            return 2
        os.chdir(root)  # stage paths are relative to the project root
    return run_stage(args.name, rest)


# ---------------------------------------------------------------- preset


def _add_preset_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preset",
        help="write a named params set (configs/presets/NAME.yaml) into params.yaml",
        description="Merge a preset into params.yaml, keeping its comments; validated before the file is replaced. "
                    "Then run `dvc repro` or `dvc exp run`. `git checkout params.yaml` undoes it.",
    )
    p.add_argument("name", help="a preset name (configs/presets/NAME.yaml) or a YAML file of params to set")
    p.add_argument("--root", default=".", help="project root (default: .)")
    p.set_defaults(func=cmd_preset)


def cmd_preset(args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .presets import apply_preset

    try:
        changed = apply_preset(args.name, args.root)
    except (ConfigError, OSError) as e:
        _err(f"preset: {e}")
        return 2
    print(f"params.yaml: {len(changed)} value(s) set from {args.name}" + (": " + ", ".join(changed) if changed else ""))
    return 0


# ---------------------------------------------------------------- plan


def _add_plan_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="print how many generations and tokens each stage will make (a dry run; no model loaded)",
        description="From params.yaml and the input files alone: per stage, the generations and the most new "
                    "tokens they may take. Prompt counts come from the prompts stage's own ingest and split.",
    )
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--preset", default=None, help="plan params.yaml with this preset merged in (nothing is written)")
    p.add_argument("--pool", type=_int_in(1, 10**9), default=None,
                   help="number of instructions, where the prompt sources cannot be read here (a hub id)")
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    import yaml

    from .config import ConfigError, load_params, parse_params
    from .plan import format_plan
    from .presets import merged_text

    if args.pool is not None and args.pool < 1:
        _err("plan: --pool must be a positive number of instructions")
        return 2
    try:
        if args.preset:
            path = Path(args.params)
            text, _, _ = merged_text(args.preset, path.parent, path.name)
            params = parse_params(yaml.safe_load(text), f"{path} with preset {args.preset}")
        else:
            params = load_params(args.params)
        print(format_plan(params, args.pool))
    except (ConfigError, ValueError, OSError) as e:
        _err(f"plan: {e}")
        return 2
    return 0


# ---------------------------------------------------------------- entry point


class _Parser(argparse.ArgumentParser):
    """A usage error is one line (which argument, what is allowed), not the whole usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="judgeloop",
        description="judgeloop: SQL audit, dataset diff, applying a judge, pipeline stages, params presets, run plans.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # One registration function per command, in the order `--help` lists them.
    _add_audit_parser(sub)
    _add_diff_parser(sub)
    _add_judge_parser(sub)
    _add_stage_parser(sub)
    _add_preset_parser(sub)
    _add_plan_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (the console script passes it to sys.exit)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return int(e.code or 0)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:  # `judgeloop audit ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
