"""`judgeloop judge`: apply any judge to a pairwise or Likert file.

The judge can be a trained `models/itK`, any Hugging Face id or local
checkpoint (materialised like the seed), or an OpenAI-compatible endpoint.
Output: Parquet with verdicts or scores, parse status and the judge's texts,
plus a summary dict the CLI prints as a table.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from .config import GenerationConfig
from .io import write_parquet
from .schemas import to_table

log = logging.getLogger(__name__)

# every format `evaluation.load_set` reads (judged by `bench_eval.evaluate_format`); likert is the other kind
SET_FORMATS = ("llmbar", "pairwise", "rewardbench", "rewardbench2", "judgebench", "rmbench")


def _backend(model: str, gen: GenerationConfig, workdir: Path) -> Any:
    from .backends import make_backend

    path = Path(model)
    if gen.backend == "openai" or (path / "config.json").exists():
        return make_backend(path, gen)
    # a Hugging Face id or packaged:NAME: materialise a plain checkpoint first
    from .seed import materialise_seed

    materialise_seed(model, None, workdir / "judge")
    return make_backend(workdir / "judge", gen)


def judge_file(
    path: str, fmt: str, model: str, gen: GenerationConfig, output: str, *, limit: int | None = None,
    orders: str = "both", order_seed: int = 0, samples: int = 1, temperature: float = 0.7, max_tokens: int = 256,
    fallback: str = "forced", layout: str = "judgeloop", template: str = "standard", best_of_n: str = "all_at_once",
) -> dict[str, Any]:
    t0 = time.time()
    name = Path(path).stem
    # read and check the input before loading a model, so a bad file fails at once
    if fmt in SET_FORMATS:
        from .bench_eval import check_samples
        from .evaluation import load_set

        check_samples(fmt, samples)
        items, subsets = load_set(fmt, path, limit)
    elif fmt == "likert":
        from .likert import likert_metrics, parse_items, rubric_rows

        where, rows = rubric_rows("parquet" if path.endswith(".parquet") else "jsonl", path)
        likert_items = parse_items(rows[:limit] if limit else rows, layout, where, name)
    else:
        raise ValueError(f"--format {fmt!r}: expected one of {[*SET_FORMATS, 'likert']}")
    with tempfile.TemporaryDirectory(prefix="judgeloop-judge-") as tmp:
        backend = _backend(model, gen, Path(tmp))
        if fmt in SET_FORMATS:
            from .bench_eval import evaluate_format

            rows, summary = evaluate_format(
                name, fmt, items, subsets, backend, max_tokens=max_tokens, fallback=fallback, orders_mode=orders,
                order_seed=order_seed, samples=samples, temperature=temperature, template=template, best_of_n=best_of_n,
            )
            write_parquet(to_table("eval", rows), output)
        else:
            from .methods.likert import score_items

            table, judged, golds = score_items(likert_items, backend, max_tokens, fallback, name, "judge", "judge")
            summary = likert_metrics([j.score for j in judged], golds, [j.parse_status for j in judged])
            write_parquet(table, output)
        summary["judge"] = backend.model_name
        summary["seconds"] = round(time.time() - t0, 1)
        backend.close()
    log.info("judged %s with %s -> %s", path, model, output)
    return summary
