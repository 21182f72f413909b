"""Read instruction sources (JSONL, CSV, Parquet, Hugging Face datasets).

Each loader returns plain records {id, instruction, category, source_row}.
Bad input fails with the file, the row and the field named: a missing
column, an empty file, bytes that are not UTF-8, a duplicate id.

The field checks below (`text_field`, `id_field`, `int_field`,
`unique_ids`) are what every input format (instructions, LLMBar, pairwise,
RewardBench, rubric sets) uses: a value of the wrong JSON type is refused
with one line, never converted (a number where text is expected, null, a
boolean label, a score of 3.5 or NaN).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from .config import PromptSource


class InputError(ValueError):
    """An input file is unusable; the message names the file, row and field."""


BUILTIN_INSTRUCTIONS = "instructions.jsonl"


def _kind(value: Any) -> str:
    """How a value reads in an error: its JSON type and a short preview."""
    names = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "text",
             list: "a list", dict: "an object"}
    name = names.get(type(value), type(value).__name__)
    if value is None:
        return name
    preview = repr(value) if not isinstance(value, (list, dict)) else ""
    return f"{name} {preview[:40]}".rstrip()


def text_field(row: dict[str, Any], key: str, where: str, *, optional: bool = False, blank_ok: bool = False) -> str | None:
    """`row[key]` as text. Absent or null is an error unless `optional` (then None); so is blank text unless `blank_ok`."""
    value = row.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        got = "missing" if key not in row else _kind(value)
        raise InputError(f"{where}: field {key!r} must be a string, got {got}")
    if not blank_ok and not optional and not value.strip():
        raise InputError(f"{where}: field {key!r} is empty")
    return value


def id_field(row: dict[str, Any], key: str, where: str) -> str:
    """An id: non-empty text or an integer (a boolean, a float, a list or null is refused)."""
    value = row.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, str) or (value is None and key in row):
        raise InputError(f"{where}: field {key!r} is empty")
    got = "missing" if key not in row else _kind(value)
    raise InputError(f"{where}: field {key!r} must be a non-empty id (text or an integer), got {got}")


_INT_TEXT = re.compile(r"^\s*[+-]?\d+\s*$")


def int_field(row: dict[str, Any], key: str, where: str, lo: int, hi: int) -> int:
    """An integer in [lo, hi]: a JSON integer, a float with no fraction (Parquet doubles), or the digits
    of one as text (CSV, some hub datasets). A boolean, 3.5, NaN or inf is refused, never rounded."""
    value = row.get(key)
    n: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        n = int(value)
    elif isinstance(value, str) and _INT_TEXT.match(value):
        n = int(value)
    if n is None or not lo <= n <= hi:
        got = "missing" if key not in row else _kind(value)
        raise InputError(f"{where}: field {key!r} must be an integer from {lo} to {hi}, got {got}")
    return n


def text_list_field(row: dict[str, Any], key: str, where: str, size: int | None = None) -> tuple[str, ...]:
    """`row[key]` as a non-empty list of texts (exactly `size` of them when given); blank texts are allowed."""
    value = row.get(key)
    if isinstance(value, tuple):
        value = list(value)
    wanted = f"a list of {size} strings" if size else "a non-empty list of strings"
    if not isinstance(value, list) or not value or (size and len(value) != size):
        got = "missing" if key not in row else f"a list of {len(value)}" if isinstance(value, list) else _kind(value)
        raise InputError(f"{where}: field {key!r} must be {wanted}, got {got}")
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise InputError(f"{where}: field {key!r} item {i} must be a string, got {_kind(text)}")
    return tuple(value)


def unique_ids(ids: list[str], at: Callable[[int], str], where: str, generated: Callable[[int], bool] = lambda i: False) -> None:
    """Every id occurs once; a clash names both rows, and says when an id was generated (from the row's position)."""
    seen: dict[str, int] = {}
    for i, rid in enumerate(ids):
        if rid in seen:
            j = seen[rid]
            how = "; ids generated from row positions must not collide with explicit ones" if generated(i) or generated(j) else ""
            raise InputError(f"{where}: {at(i)}: duplicate id {rid!r}, first seen at {at(j)}{how}")
        seen[rid] = i


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


def read_hf_split(source: str, split: str) -> list[dict[str, Any]]:
    """The rows of a Hugging Face dataset id (or a local dataset folder) split; any failure is one InputError."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise InputError(f"loading {source!r} from the Hugging Face hub needs the `datasets` package") from None
    try:
        ds = datasets.load_dataset(source, split=split)
    except Exception as e:  # hub, cache, offline and split errors all end here
        raise InputError(
            f"hf dataset {source!r} (split {split!r}): could not load ({type(e).__name__}: {e}); "
            "pass a local .parquet/.jsonl/.json file or a dataset available offline"
        ) from None
    return [dict(r) for r in ds]


LOCAL_SUFFIXES = (".parquet", ".jsonl", ".json")


def read_rows(source: str, split: str) -> tuple[list[dict[str, Any]], str]:
    """(rows, where): a local .parquet, .jsonl or .json file (a JSON list of objects, or JSON lines), else a
    Hugging Face dataset id or local dataset folder read with `split`. `where` names the source in errors."""
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in LOCAL_SUFFIXES:
        return read_hf_split(source, split), f"hf dataset {source!r} (split {split!r})"
    if suffix == ".parquet":
        return read_parquet_rows(path), str(path)
    if suffix == ".json" and _read_text(path).lstrip().startswith("["):
        return _json_list(path), str(path)
    return read_jsonl(path), str(path)


def _json_list(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise InputError(f"{path}: row {i}: expected a JSON object, got {type(row).__name__}")
    return data


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
        here = f"{where}: {at(i)}"
        instr = text_field(row, src.instruction_column, here, blank_ok=True)  # blank ones are dropped as too short
        rid = None
        if src.id_column:
            rid = id_field(row, src.id_column, here)
            if rid in seen:
                raise InputError(
                    f"{here}: duplicate id {rid!r}, first seen at {at(seen[rid])}; "
                    "ids must be unique, or set id_column: null to derive ids from the text"
                )
            seen[rid] = i
        cat = text_field(row, src.category_column, here, optional=True) if src.category_column else None
        cat = cat.strip() if cat is not None else None  # blank (an empty CSV cell) is no category
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
