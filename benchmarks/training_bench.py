"""Benchmark: SFT and DPO training throughput on the default model.

    python -m benchmarks.training_bench                  # 8 steps each, batch 4, from models/it0
    python -m benchmarks.training_bench --algos sft --variants fp32,bf16,lora,short   # SFT levers side by side

Builds SFT examples (judge prompt -> the judge's own judgment with its
verdict line) and DPO pairs (two judgments of the same pair and order) from
the judgments of the default run (data/*/judgments.parquet joined with
data/pairs.parquet), then runs judgeloop's `train_sft` and `train_dpo` (TRL,
fp32 on CPU) for `--steps` optimizer steps each and reports steps/s,
examples/s and tokens/s (TRL's count of tokens fed to the model; DPO feeds
chosen and rejected). The trained checkpoints go to a temporary directory.

`--variants` runs each algorithm once per variant, one after another in one
process: `fp32` (the default), `bf16` (autocast over fp32 weights:
`training.precision: bf16`), `lora` (`training.lora.enabled`, fp32) and
`short` (fp32, prompts in the short judge template). Writes
benchmarks/results/training_bench.json with the CPU flags.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from judgeloop.config import TrainingConfig
from judgeloop.curation import training_completion
from benchmarks import finish
from judgeloop.io import read_parquet
from judgeloop.judging import PairwiseItem, shown
from judgeloop.templates import judge_messages

RESULTS = Path(__file__).parent / "results" / "training_bench.json"


def examples(data: Path, template: str = "standard") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    pairs = {p["pair_id"]: p for p in read_parquet(data / "pairs.parquet").to_pylist() if p["gen_status"] == "ok"}
    judged = [j for f in sorted(glob.glob(str(data / "*" / "judgments.parquet")))
              for j in read_parquet(f).to_pylist() if j["verdict"] is not None and j["pair_id"] in pairs]
    if not judged:
        raise SystemExit(f"{data}: no judgments with a verdict; run `dvc repro` first")
    sft, groups = [], defaultdict(list)
    for j in judged:
        p = pairs[j["pair_id"]]
        a, b = shown(PairwiseItem(p["pair_id"], p["instruction"], p["response_w"], p["response_l"]), j["order"])
        prompt = judge_messages(p["instruction"], a, b, template)[0]["content"]
        completion = training_completion(j["text"], j["verdict"], j["verdict_source"])
        sft.append({"prompt": prompt, "completion": completion})
        groups[(j["pair_id"], j["order"])].append((prompt, completion))
    dpo = [{"prompt": g[0][0], "chosen": g[0][1], "rejected": g[1][1]} for g in groups.values() if len(g) >= 2]
    return sft, dpo


VARIANTS = {"fp32": {"precision": "fp32"}, "bf16": {"precision": "bf16"},
            "lora": {"precision": "fp32", "lora": {"enabled": True}}, "short": {"precision": "fp32"}}


def run(kind: str, rows: list[dict[str, Any]], model: str, cfg: TrainingConfig, variant: str = "fp32") -> dict[str, Any]:
    from judgeloop.training import train_dpo, train_sft

    fn = train_sft if kind == "sft" else train_dpo
    with tempfile.TemporaryDirectory(prefix=f"judgeloop-bench-{kind}-") as out:
        t0 = time.perf_counter()
        m = fn(rows, model, Path(out) / "model", cfg, {"name": f"bench-{kind}"})
        wall = time.perf_counter() - t0
    return {"algo": kind, "variant": variant, "steps": m["steps"], "examples_seen": m["steps"] * cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps,
            "train_seconds": m["seconds"], "wall_seconds_with_load_and_save": round(wall, 2),
            "steps_per_s": m["steps_per_s"], "examples_per_s": round(m["steps"] * cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps / m["seconds"], 3),
            "tokens": m.get("tokens"), "tokens_per_s": m.get("tokens_per_s"), "final_loss": round(m["train_loss"], 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.training_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/it0")
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--output", type=Path, default=RESULTS)
    ap.add_argument("--algos", default="sft,dpo")
    ap.add_argument("--variants", default="fp32", help=f"comma-separated, of {list(VARIANTS)}")
    args = ap.parse_args(argv)

    import torch

    from judgeloop.hardware import environment

    base = dict(max_steps=args.steps, per_device_train_batch_size=args.batch_size, max_length=args.max_length, gradient_checkpointing=False)
    results = []
    for variant in args.variants.split(","):
        sft, dpo = examples(args.data, "short" if variant == "short" else "standard")
        cfg = TrainingConfig(**base, **VARIANTS[variant])
        for kind in args.algos.split(","):
            results.append(run(kind, sft if kind == "sft" else dpo, args.model, cfg, variant))
    report: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "load_avg_at_start": os.getloadavg(),
                    "environment": environment()},
        "model": args.model, "batch_size": args.batch_size, "max_length": args.max_length,
        "available": {"sft": len(sft), "dpo": len(dpo)},
        "results": results,
    }
    lines = [f"{'algo':5} {'variant':7} {'steps':>5} {'seconds':>8} {'steps/s':>8} {'examples/s':>10} {'tokens/s':>9}"]
    for r in report["results"]:
        lines.append(f"{r['algo']:5} {r['variant']:7} {r['steps']:>5} {r['train_seconds']:>8.1f} {r['steps_per_s']:>8.3f} "
                     f"{r['examples_per_s']:>10.2f} {r['tokens_per_s'] if r['tokens_per_s'] is not None else '-':>9}")
    return finish(report, "\n".join(lines), args.output)


if __name__ == "__main__":
    sys.exit(main())
