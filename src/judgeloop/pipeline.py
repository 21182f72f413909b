"""The DVC stages as functions: read params, call the library, write outputs.

`stages/*.py` and `judgeloop stage NAME` both land here. Paths follow
DESIGN.md's layout, relative to the project root (where dvc.yaml is):
`metrics/` holds the few numbers DVC compares (see metrics.py), `stats/`
everything else a stage measured, as plain JSON.
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
from .io import inside, read_parquet, write_json, write_parquet
from .plan import memory_problem

log = logging.getLogger("judgeloop")

DATA, MODELS, METRICS, STATS, REPORTS = Path("data"), Path("models"), Path("metrics"), Path("stats"), Path("reports")


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
    write_json({"throughput": stats, "rows": table.num_rows}, STATS / "pairs.json")


def run_rubrics(params: Params, args: Any) -> None:
    """Likert items with gold scores, split by hash like the prompts (method: likert)."""
    from .likert import source_items, split_items, synthetic_items
    from .schemas import to_table

    lk = params.likert
    items = source_items(lk)
    if lk.synthetic:
        items += synthetic_items(read_parquet(DATA / "pairs.parquet").to_pylist(), *lk.synthetic_gold)
    ids = [it.item_id for it in items]
    if len(set(ids)) != len(ids):
        raise ValueError("likert.sources: item ids collide across sources; give each source a distinct `name`")
    splits = split_items(items, lk.split.seed, lk.split.eval_fraction, lk.split.iteration_fractions)
    rows = [
        {
            "item_id": it.item_id, "instruction": it.instruction, "response": it.response,
            "reference_answer": it.reference_answer, "criteria": it.criteria,
            **{f"score{k + 1}_description": d for k, d in enumerate(it.descriptions)},
            "gold_score": it.gold_score, "capability": it.capability, "source": it.source, "split": splits[it.item_id],
        }
        for it in sorted(items, key=lambda i: i.item_id)
    ]
    write_parquet(to_table("rubrics", rows), DATA / "rubrics.parquet")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["split"]] = counts.get(r["split"], 0) + 1
    log.info("data/rubrics.parquet: %d items; per split %s", len(rows), counts)


def _rubric_items(split: str) -> list[Any]:
    from .likert import RubricItem

    return [
        RubricItem(r["item_id"], r["instruction"], r["response"], r["reference_answer"], r["criteria"],
                   tuple(r[f"score{k}_description"] for k in range(1, 6)), r["gold_score"], r["capability"], r["source"])
        for r in read_parquet(DATA / "rubrics.parquet").to_pylist()
        if r["split"] == split
    ]


def _judge_likert(params: Params, it: str) -> None:
    from .backends import Sampling, make_backend
    from .likert import judge_likert
    from .schemas import to_table

    cfg = params.judging_for(it)
    prev = params.iterations[it].prev
    items = _rubric_items(params.pairs_split(it))
    log.info("judge@%s (likert): %d items x %d samples with models/%s", it, len(items), cfg.samples, prev)
    backend = make_backend(model_dir(prev), params.generation)
    sampling = Sampling(cfg.temperature, cfg.top_p, cfg.max_tokens, cfg.samples, cfg.seed)
    gold = {i.item_id: i.gold_score for i in items}
    t0 = time.time()
    judged = judge_likert(items, backend, sampling, cfg.verdict_fallback, seed_key=it, desc=f"judge@{it}")
    sampling_json = json.dumps(sampling.to_dict() | {"verdict_fallback": cfg.verdict_fallback}, sort_keys=True)
    rows = [
        {
            "judgment_id": f"{it}:{j.item_id}:{j.sample_idx}", "item_id": j.item_id, "iteration": it,
            "judge_model": backend.model_name, "judge_hash": backend.model_hash, "sample_idx": j.sample_idx,
            "seed": j.seed, "sampling": sampling_json, "text": j.text, "score": j.score, "parse_status": j.parse_status,
            "score_source": j.score_source, "expected_score": j.expected_score, "gold_score": gold[j.item_id],
            "n_tokens": j.n_tokens, "finish_reason": j.finish_reason,
        }
        for j in judged
    ]
    write_parquet(to_table("likert_judgments", rows), DATA / it / "judgments.parquet")
    stats = backend.stats.as_dict() | {"wall_s": round(time.time() - t0, 2)}
    write_json({"throughput": stats, "judgments": len(rows), "items": len(items)}, STATS / it / "judge.json")


def _curate_likert(params: Params, it: str) -> None:
    from .likert import curate_likert, make_meta_judge
    from .schemas import check_table, to_table

    path = DATA / it / "judgments.parquet"
    table = read_parquet(path)
    check_table("likert_judgments", table, str(path))
    items = {i.item_id: i for i in _rubric_items(params.pairs_split(it))}
    cfg, lk = params.curation_for(it), params.likert
    meta = None
    if lk.tie_break == "meta_judge":
        from .backends import make_backend

        meta = make_meta_judge(make_backend(model_dir(params.iterations[it].prev), params.generation), lk.meta_judge_max_tokens,
                               seed=cfg.seed)
    dpo, sft, funnel = curate_likert(table.to_pylist(), items, it, cfg.seed, cfg.pairs_per_input, lk.tie_break, meta,
                                     cfg.dpo_chosen)
    write_parquet(to_table("dpo", dpo), DATA / it / "dpo.parquet")
    write_parquet(to_table("sft", sft), DATA / it / "sft.parquet")
    write_json(funnel, STATS / it / "curation.json")
    if "empty_reason" in funnel:
        log.warning("curate@%s: the DPO set is EMPTY: %s", it, funnel["empty_reason"])


def _evaluate_likert(params: Params, name: str) -> None:
    from .backends import Sampling, make_backend
    from .likert import judge_likert, likert_metrics
    from .schemas import to_table

    items = _rubric_items("eval")
    backend = make_backend(model_dir(name), params.generation)
    greedy = Sampling(temperature=0.0, top_p=1.0, max_tokens=params.evaluation.max_tokens, n=1, seed=0)
    t0 = time.time()
    judged = judge_likert(items, backend, greedy, params.evaluation.verdict_fallback, seed_key="eval", desc=f"evaluate@{name}")
    gold = {i.item_id: i.gold_score for i in items}
    rows = [
        {"dataset": "rubrics", "example_id": j.item_id, "judge": backend.model_name, "judge_hash": backend.model_hash,
         "text": j.text, "score": j.score, "gold_score": gold[j.item_id], "parse_status": j.parse_status,
         "score_source": j.score_source, "expected_score": j.expected_score, "n_tokens": j.n_tokens,
         "finish_reason": j.finish_reason}
        for j in judged
    ]
    golds, statuses = [gold[j.item_id] for j in judged], [j.parse_status for j in judged]
    # the official rule: only scores the judge wrote; forced ones beside, under their own name
    metrics = likert_metrics([j.score if j.score_source == "parsed" else None for j in judged], golds, statuses)
    metrics["forced_rate"] = round(sum(j.score_source == "forced" for j in judged) / max(1, len(judged)), 4)
    if metrics["forced_rate"]:
        metrics["with_forced"] = likert_metrics([j.score for j in judged], golds, statuses)
    write_parquet(to_table("likert_eval", rows), DATA / name / "eval.parquet")
    throughput = backend.stats.as_dict() | {"wall_s": round(time.time() - t0, 2)}
    _write_eval(name, "likert", {"rubrics": metrics}, throughput)
    log.info("evaluate@%s rubrics: %s", name, metrics)


def evalset_path(name: str) -> Path:
    return DATA / "evalsets" / f"{name}.parquet"


def run_evalset(params: Params, args: Any) -> None:
    """Read one of evaluation.sets from its file, check it, and write it as Parquet.

    The stage depends on the set's file (dvc.yaml), so editing the file re-runs
    the evaluations, which read this copy; a malformed file fails here, before
    any model is loaded."""
    from .evaluation import load_set
    from .schemas import to_table

    names = [s.name for s in params.evaluation.sets]
    if args.name not in names:
        problem = f"--name {args.name!r} is not in" if args.name else "needs --name NAME, a name from"
        raise ConfigError(f"stage evalset {problem} evaluation.sets {names}")
    es = params.evaluation.sets[names.index(args.name)]
    items, subsets = load_set(es.format, es.path, es.limit, es.split)
    rows = [{"dataset": es.name, "item_id": i.item_id, "instruction": i.instruction, "better": getattr(i, "better", None),
             "worse": getattr(i, "worse", None), "chosen": getattr(i, "chosen", None), "rejected": getattr(i, "rejected", None),
             "subset": subsets.get(i.item_id), "source": es.path, "source_format": es.format} for i in items]
    write_parquet(to_table("evalset", rows), evalset_path(es.name))
    log.info("%s: %d examples from %s (%s)", evalset_path(es.name), len(rows), es.path, es.format)


def _evalset_items(name: str) -> tuple[list[Any], dict[str, str]]:
    """The items the evalset stage wrote: pairs, or candidate sets (rows with chosen/rejected lists)."""
    from .benchmarks import CandidateItem
    from .judging import PairwiseItem
    from .schemas import check_table

    path = evalset_path(name)
    table = read_parquet(path)
    check_table("evalset", table, str(path))
    rows = table.to_pylist()
    items = [CandidateItem(r["item_id"], r["instruction"], tuple(r["chosen"]), tuple(r["rejected"]), r["subset"])
             if r["chosen"] is not None else PairwiseItem(r["item_id"], r["instruction"], r["better"], r["worse"]) for r in rows]
    return items, {r["item_id"]: r["subset"] for r in rows if r["subset"]}


def _ok_pairs(split: str) -> list[dict[str, Any]]:
    return [r for r in read_parquet(DATA / "pairs.parquet").to_pylist() if r["split"] == split and r["gen_status"] == "ok"]


def run_judge(params: Params, args: Any) -> None:
    from .backends import Sampling, make_backend
    from .judging import PairwiseItem, judge_items, judgment_fields
    from .schemas import to_table

    it = args.iteration
    if params.method == "likert":
        return _judge_likert(params, it)
    cfg = params.judging_for(it)
    prev = params.iterations[it].prev
    split = params.pairs_split(it)
    pairs = _ok_pairs(split)
    log.info("judge@%s: %d pairs%s x 2 orders x %d samples with models/%s", it, len(pairs),
             f" (of {split})" if split != it else "", cfg.samples, prev)
    backend = make_backend(model_dir(prev), params.generation)
    items = [PairwiseItem(p["pair_id"], p["instruction"], p["response_w"], p["response_l"]) for p in pairs]
    sampling = Sampling(cfg.temperature, cfg.top_p, cfg.max_tokens, cfg.samples, cfg.seed)
    t0 = time.time()
    judged = judge_items(items, backend, sampling, cfg.verdict_fallback, seed_key=it, desc=f"judge@{it}",
                         calibration=cfg.forced_calibration, template=params.judge_template)
    sampling_json = json.dumps(sampling.to_dict() | {"verdict_fallback": cfg.verdict_fallback, "template": params.judge_template,
                                                     "forced_calibration": cfg.forced_calibration}, sort_keys=True)
    rows = [
        {
            "judgment_id": f"{it}:{j.item_id}:{j.order}:{j.sample_idx}",
            "pair_id": j.item_id,
            "iteration": it,
            "judge_model": backend.model_name,
            "judge_hash": backend.model_hash,
            "sample_idx": j.sample_idx,
            "seed": j.seed,
            "sampling": sampling_json,
            "correct": j.correct,
            **judgment_fields(j),
            "len_a": j.len_a,
            "len_b": j.len_b,
        }
        for j in judged
    ]
    write_parquet(to_table("judgments", rows), DATA / it / "judgments.parquet")
    stats = backend.stats.as_dict() | {"wall_s": round(time.time() - t0, 2)}
    write_json({"throughput": stats, "judgments": len(rows), "pairs": len(pairs)}, STATS / it / "judge.json")


def run_curate(params: Params, args: Any) -> None:
    from .curation import curate_files

    it = args.iteration
    if params.method == "likert":
        return _curate_likert(params, it)
    cfg = params.curation_for(it)
    sft_funnel, dpo_funnel = curate_files(DATA / it / "judgments.parquet", DATA / "pairs.parquet", cfg, it,
                                          DATA / it / "sft.parquet", DATA / it / "dpo.parquet", template=params.judge_template)
    write_json(sft_funnel | {"dpo": dpo_funnel}, STATS / it / "curation.json")
    for name, funnel in (("SFT", sft_funnel), ("DPO", dpo_funnel)):
        if "empty_reason" in funnel:
            log.warning("curate@%s: the %s set is EMPTY: %s", it, name, funnel["empty_reason"])




def run_validate(params: Params, args: Any) -> None:
    from .validation import raise_on_failure, validate_files

    it = args.iteration
    files = {"pairs": str(DATA / "pairs.parquet"), "judgments": str(DATA / it / "judgments.parquet"),
             "sft": str(DATA / it / "sft.parquet"), "dpo": str(DATA / it / "dpo.parquet")}
    if params.method == "likert":
        files = {"rubrics": str(DATA / "rubrics.parquet"), "likert_judgments": str(DATA / it / "judgments.parquet"),
                 "likert_sft": str(DATA / it / "sft.parquet"), "dpo": str(DATA / it / "dpo.parquet")}
    if params.method != "likert":
        _check_no_eval_leak(it)
    balanced = params.curation_for(it).balance == "truncate"
    reports = validate_files(files, str(REPORTS / it / "validation"), ab_tolerance=0.2 if balanced else None)
    for r in reports:
        log.info("validate@%s: %s %s", it, r.dataset, "ok" if r.success else "FAILED")
    raise_on_failure(reports)


def _check_no_eval_leak(it: str) -> None:
    """No prompt judged (and so trained on) in `it` is also in the evaluation split."""
    pairs = read_parquet(DATA / "pairs.parquet").select(["pair_id", "prompt_id", "split"]).to_pylist()
    judged = set(read_parquet(DATA / it / "judgments.parquet").column("pair_id").to_pylist())
    eval_prompts = {p["prompt_id"] for p in pairs if p["split"] == "eval"}
    leaked = sorted({p["prompt_id"] for p in pairs if p["pair_id"] in judged} & eval_prompts)
    if leaked:
        raise ValueError(f"validate@{it}: {len(leaked)} prompt(s) judged for training in {it} are in the evaluation "
                         f"split too (the test set would be trained on): prompt_id {', '.join(leaked[:5])}")


def run_train(params: Params, args: Any) -> None:
    import tempfile

    from .io import read_json, sha256_file
    from .training import train_dpo, train_sft

    it = args.iteration
    cfg = params.training_for(it)
    if cfg.launcher == "accelerate" and "LOCAL_RANK" not in os.environ:
        # re-enter this stage under accelerate's launcher; TRL handles the distribution
        import subprocess

        # this interpreter's accelerate, whatever is first on PATH
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cfg.accelerate_config),
               sys.argv[0], "--iteration", it, "--params", args.params]
        log.info("train@%s: %s", it, " ".join(cmd))
        subprocess.run(cmd, check=True)
        return
    init = params.init_model(it)
    funnel = read_json(STATS / it / "curation.json")

    def rows_of(kind: str) -> list[dict[str, Any]]:
        rows = read_parquet(DATA / it / f"{kind}.parquet").to_pylist()
        if not rows:
            section = funnel.get("dpo", funnel) if kind == "dpo" else funnel  # likert: one flat DPO funnel
            reason = section.get("empty_reason", f"the {kind} set is empty")
            raise ValueError(f"train@{it}: nothing to train on ({kind}): {reason}")
        return rows

    def card(kind: str) -> dict[str, Any]:
        path = DATA / it / f"{kind}.parquet"
        return {"name": it, "base_model": str(model_dir(init)), "data": str(path), "data_hash": sha256_file(path)}

    if cfg.algo == "sft":
        metrics = train_sft(rows_of("sft"), model_dir(init), model_dir(it), cfg, card("sft"))
    elif cfg.algo == "dpo":
        metrics = train_dpo(rows_of("dpo"), model_dir(init), model_dir(it), cfg, card("dpo"))
    else:  # sft_then_dpo: DPO starts from (and is anchored to) the SFT model
        sft_rows, dpo_rows = rows_of("sft"), rows_of("dpo")
        with tempfile.TemporaryDirectory(prefix=f"judgeloop-{it}-sft-") as tmp:
            sft_metrics = train_sft(sft_rows, model_dir(init), Path(tmp) / "sft", cfg, card("sft"))
            metrics = train_dpo(dpo_rows, Path(tmp) / "sft", model_dir(it), cfg, card("dpo"))
        metrics = metrics | {"sft": sft_metrics}
    if int(os.environ.get("RANK", "0")) == 0:
        from .metrics import iteration_metrics

        write_json(metrics | {"algo": cfg.algo}, STATS / it / "train.json")
        # the funnel of the set this run trained on: DPO pairs (pairwise keeps them under "dpo") or SFT rows
        trained_on = funnel.get("dpo", funnel) if cfg.algo == "dpo" else funnel
        write_json(iteration_metrics(it, trained_on, metrics), METRICS / it / "train.json")


def run_evaluate(params: Params, args: Any) -> None:
    name = args.iteration
    if params.method == "likert":
        return _evaluate_likert(params, name)
    from .backends import make_backend
    from .bench_eval import evaluate_format
    from .judging import PairwiseItem
    from .schemas import to_table

    ev = params.evaluation
    sets: list[tuple[str, str, str, str, list[Any], dict[str, str]]] = []
    if ev.synthetic:
        pairs = _ok_pairs("eval")
        items = [PairwiseItem(p["pair_id"], p["instruction"], p["response_w"], p["response_l"]) for p in pairs]
        sets.append(("synthetic", "pairwise", "both", "all_at_once", items, {p["pair_id"]: p["category"] or "" for p in pairs}))
    for es in ev.sets:
        sets.append((es.name, es.format, es.orders, es.best_of_n, *_evalset_items(es.name)))
    backend = make_backend(model_dir(name), params.generation)
    rows, summary = [], {}
    t0 = time.time()
    for set_name, fmt, orders, best_of_n, items, subsets in sets:
        set_rows, summary[set_name] = evaluate_format(
            set_name, fmt, items, subsets, backend, max_tokens=ev.max_tokens, fallback=ev.verdict_fallback,
            orders_mode=orders, order_seed=ev.order_seed, samples=ev.samples, temperature=ev.temperature,
            template=params.judge_template, best_of_n=best_of_n,
        )
        rows += set_rows
        log.info("evaluate@%s %s: accuracy %s, parse rate %s%s", name, set_name, summary[set_name].get("accuracy"),
                 summary[set_name]["parse_rate"], _headline(summary[set_name]))
    write_parquet(to_table("eval", rows), DATA / name / "eval.parquet")
    throughput = backend.stats.as_dict() | {"wall_s": round(time.time() - t0, 2)}
    _write_eval(name, "pairwise", summary, throughput)


def _headline(summary: dict[str, Any]) -> str:
    bench = summary.get("benchmark")
    return f", {bench['name']} {bench['overall']}" if bench else ""


def _write_eval(name: str, method: str, sets: dict[str, Any], throughput: dict[str, Any]) -> None:
    from .metrics import eval_metrics

    write_json({"model": name, "method": method, "sets": sets, "throughput": throughput}, STATS / name / "eval.json")
    write_json(eval_metrics(name, sets, method), METRICS / name / "eval.json")


def run_report(params: Params, args: Any) -> None:
    from .report import build_report

    build_report(params)


def run_check(params: Params, args: Any) -> None:
    """The first stage: params.yaml parses and validates (run_stage did that) before any other stage runs.

    DVC removes a stage's outputs just before it runs its command, so a bad
    value (`dvc exp run -S judging.samples=abc`) found inside the judge stage
    would cost the judge's outputs. Every stage depends on this one's marker,
    whose content never changes: a bad params.yaml stops the run here, and a
    good one re-runs nothing downstream by itself."""
    write_json({"params": "valid"}, CHECK_MARKER)


CHECK_MARKER = STATS / "params_ok.json"

# the argument each per-iteration (or per-set) stage cannot run without
NEEDS = {"judge": "iteration", "curate": "iteration", "validate": "iteration", "train": "iteration",
         "evaluate": "iteration", "evalset": "name"}
# stages that generate text, checked against this machine's memory before a model loads (`plan.memory_problem`)
GENERATING = {"check", "prompts", "pairs", "rubrics", "judge", "evaluate"}

STAGES: dict[str, Callable[[Params, Any], None]] = {
    "check": run_check,
    "seed": run_seed,
    "prompts": run_prompts,
    "pairs": run_pairs,
    "rubrics": run_rubrics,
    "judge": run_judge,
    "curate": run_curate,
    "validate": run_validate,
    "train": run_train,
    "evalset": run_evalset,
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
    parser.add_argument("--name", help="evalset: the name of an entry of evaluation.sets")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0 = time.time()
    try:
        params = load_params(args.params)
        if (needed := NEEDS.get(name)) and not getattr(args, needed):
            choices = ["it0", *params.iterations] if name == "evaluate" else (
                [s.name for s in params.evaluation.sets] if needed == "name" else list(params.iterations))
            raise ConfigError(f"stage {name} needs --{needed} (one of {choices})")
        if name in GENERATING and (problem := memory_problem(params)):
            raise ConfigError(problem)
        if args.iteration and args.iteration != "it0" and args.iteration not in params.iterations:
            raise ConfigError(f"--iteration {args.iteration!r}: not in params.iterations {list(params.iterations)}")
        _check_output_dirs(args)
        STAGES[name](params, args)
    except (ConfigError, ValueError, OSError, RuntimeError) as e:
        # a bad input, a missing or corrupted file, a full disk, a failing server:
        # one line naming the thing, no traceback (-v adds it)
        log.error("stage %s failed: %s", name, e, exc_info=args.verbose)
        return 1
    except KeyboardInterrupt:
        log.error("stage %s interrupted; its outputs were not written (rerun it to finish)", name)
        return 130
    seconds, rss_mb = time.time() - t0, _peak_rss_mb()
    log.info("stage %s%s done in %.1f s, peak RSS %.0f MB", name, f"@{args.iteration}" if args.iteration else "", seconds, rss_mb)
    if os.environ.get("JUDGELOOP_STAGE_LOG"):  # benchmarks/pipeline_bench.py collects these
        with open(os.environ["JUDGELOOP_STAGE_LOG"], "a", encoding="utf-8") as f:
            f.write(json.dumps({"stage": name, "iteration": args.iteration, "seconds": round(seconds, 2),
                                "max_rss_mb": round(rss_mb, 1)}) + "\n")
    return 0


def _check_output_dirs(args: Any) -> None:
    """Every folder a stage writes into, named after user input or not, resolves inside the project
    (a link under data/ or models/ pointing elsewhere is refused before anything is written)."""
    roots = [DATA, MODELS, METRICS, STATS, REPORTS, DATA / "evalsets"]
    if args.iteration:
        roots += [r / args.iteration for r in (DATA, MODELS, METRICS, STATS, REPORTS)]
    if getattr(args, "name", None):
        roots.append(evalset_path(args.name))
    for p in roots:
        inside(p)


def _peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children (accelerate workers), in MB."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # Linux reports KiB


def stage_main(name: str) -> None:
    sys.exit(run_stage(name, sys.argv[1:]))
