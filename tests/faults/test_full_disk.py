"""A full disk during a write: the stage says which output it could not write, exits 1, and
leaves the previous output (or none) and no temporary file; with space again, the rerun completes.

Two ways to fill the disk:
* a real one: a 16 KiB tmpfs mounted over the project's data/ folder in a
  private mount namespace (`unshare -rm`, no root needed where user
  namespaces are allowed; skipped where they are not);
* a patched writer (always runs): pyarrow's `write_table` or `json.dump`
  writes part of the file and then fails with ENOSPC, inside the real
  stage process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from .conftest import ROOT, assert_fails, assert_ok, assert_untouched, stage_env

HALF_PARQUET_THEN_ENOSPC = """
import errno, pyarrow.parquet as pq
def full_disk(table, where, *a, **k):
    with open(where, "wb") as f:
        f.write(b"PAR1" + b"\\0" * 4096)  # half a file, then the disk is full
    raise OSError(errno.ENOSPC, "No space left on device")
pq.write_table = full_disk
"""

# the first JSON output written fails half-way (metrics files go through write_json)
HALF_JSON_THEN_ENOSPC = """
import errno, pathlib
_orig = pathlib.Path.write_text
def full_disk(self, data, *a, **k):
    if self.name.endswith(".tmp") and ".json." in self.name:
        _orig(self, data[: len(data) // 2], *a, **k)
        raise OSError(errno.ENOSPC, "No space left on device")
    return _orig(self, data, *a, **k)
pathlib.Path.write_text = full_disk
"""


def test_patched_writer_full_disk_keeps_previous_output(project):
    assert_ok(project.stage("prompts"))
    project.set_params({"prompts": {"split": {"seed": 7}}})  # a change, so the rerun writes a different file
    before = project.outputs()
    err = assert_fails(project.stage("prompts", inject=HALF_PARQUET_THEN_ENOSPC),
                       "stage prompts failed:", "cannot write data/prompts.parquet", "No space left on device")
    assert "previous version, if any, is unchanged" in err
    assert_untouched(project, before)
    assert_ok(project.stage("prompts"))  # space again
    assert project.outputs()["data/prompts.parquet"] != before["data/prompts.parquet"]


def test_patched_writer_full_disk_on_a_metrics_file(project):
    """The judge-free path of a stage that writes Parquet then JSON: curate's funnel fails half-way."""
    project.write_pairs()
    project.write_judgments()
    before = project.outputs()
    err = assert_fails(project.stage("curate", "--iteration", "it1", inject=HALF_JSON_THEN_ENOSPC),
                       "cannot write stats/it1/curation.json", "No space left on device")
    assert "Traceback" not in err
    after = project.outputs()
    assert "stats/it1/curation.json" not in after and project.temporaries() == []
    assert {k: v for k, v in after.items() if k in before} == before  # inputs untouched
    assert_ok(project.stage("curate", "--iteration", "it1"))
    assert (project.root / "stats/it1/curation.json").exists()


def _unshare_ok() -> bool:
    if not shutil.which("unshare"):
        return False
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", d], capture_output=True)
    return r.returncode == 0


@pytest.mark.skipif(not _unshare_ok(), reason="no user/mount namespaces here (unshare -rm) for a small tmpfs")
def test_real_full_filesystem(project):
    """data/ is a 16 KiB tmpfs: prompts.parquet (~28 KB) does not fit."""
    (project.root / "data").mkdir()
    script = (
        "mount -t tmpfs -o size=16k tmpfs data || exit 99\n"
        f"{sys.executable} {ROOT / 'stages' / 'prompts.py'}; rc=$?\n"
        "echo \"LEFT: $(ls -A data | tr '\\n' ' ')\" >&2\n"
        "exit $rc\n"
    )
    res = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=project.root, env=stage_env(),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode != 99, res.stderr
    assert_fails(res, "stage prompts failed:", "cannot write data/prompts.parquet", "No space left on device")
    assert "LEFT: \n" in res.stderr or res.stderr.rstrip().endswith("LEFT:"), res.stderr[-2000:]  # nothing left in data/
    assert_ok(project.stage("prompts"))  # the same folder with room
    assert (project.root / "data/prompts.parquet").stat().st_size > 16 * 1024


def test_temporaries_of_a_killed_write_are_removed_by_the_next_write(project):
    """SIGKILL mid-write leaves `.NAME.PID.xxxxxxxx.tmp`; the next write of NAME removes it
    when PID is gone, and leaves a live writer's temporary alone."""
    data = project.root / "data"
    data.mkdir()
    dead = 4_000_000
    while True:
        try:
            os.kill(dead, 0)
            dead -= 1
        except ProcessLookupError:
            break
        except OSError:
            dead -= 1
    stale = data / f".prompts.parquet.{dead}.k1ll3d_x.tmp"
    stale.write_bytes(b"PAR1 half")
    live = data / f".prompts.parquet.{os.getpid()}.l1ve_abc.tmp"  # this pytest process is alive
    live.write_bytes(b"PAR1 in flight")
    other = data / f".pairs.parquet.{dead}.k1ll3d_y.tmp"  # another output's: not this write's business
    other.write_bytes(b"x")
    assert_ok(project.stage("prompts"))
    assert not stale.exists() and live.exists() and other.exists()
