"""The DVC stages as functions: read params, call the library, write outputs.

`stages/*.py` and `judgeloop stage NAME` both land here. Paths follow
DESIGN.md's layout, relative to the project root (where dvc.yaml is).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .config import ConfigError, Params, load_params
from .io import read_parquet, write_json, write_parquet

log = logging.getLogger("judgeloop")

DATA, MODELS, METRICS, REPORTS = Path("data"), Path("models"), Path("metrics"), Path("reports")


def model_dir(name: str) -> Path:
    return MODELS / name


def run_seed(params: Params, args: Any) -> None:
    from .seed import materialise_seed

    manifest = materialise_seed(params.seed.source, params.seed.revision, model_dir("it0"))
    log.info("models/it0 ready: %s", manifest.get("upstream") or manifest["source"])


def run_prompts(params: Params, args: Any) -> None:
    from .prompts import build_prompts

    backend = None
    if params.prompts.categorize.enabled:
        from .backends import make_backend

        backend = make_backend(model_dir("it0"), params.generation)
    table = build_prompts(params, backend)
    write_parquet(table, DATA / "prompts.parquet")
    splits = table.group_by("split").aggregate([("prompt_id", "count")]).to_pylist()
    log.info("data/prompts.parquet: %d prompts; per split %s", table.num_rows, {r["split"]: r["prompt_id_count"] for r in splits})


def run_pairs(params: Params, args: Any) -> None:
    from .backends import make_backend
    from .pairs import build_pairs

    prompts = [r for r in read_parquet(DATA / "prompts.parquet").to_pylist() if r["split"] not in ("unused", "excluded")]
    backend = make_backend(model_dir("it0"), params.generation)
    t0 = time.time()
    table = build_pairs(prompts, backend, params.pairs)
    write_parquet(table, DATA / "pairs.parquet")
    stats = backend.stats.as_dict() | {"wall_s": round(time.time() - t0, 2)}
    write_json({"throughput": stats, "rows": table.num_rows}, METRICS / "pairs.json")


def _ok_pairs(split: str) -> list[dict[str, Any]]:
    return [r for r in read_parquet(DATA / "pairs.parquet").to_pylist() if r["split"] == split and r["gen_status"] == "ok"]


def run_judge(params: Params, args: Any) -> None:
    from .backends import Sampling, make_backend
    from .judging import PairwiseItem, judge_items
    from .schemas import to_table

    it = args.iteration
    cfg = params.judging_for(it)
    prev = params.iterations[it].prev
    pairs = _ok_pairs(it)
    log.info("judge@%s: %d pairs x 2 orders x %d samples with models/%s", it, len(pairs), cfg.samples, prev)
    backend = make_backend(model_dir(prev), params.generation)
    items = [PairwiseItem(p["pair_id"], p["instruction"], p["response_w"], p["response_l"]) for p in pairs]
    sampling = Sampling(cfg.temperature, cfg.top_p, cfg.max_tokens, cfg.samples, cfg.seed)
    t0 = time.time()
    judged = judge_items(items, backend, sampling, cfg.verdict_fallback, seed_key=it, desc=f"judge@{it}")
    sampling_json = json.dumps(sampling.to_dict() | {"verdict_fallback": cfg.verdict_fallback}, sort_keys=True)
    rows = [
        {
            "judgment_id": f"{it}:{j.item_id}:{j.order}:{j.sample_idx}",
            "pair_id": j.item_id,
            "iteration": it,
            "judge_model": backend.model_name,
            "judge_hash": backend.model_hash,
            "order": j.order,
            "sample_idx": j.sample_idx,
            "seed": j.seed,
            "sampling": sampling_json,
            "text": j.text,
            "verdict": j.verdict,
            "parse_status": j.parse_status,
            "verdict_source": j.verdict_source,
            "p_a": j.p_a,
            "p_b": j.p_b,
            "correct": j.correct,
            "n_tokens": j.n_tokens,
            "finish_reason": j.finish_reason,
            "len_a": j.len_a,
            "len_b": j.len_b,
        }
        for j in judged
    ]
    write_parquet(to_table("judgments", rows), DATA / it / "judgments.parquet")
    stats = backend.stats.as_dict() | {"wall_s": round(time.time() - t0, 2)}
    write_json({"throughput": stats, "judgments": len(rows), "pairs": len(pairs)}, METRICS / it / "judge.json")


def run_curate(params: Params, args: Any) -> None:
    from .curation import curate_sft
    from .schemas import check_table, to_table

    it = args.iteration
    path = DATA / it / "judgments.parquet"
    table = read_parquet(path)
    check_table("judgments", table, str(path))
    pairs = {p["pair_id"]: p for p in read_parquet(DATA / "pairs.parquet").to_pylist()}
    rows, funnel = curate_sft(table.to_pylist(), pairs, params.curation_for(it), it)
    write_parquet(to_table("sft", rows), DATA / it / "sft.parquet")
    write_json(funnel, METRICS / it / "curation.json")
    if "empty_reason" in funnel:
        log.warning("curate@%s: the SFT set is EMPTY: %s", it, funnel["empty_reason"])


def run_validate(params: Params, args: Any) -> None:
    from .validation import raise_on_failure, validate_files

    it = args.iteration
    files = {"pairs": str(DATA / "pairs.parquet"), "judgments": str(DATA / it / "judgments.parquet"), "sft": str(DATA / it / "sft.parquet")}
    reports = validate_files(files, str(REPORTS / it / "validation"))
    for r in reports:
        log.info("validate@%s: %s %s", it, r.dataset, "ok" if r.success else "FAILED")
    raise_on_failure(reports)


def run_train(params: Params, args: Any) -> None:
    from .io import read_json, sha256_file
    from .training import train_sft

    it = args.iteration
    cfg = params.training_for(it)
    rows = read_parquet(DATA / it / "sft.parquet").to_pylist()
    if not rows:
        funnel = read_json(METRICS / it / "curation.json")
        raise ValueError(f"train@{it}: nothing to train on: {funnel.get('empty_reason', 'the SFT set is empty')}")
    init = "it0" if cfg.init == "seed" else params.iterations[it].prev
    card = {"name": it, "base_model": str(model_dir(init)), "data": str(DATA / it / "sft.parquet"), "data_hash": sha256_file(DATA / it / "sft.parquet")}
    metrics = train_sft(rows, model_dir(init), model_dir(it), cfg, card)
    write_json(metrics, METRICS / it / "train.json")


def run_evaluate(params: Params, args: Any) -> None:
    from .backends import Sampling, make_backend
    from .evaluation import load_llmbar, load_pairwise, score, summarise
    from .judging import PairwiseItem, judge_items
    from .schemas import to_table

    name = args.iteration
    ev = params.evaluation
    sets: list[tuple[str, list[PairwiseItem], dict[str, str]]] = []
    if ev.synthetic:
        pairs = _ok_pairs("eval")
        items = [PairwiseItem(p["pair_id"], p["instruction"], p["response_w"], p["response_l"]) for p in pairs]
        sets.append(("synthetic", items, {p["pair_id"]: p["category"] or "" for p in pairs}))
    for es in ev.sets:
        if es.format == "llmbar":
            sets.append((es.name, load_llmbar(es.path, es.limit), {}))
        else:
            items, subsets = load_pairwise(es.path, es.limit)
            sets.append((es.name, items, subsets))
    backend = make_backend(model_dir(name), params.generation)
    greedy = Sampling(temperature=0.0, top_p=1.0, max_tokens=ev.max_tokens, n=1, seed=0)
    rows, summary = [], {}
    t0 = time.time()
    for set_name, items, subsets in sets:
        judged = judge_items(items, backend, greedy, ev.verdict_fallback, seed_key=f"eval:{set_name}", desc=f"evaluate@{name}:{set_name}")
        summary[set_name] = summarise(judged)
        for j in judged:
            rows.append(
                {
                    "dataset": set_name,
                    "subset": subsets.get(j.item_id),
                    "example_id": f"{set_name}:{j.item_id}:{j.order}",
                    "judge": backend.model_name,
                    "judge_hash": backend.model_hash,
                    "order": j.order,
                    "text": j.text,
                    "verdict": j.verdict,
                    "parse_status": j.parse_status,
                    "verdict_source": j.verdict_source,
                    "p_a": j.p_a,
                    "p_b": j.p_b,
                    "score": score(j),
                    "n_tokens": j.n_tokens,
                    "finish_reason": j.finish_reason,
                }
            )
        log.info("evaluate@%s %s: %s", name, set_name, {k: v for k, v in summary[set_name].items() if k != "scoring_rule"})
    write_parquet(to_table("eval", rows), DATA / name / "eval.parquet")
    throughput = backend.stats.as_dict() | {"wall_s": round(time.time() - t0, 2)}
    write_json({"model": name, "sets": summary, "throughput": throughput}, METRICS / name / "eval.json")


def run_report(params: Params, args: Any) -> None:
    from .report import build_report

    build_report(params)


STAGES: dict[str, Callable[[Params, Any], None]] = {
    "seed": run_seed,
    "prompts": run_prompts,
    "pairs": run_pairs,
    "judge": run_judge,
    "curate": run_curate,
    "validate": run_validate,
    "train": run_train,
    "evaluate": run_evaluate,
    "report": run_report,
}


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_stage(name: str, argv: list[str] | None = None) -> int:
    """Entry point for stages/*.py: parse --params/--iteration, run, report errors plainly."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"stage {name}")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--iteration", help="iteration name (it1, it2, ...) or it0 for evaluate")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0 = time.time()
    try:
        params = load_params(args.params)
        if args.iteration and args.iteration != "it0" and args.iteration not in params.iterations:
            raise ConfigError(f"--iteration {args.iteration!r}: not in params.iterations {list(params.iterations)}")
        STAGES[name](params, args)
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as e:
        log.error("stage %s failed: %s", name, e)
        return 1
    log.info("stage %s%s done in %.1f s", name, f"@{args.iteration}" if args.iteration else "", time.time() - t0)
    return 0


def stage_main(name: str) -> None:
    sys.exit(run_stage(name, sys.argv[1:]))
