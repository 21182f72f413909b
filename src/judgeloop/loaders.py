"""Read instruction sources (JSONL, CSV, Parquet, Hugging Face datasets).

Each loader returns plain records {id, instruction, category, source_row}.
Bad input fails with the file, the row and the field named: a missing
column, an empty file, bytes that are not UTF-8, a duplicate id.
"""

from __future__ import annotations

import csv
import io
import json
from importlib import resources
from pathlib import Path
from typing import Any

from .config import PromptSource


class InputError(ValueError):
    """An input file is unusable; the message names the file, row and field."""


BUILTIN_INSTRUCTIONS = "instructions.jsonl"


def builtin_path() -> Path:
    return Path(str(resources.files("judgeloop") / "data" / BUILTIN_INSTRUCTIONS))


def _read_text(path: Path) -> str:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")  # tolerate the BOM Excel writes
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"{path}: line {line}: not valid UTF-8 (byte offset {e.start})") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return _jsonl_with_lines(path)[0]


def _jsonl_with_lines(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The rows and the 1-based line each came from (blank lines are skipped)."""
    rows, lines = [], []
    # split on "\n" only: str.splitlines() also breaks on U+2028/U+2029/U+0085,
    # which JSON allows raw inside strings
    for lineno, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: line {lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise InputError(f"{path}: line {lineno}: expected a JSON object, got {type(obj).__name__}")
        rows.append(obj)
        lines.append(lineno)
    return rows, lines


def read_csv(path: Path) -> list[dict[str, Any]]:
    return _csv_with_lines(path)[0]


def _csv_with_lines(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The rows and the 1-based line each starts on (a quoted field may span lines)."""
    reader = csv.DictReader(io.StringIO(_read_text(path)))
    rows, lines, end = [], [], 1  # line 1 is the header
    for row in reader:
        rows.append(row)
        lines.append(end + 1)
        end = reader.line_num
    return rows, lines


def read_parquet_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        return pq.read_table(path).to_pylist()
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{path}: not a readable Parquet file ({e})") from None


def read_hf(src: PromptSource) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise InputError("prompt source kind 'hf' needs the `datasets` package") from None
    try:
        ds = datasets.load_dataset(src.path, src.hf_config, split=src.hf_split)
    except Exception as e:  # hub, cache and script errors all end here
        raise InputError(f"hf dataset {src.path!r} (config {src.hf_config!r}, split {src.hf_split!r}): {e}") from None
    return [dict(r) for r in ds]


def load_source(src: PromptSource) -> list[dict[str, Any]]:
    """Records {id, instruction, category, source_row, source} from one source."""
    lines: list[int] = []
    if src.kind == "builtin":
        path = builtin_path()
        rows, lines = _jsonl_with_lines(path)
    elif src.kind == "hf":
        path, rows = Path(src.path or ""), read_hf(src)
    elif src.kind == "parquet":
        path, rows = Path(src.path or ""), read_parquet_rows(Path(src.path or ""))
    else:
        path = Path(src.path or "")
        rows, lines = (_jsonl_with_lines if src.kind == "jsonl" else _csv_with_lines)(path)
    where = src.path if src.kind != "builtin" else f"builtin:{BUILTIN_INSTRUCTIONS}"

    def at(i: int) -> str:  # "row 3" is 0-based, as in the source_row column; text files add their line
        return f"row {i} (line {lines[i]})" if lines else f"row {i}"

    name = src.name or (where if src.kind != "builtin" else "builtin")
    if not rows:
        raise InputError(f"{where}: no rows (empty file or dataset)")
    wanted = [c for c in (src.id_column, src.instruction_column, src.category_column) if c]
    present = set().union(*(r.keys() for r in rows[:1000]))
    for col in wanted:
        if col == src.category_column and col not in present:
            continue  # categories are optional; absent ones can be labelled by the LLM
        if col not in present:
            raise InputError(f"{where}: missing column {col!r}; columns present: {sorted(present)}")
    records: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        instr = row.get(src.instruction_column)
        if not isinstance(instr, str):
            raise InputError(
                f"{where}: {at(i)}: field {src.instruction_column!r} must be a string, got {type(instr).__name__}"
            )
        rid = None
        if src.id_column:
            rid = row.get(src.id_column)
            if rid is None or str(rid).strip() == "":
                raise InputError(f"{where}: {at(i)}: field {src.id_column!r} is empty")
            rid = str(rid).strip()
            if rid in seen:
                raise InputError(
                    f"{where}: {at(i)}: duplicate id {rid!r}, first seen at {at(seen[rid])}; "
                    "ids must be unique, or set id_column: null to derive ids from the text"
                )
            seen[rid] = i
        cat = row.get(src.category_column) if src.category_column else None
        cat = str(cat).strip() if cat is not None else None
        records.append(
            {
                "id": rid,
                "instruction": instr,
                "category": cat or None,
                "source_row": i,
                "source": name,
            }
        )
    return records
