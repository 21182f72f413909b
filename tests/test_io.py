"""Atomic outputs: a failed write leaves the old file (or none) and no temp files."""

import os
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from judgeloop import io as jio
from judgeloop.io import atomic_path, read_json, read_parquet, sha256_file, sha256_text, write_json, write_parquet


def table(n=3, tag="x"):
    return pa.table({"id": [f"{tag}{i}" for i in range(n)], "v": list(range(n))})


def failing_write_table(table, where, *args, **kwargs):
    """Writes some bytes where it was told to, then fails like a full disk."""
    with open(where, "wb") as f:
        f.write(b"PAR1 half a file")
    raise OSError(28, "No space left on device")


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# --- write_parquet ------------------------------------------------------------------------


def test_write_parquet_round_trip(tmp_path):
    dest = tmp_path / "sub" / "dir" / "t.parquet"  # parents are created
    assert write_parquet(table(), dest) == dest
    assert read_parquet(dest).equals(table())
    assert leftovers(dest.parent, {"t.parquet"}) == []


def test_write_parquet_is_deterministic(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    write_parquet(table(50), a)
    write_parquet(table(50), b)
    assert sha256_file(a) == sha256_file(b)


def test_write_parquet_replaces_existing(tmp_path):
    dest = tmp_path / "t.parquet"
    write_parquet(table(tag="old"), dest)
    write_parquet(table(tag="new"), dest)
    assert read_parquet(dest).column("id").to_pylist() == ["new0", "new1", "new2"]
    assert leftovers(tmp_path, {"t.parquet"}) == []


def test_write_parquet_failure_keeps_previous_content(tmp_path, monkeypatch):
    dest = tmp_path / "t.parquet"
    write_parquet(table(tag="old"), dest)
    before = dest.read_bytes()
    monkeypatch.setattr(pq, "write_table", failing_write_table)
    with pytest.raises(OSError, match="No space left on device"):
        write_parquet(table(tag="new"), dest)
    assert dest.read_bytes() == before
    assert read_parquet(dest).column("id").to_pylist() == ["old0", "old1", "old2"]
    assert leftovers(tmp_path, {"t.parquet"}) == []


def test_write_parquet_failure_without_previous_file(tmp_path, monkeypatch):
    dest = tmp_path / "t.parquet"
    monkeypatch.setattr(pq, "write_table", failing_write_table)
    with pytest.raises(OSError, match="No space left on device"):
        write_parquet(table(), dest)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_write_parquet_interrupted_cleans_up(tmp_path, monkeypatch):
    dest = tmp_path / "t.parquet"

    def interrupted(table, where, *a, **kw):
        Path(where).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_parquet(table(), dest)
    assert list(tmp_path.iterdir()) == []


def test_write_parquet_leaves_other_files_alone(tmp_path, monkeypatch):
    (tmp_path / "other.txt").write_text("keep me")
    monkeypatch.setattr(pq, "write_table", failing_write_table)
    with pytest.raises(OSError):
        write_parquet(table(), tmp_path / "t.parquet")
    assert leftovers(tmp_path, set()) == ["other.txt"]
    assert (tmp_path / "other.txt").read_text() == "keep me"


# --- write_json ----------------------------------------------------------------------------


def test_write_json_round_trip_sorted_and_newline(tmp_path):
    dest = tmp_path / "m" / "metrics.json"
    obj = {"b": 1, "a": [1.5, None, "x"], "p": Path("some/where")}
    write_json(obj, dest)
    text = dest.read_text(encoding="utf-8")
    assert text.endswith("\n")
    assert text.index('"a"') < text.index('"b"')  # sorted keys: stable diffs
    assert read_json(dest) == {"a": [1.5, None, "x"], "b": 1, "p": "some/where"}


def test_written_files_are_world_readable(tmp_path):
    write_json({"a": 1}, tmp_path / "a.json")
    write_parquet(table(), tmp_path / "t.parquet")
    for name in ("a.json", "t.parquet"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644


def test_write_json_failure_keeps_previous_content(tmp_path, monkeypatch):
    dest = tmp_path / "metrics.json"
    write_json({"old": True}, dest)
    before = dest.read_bytes()
    real_write_text = Path.write_text

    def failing_write_text(self, data, *a, **kw):
        real_write_text(self, data[: len(data) // 2], *a, **kw)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", failing_write_text)
    with pytest.raises(OSError, match="No space left on device"):
        write_json({"new": True, "more": list(range(100))}, dest)
    monkeypatch.undo()
    assert dest.read_bytes() == before
    assert read_json(dest) == {"old": True}
    assert leftovers(tmp_path, {"metrics.json"}) == []


def test_write_json_unserialisable_keeps_previous_content(tmp_path):
    dest = tmp_path / "metrics.json"
    write_json({"old": True}, dest)

    class Bad:
        def __str__(self):
            raise RuntimeError("cannot serialise")

    with pytest.raises(RuntimeError):
        write_json({"x": Bad()}, dest)
    assert read_json(dest) == {"old": True}
    assert leftovers(tmp_path, {"metrics.json"}) == []


def test_write_json_failure_without_previous_file(tmp_path, monkeypatch):
    dest = tmp_path / "metrics.json"

    def failing_write_text(self, data, *a, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", failing_write_text)
    with pytest.raises(OSError):
        write_json({"a": 1}, dest)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


# --- atomic_path ----------------------------------------------------------------------------


def test_atomic_path_temp_is_next_to_dest_and_hidden(tmp_path):
    dest = tmp_path / "out.bin"
    with atomic_path(dest, suffix=".bin") as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".out.bin.") and tmp.name.endswith(".bin.tmp")
        assert tmp.exists() and not dest.exists()
        tmp.write_bytes(b"data")
    assert dest.read_bytes() == b"data"
    assert not tmp.exists()


def test_atomic_path_error_after_partial_write(tmp_path):
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    with pytest.raises(ValueError):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"new but partial")
            raise ValueError("boom")
    assert dest.read_bytes() == b"old"
    assert leftovers(tmp_path, {"out.bin"}) == []


def test_atomic_path_error_when_writer_removed_temp(tmp_path):
    dest = tmp_path / "out.bin"
    with pytest.raises(ValueError):
        with atomic_path(dest) as tmp:
            tmp.unlink()
            raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []


# --- read_parquet ----------------------------------------------------------------------------


def test_read_parquet_missing_file_names_it(tmp_path):
    f = tmp_path / "nope.parquet"
    with pytest.raises(FileNotFoundError) as ei:
        read_parquet(f)
    assert str(f) in str(ei.value)


@pytest.mark.parametrize("content", [b"", b"not parquet at all", b"PAR1garbagePAR1"])
def test_read_parquet_corrupted_names_path(tmp_path, content):
    f = tmp_path / "bad.parquet"
    f.write_bytes(content)
    with pytest.raises(ValueError) as ei:
        read_parquet(f)
    assert str(f) in str(ei.value)
    assert "not a readable Parquet file" in str(ei.value)


def test_read_parquet_truncated_file_names_path(tmp_path):
    f = tmp_path / "t.parquet"
    write_parquet(table(200), f)
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as ei:
        read_parquet(f)
    assert str(f) in str(ei.value)


# --- hashes ------------------------------------------------------------------------------------


def test_sha256_helpers(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes("héllo".encode("utf-8"))
    assert sha256_file(f) == sha256_text("héllo")
    assert sha256_file(f, chunk=2) == sha256_text("héllo")
    assert sha256_text("a") != sha256_text("b")
    assert len(sha256_text("")) == 64


def test_io_uses_module_level_pq():
    """The atomicity tests patch pyarrow.parquet.write_table; io must call it through the module."""
    assert jio.pq is pq
