"""Benchmark: torch threads for generation, on an idle machine and beside a busy process.

    python -m benchmarks.threads_bench            # 2 pairs x 2 orders x 4 samples, 48 new tokens

judgeloop's transformers backend on the judge stage's workload (see
generation_bench), one model load, the thread count changed between runs:
all CPUs, then one fewer, first with the machine idle, then with a busy
process (a Python spin loop) on one CPU. Beside each, what
`judgeloop.hardware.pick_threads(None)` (the default when generation.threads
is unset) chose at that moment. Writes benchmarks/results/threads_bench.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import finish
from benchmarks.generation_bench import workload
from judgeloop.hardware import cpu_info, pick_threads, usable_cpus

RESULTS = Path(__file__).parent / "results" / "threads_bench.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.threads_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/it0")
    ap.add_argument("--pairs-file", type=Path, default=Path("data/pairs.parquet"))
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    import torch

    from judgeloop.backends.transformers_backend import TransformersBackend
    from judgeloop.config import GenerationConfig

    requests = workload(args.pairs_file, args.pairs, args.samples, args.max_tokens)
    n = usable_cpus()
    backend = TransformersBackend(args.model, GenerationConfig(batch_size=16, cache_dir=None, threads=n))
    counts = sorted({n, max(1, n - 1)}, reverse=True)
    rows: list[dict[str, Any]] = []

    def measure(load: str) -> None:
        auto = pick_threads(None)
        for threads in counts:
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            out = backend.generate(requests, desc=f"{load}, {threads} thread(s)")
            dt = time.perf_counter() - t0
            tokens = sum(c.n_tokens for cs in out for c in cs)
            rows.append({"load": load, "threads": threads, "auto_choice": auto, "tokens": tokens,
                         "seconds": round(dt, 2), "tokens_per_s": round(tokens / dt, 2)})

    measure("idle")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        measure("one busy process")
    finally:
        spinner.kill()
        spinner.wait()

    def tps(load: str, threads: int) -> float:
        return next(r["tokens_per_s"] for r in rows if r["load"] == load and r["threads"] == threads)

    ratios = {}
    if len(counts) == 2:
        hi, lo = counts
        ratios[f"idle: {hi} threads / {lo}"] = round(tps("idle", hi) / tps("idle", lo), 3)
        ratios[f"busy: {lo} threads / {hi}"] = round(tps("one busy process", lo) / tps("one busy process", hi), 3)
    report = {"workload": {"requests": len(requests), "samples": args.samples, "max_tokens": args.max_tokens},
              "machine": {"cpu": cpu_info(), "torch": torch.__version__}, "results": rows, "ratios": ratios}
    lines = [f"CPU: {report['machine']['cpu']['model']}, {n} usable CPUs, flags {' '.join(report['machine']['cpu']['flags'])}", "",
             f"{'load':18} {'threads':>7} {'auto':>5} {'tokens':>7} {'seconds':>8} {'tok/s':>7}"]
    lines += [f"{r['load']:18} {r['threads']:>7} {r['auto_choice']:>5} {r['tokens']:>7} {r['seconds']:>8.1f} {r['tokens_per_s']:>7.1f}"
              for r in rows]
    lines += [""] + [f"{k}: {v:.2f}" for k, v in ratios.items()]
    return finish(report, "\n".join(lines), args.output)


if __name__ == "__main__":
    sys.exit(main())
