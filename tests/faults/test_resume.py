"""A judge stage killed with SIGKILL mid-way resumes without redoing finished shards.

Real model, real stage script; the uninterrupted run is the reference.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from judgeloop.io import read_json, write_parquet
from judgeloop.schemas import to_table

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

PAIRS = [
    ("p1", "What is 3 + 4?", "3 + 4 = 7.", "3 + 5 = 8."),
    ("p2", "Name the largest planet.", "Jupiter.", "The smallest planet is Mercury."),
    ("p3", "Translate 'cat' to French.", "chat", "'dog' in French is 'chien'."),
    ("p4", "Give an even prime.", "2", "3 is an odd prime."),
]


def make_project(base: Path, seed_model: Path, cache: str) -> Path:
    base.mkdir()
    (base / "models").mkdir()
    (base / "models" / "it0").symlink_to(seed_model)
    rows = []
    for pid, x, w, l in PAIRS:
        rows.append({
            "pair_id": pid, "prompt_id": pid, "split": "it1", "category": "math", "instruction": x, "response_w": w,
            "modified_instruction": "x'", "response_l": l, "gen_status": "ok", "generator": "hand", "generator_hash": "h",
            "sampling": "{}", "seed": 0, "n_tokens_w": 1, "n_tokens_modify": 1, "n_tokens_l": 1, "finish_reason_w": "stop",
            "finish_reason_modify": "stop", "finish_reason_l": "stop", "raw_modify": "",
        })
    write_parquet(to_table("pairs", rows), base / "data" / "pairs.parquet")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["generation"] |= {"shard_size": 1, "cache_dir": cache, "batch_size": 4}
    params["judging"] |= {"samples": 2, "max_tokens": 24}
    (base / "params.yaml").write_text(yaml.safe_dump(params))
    return base


def judge_cmd(project: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "stages" / "judge.py"), "--iteration", "it1"], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def shard_files(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.jsonl")) if cache.exists() else []


def test_sigkill_then_resume_matches_uninterrupted(tmp_path, seed_model):
    ref = make_project(tmp_path / "ref", seed_model, "cache")
    proc = judge_cmd(ref)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    total = read_json(ref / "stats/it1/judge.json")["throughput"]["shards"]
    assert total == 8  # 4 pairs x 2 orders = 8 requests, 1 per shard

    run = make_project(tmp_path / "run", seed_model, "cache")
    proc = judge_cmd(run)
    deadline = time.time() + 600
    while not shard_files(run / "cache") and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)  # vLLM finished several shards between 0.2 s polls: kill at the first one
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(shard_files(run / "cache"))
    assert 1 <= done_before < total
    assert not (run / "data/it1/judgments.parquet").exists()  # nothing half-written
    assert not list((run / "data").rglob("*.tmp"))

    proc = judge_cmd(run)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    stats = read_json(run / "stats/it1/judge.json")["throughput"]
    assert stats["shards_cached"] == done_before
    assert stats["shards_generated"] == total - done_before  # only unfinished shards, the one in flight among them

    a = pq.read_table(ref / "data/it1/judgments.parquet").sort_by("judgment_id").to_pylist()
    b = pq.read_table(run / "data/it1/judgments.parquet").sort_by("judgment_id").to_pylist()
    assert len({r["judgment_id"] for r in b}) == len(b)  # no duplicate rows
    assert a == b
