"""Benchmark: the default pipeline from scratch, per stage; `dvc repro` no-op; determinism.

    python -m benchmarks.pipeline_bench                   # one cold run + no-op timings
    python -m benchmarks.pipeline_bench --determinism     # a second cold run, Parquet compared byte for byte

Copies the project's tracked files (git ls-files, so no outputs, no DVC cache,
no generation cache) into a scratch directory, runs `dvc repro` there (its
stages import that copy's src/, not the installed judgeloop) with the
project's own params.yaml, and reads the per-stage wall time and peak RSS each
stage appends to $JUDGELOOP_STAGE_LOG (see judgeloop.pipeline.run_stage).
Then times `dvc repro` and `dvc status` on the up-to-date pipeline.

With --determinism a second scratch copy is run the same way and every
Parquet file under data/ is compared: sha256 of the bytes, and for files that
differ, which columns differ. Writes benchmarks/results/pipeline_bench.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import finish

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "pipeline_bench.json"


def scratch_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if rel.startswith(("data/", "models/", "metrics/", "stats/", "reports/")) or rel == "dvc.lock":
            continue  # outputs: the run makes them
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=dest, check=True)
    return dest


def _env(work: Path, stage_log: Path | None = None) -> dict[str, str]:
    # PYTHONPATH: the stages import the scratch copy's judgeloop, not the (editable) installed one,
    # so edits to the project during a run cannot leak into it
    env = os.environ | {"DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false",
                        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                        "PYTHONPATH": str(work / "src")}
    if stage_log is not None:
        env["JUDGELOOP_STAGE_LOG"] = str(stage_log)
    return env


def dvc(args: list[str], cwd: Path, env: dict[str, str], log: Path | None = None) -> float:
    t0 = time.perf_counter()
    p = subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=cwd, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    dt = time.perf_counter() - t0
    if log is not None:
        log.write_text(p.stdout)
    if p.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed in {cwd} (exit {p.returncode}):\n{p.stdout[-3000:]}")
    return dt


def cold_run(work: Path) -> dict[str, Any]:
    stage_log = work / "stage_times.jsonl"
    if not (work / ".dvc").exists():  # the project's .dvc/config is tracked, so normally it is there
        subprocess.run([str(Path(sys.executable).parent / "dvc"), "init", "-q"], cwd=work, check=True, env=_env(work))
    print(f"dvc repro in {work} (from scratch; this is the whole default pipeline)", flush=True)
    wall = dvc(["repro"], work, _env(work, stage_log), work / "repro.log")
    stages = [json.loads(line) for line in stage_log.read_text().splitlines()]
    return {"wall_s": round(wall, 1), "stages": stages}


def noop_times(work: Path, repeat: int) -> dict[str, Any]:
    repro = [dvc(["repro"], work, _env(work)) for _ in range(repeat)]
    status = [dvc(["status"], work, _env(work)) for _ in range(repeat)]
    return {"repro_s": [round(t, 2) for t in repro], "status_s": [round(t, 2) for t in status]}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compare_parquet(a: Path, b: Path) -> list[dict[str, Any]]:
    """Every Parquet file under data/ of two runs: identical bytes, or which columns differ."""
    import pyarrow.parquet as pq

    out = []
    for fa in sorted((a / "data").rglob("*.parquet")):
        rel = fa.relative_to(a)
        fb = b / rel
        row: dict[str, Any] = {"file": str(rel), "identical_bytes": fb.exists() and _sha(fa) == _sha(fb)}
        if fb.exists() and not row["identical_bytes"]:
            ta, tb = pq.read_table(fa), pq.read_table(fb)
            row["rows"] = [ta.num_rows, tb.num_rows]
            row["differing_columns"] = sorted(
                c for c in set(ta.column_names) | set(tb.column_names)
                if c not in ta.column_names or c not in tb.column_names or not ta[c].equals(tb[c])
            )
        out.append(row)
    return out


def render(report: dict[str, Any]) -> str:
    runs = [report["cold"]] + ([report["cold_second"]] if "cold_second" in report else [])
    lines = [f"machine: {report['machine']['cpus']} CPUs, load {report['machine']['load_avg_at_start'][0]:.1f} at start", ""]
    head = " ".join(f"{f'run {i + 1} s':>8} {'RSS MB':>7}" for i in range(len(runs)))
    lines += [f"{'stage':22} {head}", f"{'-' * 22} " + " ".join(f"{'-' * 8} {'-' * 7}" for _ in runs)]
    for k, s in enumerate(report["cold"]["stages"]):
        name = s["stage"] + (f"@{s['iteration']}" if s.get("iteration") else "")
        cells = [run["stages"][k] for run in runs if k < len(run["stages"])]
        lines.append(f"{name:22} " + " ".join(f"{c['seconds']:>8.1f} {c['max_rss_mb']:>7.0f}" for c in cells))
    lines.append(f"{'dvc repro (whole)':22} " + " ".join(f"{run['wall_s']:>8.1f} {'':>7}" for run in runs))
    n = report["noop"]
    lines += ["", f"dvc repro, up to date: {min(n['repro_s']):.2f} s (best of {len(n['repro_s'])}; target <= 3 s); "
              f"dvc status: {min(n['status_s']):.2f} s"]
    if "determinism" in report:
        d = report["determinism"]
        same = sum(r["identical_bytes"] for r in d)
        lines += ["", f"determinism: {same}/{len(d)} Parquet files byte-identical across two cold runs"]
        for r in d:
            if not r["identical_bytes"]:
                lines.append(f"  {r['file']}: differs in {', '.join(r.get('differing_columns', ['(missing)']))}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.pipeline_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--determinism", action="store_true", help="run twice and compare the Parquet outputs")
    ap.add_argument("--repeat", type=int, default=3, help="no-op timings")
    ap.add_argument("--workdir", type=Path, help="where the scratch projects go (default: the system temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch projects")
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    report: dict[str, Any] = {"machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                                          "cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()}}
    tmp = Path(tempfile.mkdtemp(prefix="judgeloop-pipeline-bench-", dir=args.workdir))
    try:
        first = scratch_copy(tmp / "a")
        second = scratch_copy(tmp / "b") if args.determinism else None  # copied now: the same code for both
        report["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        report["cold"] = cold_run(first)
        report["noop"] = noop_times(first, args.repeat)
        if second is not None:
            report["cold_second"] = cold_run(second)
            report["determinism"] = compare_parquet(first, second)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return finish(report, render(report), args.output)


if __name__ == "__main__":
    sys.exit(main())
