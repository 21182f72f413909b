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
from .datasets import DATASETS
from .io import inside, read_parquet, write_json, write_parquet
from .methods import method_of
from .plan import memory_problem

log = logging.getLogger("judgeloop")

DATA, MODELS, METRICS, STATS, REPORTS = Path("data"), Path("models"), Path("metrics"), Path("stats"), Path("reports")


def model_dir(name: str) -> Path:
    return MODELS / name


def data_path(kind: str, iteration: str | None = None) -> Path:
    """Where a stage writes (and reads) a dataset kind (datasets.py)."""
    return Path(DATASETS[kind].path(iteration))


def run_seed(params: Params, args: Any) -> None:
    from .seed import materialise_seed

    manifest = materialise_seed(params.seed.source, params.seed.revision, model_dir("it0"))
    log.info("models/it0 ready: %s", manifest.get("upstream") or manifest["source"])


def run_prompts(params: Params, args: Any) -> None:
    from .pool import build_prompts

    backend = None
    if params.prompts.categorize.enabled:
        from .backends import make_backend

        backend = make_backend(model_dir("it0"), params.generation)
    table = build_prompts(params, backend)
    write_parquet(table, data_path("prompts"))
    splits = table.group_by("split").aggregate([("prompt_id", "count")]).to_pylist()
    log.info("%s: %d prompts; per split %s", data_path("prompts"), table.num_rows, {r["split"]: r["prompt_id_count"] for r in splits})


def run_pairs(params: Params, args: Any) -> None:
    from .backends import make_backend
    from .pairs import build_pairs

    prompts = [r for r in read_parquet(data_path("prompts")).to_pylist() if r["split"] not in ("unused", "excluded")]
    backend = make_backend(model_dir("it0"), params.generation)
    t0 = time.time()
    table = build_pairs(prompts, backend, params.pairs)
    write_parquet(table, data_path("pairs"))
    stats = backend.stats.as_dict() | {"wall_s": round(time.time() - t0, 2)}
    write_json({"throughput": stats, "rows": table.num_rows}, STATS / "pairs.json")


def run_rubrics(params: Params, args: Any) -> None:
    """Likert items with gold scores, split by hash like the prompts (method: likert)."""
    from .methods import likert

    pairs = read_parquet(data_path("pairs")) if params.likert.synthetic else None
    table = likert.build_items(params, pairs)
    write_parquet(table, data_path("rubrics"))
    splits = table.group_by("split").aggregate([("item_id", "count")]).to_pylist()
    log.info("%s: %d items; per split %s", data_path("rubrics"), table.num_rows, {r["split"]: r["item_id_count"] for r in splits})


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


def _backend_of(params: Params, name: str) -> Any:
    from .backends import make_backend

    return make_backend(model_dir(name), params.generation)


def run_judge(params: Params, args: Any) -> None:
    it = args.iteration
    method = method_of(params.method)
    items = read_parquet(data_path(method.KINDS.items))
    backend = _backend_of(params, params.iterations[it].prev)
    t0 = time.time()
    table, counts = method.judge(params, it, items, backend)
    write_parquet(table, data_path(method.KINDS.judgments, it))
    stats = backend.stats.as_dict() | {"wall_s": round(time.time() - t0, 2)}
    write_json({"throughput": stats, "judgments": table.num_rows, **counts}, STATS / it / "judge.json")


def run_curate(params: Params, args: Any) -> None:
    it = args.iteration
    method = method_of(params.method)
    kinds = method.KINDS
    funnel = method.curate(params, it, data_path(kinds.judgments, it), data_path(kinds.items), data_path(kinds.sft, it),
                           data_path("dpo", it), lambda: _backend_of(params, params.iterations[it].prev))
    write_json(funnel, STATS / it / "curation.json")




def run_validate(params: Params, args: Any) -> None:
    from .validation import raise_on_failure, validate_files

    it = args.iteration
    method = method_of(params.method)
    kinds = method.KINDS
    if leaked := method.leaked(read_parquet(data_path(kinds.items)), read_parquet(data_path(kinds.judgments, it))):
        raise ValueError(f"validate@{it}: {len(leaked)} item(s) judged for training in {it} are in the evaluation "
                         f"split too (the test set would be trained on): {method.LEAK_ID} {', '.join(leaked[:5])}")
    balanced = params.curation_for(it).balance == "truncate"
    paths = {kind: str(data_path(kind, it)) for kind in kinds.validated}
    reports = validate_files(paths, str(REPORTS / it / "validation"),
                             ab_tolerance=0.2 if balanced else None)
    for r in reports:
        log.info("validate@%s: %s %s", it, r.dataset, "ok" if r.success else "FAILED")
    raise_on_failure(reports)


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
        rows = read_parquet(data_path(kind, it)).to_pylist()
        if not rows:
            section = funnel.get("dpo", funnel) if kind == "dpo" else funnel  # likert: one flat DPO funnel
            reason = section.get("empty_reason", f"the {kind} set is empty")
            raise ValueError(f"train@{it}: nothing to train on ({kind}): {reason}")
        return rows

    def card(kind: str) -> dict[str, Any]:
        path = data_path(kind, it)
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
    from .schemas import check_table

    name = args.iteration
    method = method_of(params.method)
    items = read_parquet(data_path(method.KINDS.items))
    evalsets = {}
    for es in params.evaluation.sets:
        evalsets[es.name] = read_parquet(evalset_path(es.name))
        check_table("evalset", evalsets[es.name], str(evalset_path(es.name)))
    backend = _backend_of(params, name)
    t0 = time.time()
    table, sets = method.evaluate(params, name, items, evalsets, backend)
    write_parquet(table, data_path(method.KINDS.eval, name))
    throughput = backend.stats.as_dict() | {"wall_s": round(time.time() - t0, 2)}
    _write_eval(name, method, sets, throughput)


def _write_eval(name: str, method: Any, sets: dict[str, Any], throughput: dict[str, Any]) -> None:
    from .metrics import eval_metrics

    write_json({"model": name, "method": method.NAME, "sets": sets, "throughput": throughput}, STATS / name / "eval.json")
    write_json(eval_metrics(name, sets, method.METRICS, method.HEADLINE_SET), METRICS / name / "eval.json")


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
