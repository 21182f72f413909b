"""Benchmarks for judgeloop (run as modules: python -m benchmarks.generation_bench, ...).

Each prints a table and writes JSON under benchmarks/results/ (git-ignored).
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any


def finish(report: dict[str, Any], table: str, output: Path) -> int:
    """Stamp the report (load at the end, this process's peak RSS, time), print the table, write the JSON."""
    from judgeloop.io import write_json

    machine = report.setdefault("machine", {})
    machine["load_avg_at_end"] = os.getloadavg()
    machine.setdefault("max_rss_mb", round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    report["when"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    print()
    print(table)
    write_json(report, output)
    print(f"\nwrote {output}")
    return 0
