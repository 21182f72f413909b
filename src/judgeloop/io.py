"""Atomic file outputs and small file helpers.

Every output is written to a temporary file in the destination folder and
renamed into place, so a crash, a full disk or a kill leaves either the old
file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(dest: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `dest`; rename it onto `dest` on success.

    The writer may turn the temporary path into a directory (model checkpoints).
    On any error the temporary file or directory is removed and `dest` is left
    as it was; an OSError (a full disk, a read-only folder) is re-raised with
    `dest` named. Temporaries left by a process killed mid-write (SIGKILL
    cannot be cleaned up after) are removed by the next write of `dest`.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(dest)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.{os.getpid()}.", suffix=suffix + ".tmp", dir=dest.parent)
        os.close(fd)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make outputs private to one user
    except OSError as e:
        _reraise_naming(e, dest)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except BaseException as e:
        _remove(tmp_path)
        if isinstance(e, OSError):
            _reraise_naming(e, dest)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _reraise_naming(e: OSError, dest: Path) -> NoReturn:
    """Raise the same kind of OSError, its message naming the output that could not be written."""
    if str(dest) in str(e):
        raise e
    reason = e.strerror or str(e)  # strerror: without "[Errno N]" and the temporary file's name
    if e.errno == errno.ENOSPC and "No space left" not in reason:
        reason += " (No space left on device)"
    msg = f"cannot write {dest}: {reason}; nothing was written (a previous version, if any, is unchanged)"
    raise (OSError(e.errno, msg) if e.errno else OSError(msg)) from e


def _remove_stale_temps(dest: Path) -> None:
    """Delete `.NAME.PID.*.tmp` siblings whose writer process no longer runs."""
    # mkstemp's random part is 8 characters of [a-z0-9_]
    stale = re.compile(rf"\.{re.escape(dest.name)}\.(\d+)\.[a-z0-9_]{{8}}(\..*)?\.tmp")
    for p in dest.parent.glob(f".{glob.escape(dest.name)}.*.tmp"):
        m = stale.fullmatch(p.name)
        if m and not _alive(int(m.group(1))):
            log.info("removing %s, left by a killed write of %s", p, dest)
            _remove(p)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True


# Row groups of 128k rows let DuckDB scan one large file on several threads
# (pyarrow's default is 1M rows: one thread per file below that).
ROW_GROUP_SIZE = 128 * 1024


def write_parquet(table: pa.Table, dest: str | Path) -> Path:
    """Write a table atomically (zstd, deterministic bytes for the same content)."""
    with atomic_path(dest) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_SIZE)
    return Path(dest)


def read_parquet(path: str | Path) -> pa.Table:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (has the stage that makes it run? try `dvc repro`)")
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"{path}: not a readable Parquet file ({e}); re-run the stage that writes it") from None


def write_json(obj: Any, dest: str | Path) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return Path(dest)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (has the stage that makes it run? try `dvc repro`)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e}); re-run the stage that writes it") from None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def inside(path: str | Path, root: str | Path = ".") -> Path:
    """`path`, resolved (symlinks followed), if it stays inside `root`; else a ValueError naming both.

    For every path built from user input (an iteration or set name, a link
    under data/): nothing is written outside the project."""
    root_r = Path(root).resolve()
    resolved = (root_r / path).resolve()
    if resolved != root_r and not resolved.is_relative_to(root_r):
        raise ValueError(f"{path}: resolves to {resolved}, outside the project ({root_r}); refusing to use it")
    return resolved
