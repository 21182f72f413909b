"""What a run will generate, from the params and the input files alone: `judgeloop plan`.

No model is loaded. Prompt and rubric counts come from the same ingest and
hash split the `prompts` / `rubrics` stages use (the split is a pure function
of ids and params); eval-set sizes from their local files. Where a source
cannot be read here (a hub id without a hub), `pool` stands in for the
number of instructions and the split is its expected share.

Token counts are upper bounds on generated tokens: every generation may run
to its `max_tokens`. The pairs stage's rows that fail (`gen_status` not ok)
are not judged, so judge and evaluate counts are upper bounds too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .config import BENCHMARK_FORMATS, Params


@dataclass
class StagePlan:
    stage: str
    generations: int
    max_new_tokens: int
    note: str = ""


def _prompt_splits(params: Params, pool: int | None) -> tuple[dict[str, int], str]:
    """Prompts per split (eval, each iteration), and how they were counted."""
    split = params.prompts.split
    if pool is None:
        try:
            from .pool import build_prompts

            unlabelled = params
            if params.prompts.categorize.enabled:  # labels need the model: count before the category filter
                dump = params.model_dump()
                dump["prompts"]["categorize"]["enabled"] = False
                dump["prompts"]["categories"] = []
                unlabelled = Params.model_validate(dump)
            table = build_prompts(unlabelled, None)
            counts: dict[str, int] = {}
            for s in table.column("split").to_pylist():
                counts[s] = counts.get(s, 0) + 1
            how = f"{table.num_rows} instructions after ingest and de-duplication"
            if unlabelled is not params:
                how += " (before the category filter, which needs the model: an upper bound)"
            return counts, how
        except Exception as e:  # an unreachable hub, a missing file: say so, and ask for --pool
            raise ValueError(f"cannot count the instruction pool here ({type(e).__name__}: {e}); pass --pool N") from None
    # --pool: the instructions that reach the split (after any category filter)
    counts = {"eval": round(pool * split.eval_fraction)}
    counts |= {name: round(pool * f) for name, f in split.iteration_fractions.items()}
    return counts, f"--pool {pool}: expected shares of {pool} instructions"


def _rubric_splits(params: Params) -> dict[str, int]:
    from .likert import source_items, split_items

    lk = params.likert
    items = source_items(lk)  # likert.synthetic items come from the pairs stage: not counted
    counts: dict[str, int] = {}
    for s in split_items(items, lk.split.seed, lk.split.eval_fraction, lk.split.iteration_fractions).values():
        counts[s] = counts.get(s, 0) + 1
    return counts


def _evalset_sizes(params: Params) -> dict[str, int | None]:
    """Examples per set; for a benchmark set (BENCHMARK_FORMATS) the generations it takes in all."""
    from .bench_eval import generations
    from .evaluation import load_set

    sizes: dict[str, int | None] = {}
    for es in params.evaluation.sets:
        try:
            items = load_set(es.format, es.path, es.limit, es.split)[0]
        except Exception:  # not here yet: reported as unknown
            sizes[es.name] = None
            continue
        sizes[es.name] = generations(es.format, items, es.orders, es.best_of_n) if es.format in BENCHMARK_FORMATS else len(items)
    return sizes


def _train_steps(examples: int, tr: Any) -> int:
    if tr.max_steps > 0:
        return tr.max_steps
    return math.ceil(math.ceil(examples / (tr.per_device_train_batch_size * tr.gradient_accumulation_steps)) * tr.num_train_epochs)


def make_plan(params: Params, pool: int | None = None) -> tuple[list[StagePlan], str]:
    """Per stage: generations and the most tokens they may generate; and how prompts were counted."""
    plans: list[StagePlan] = []
    ev = params.evaluation
    if params.method == "likert":
        counts, how = _rubric_splits(params), "rubric items after the likert split"
        unit = "items"
    else:
        counts, how = _prompt_splits(params, pool)
        unit = "pairs"
        if params.prompts.categorize.enabled:
            n = sum(counts.values())
            plans.append(StagePlan("prompts", n, n * params.prompts.categorize.max_tokens, "category labels"))
        used = counts.get("eval", 0) + sum(counts.get(it, 0) for it in params.iterations)
        pc = params.pairs
        plans.append(StagePlan("pairs", 3 * used, used * (2 * pc.max_tokens + pc.modify_max_tokens),
                               f"{used} prompts x (y_w, x', y_l)"))
    for it in params.iterations:
        j = params.judging_for(it)
        n = counts.get(params.pairs_split(it), 0)
        per = j.samples * (1 if params.method == "likert" else 2)
        orders = "" if params.method == "likert" else " x 2 orders"
        plans.append(StagePlan(f"judge@{it}", n * per, n * per * j.max_tokens,
                               f"{n} {unit}{orders} x {j.samples} samples from models/{params.iterations[it].prev}"))
        tr = params.training_for(it)
        examples = n * (2 if params.curation_for(it).per != "pair" else 1)
        plans.append(StagePlan(f"train@{it}", 0, 0, f"at most {examples} {tr.algo} examples, "
                               f"about {_train_steps(examples, tr)} steps (batch {tr.per_device_train_batch_size} x accum "
                               f"{tr.gradient_accumulation_steps})"))
    sets = {"synthetic": counts.get("eval", 0)} if (ev.synthetic or params.method == "likert") else {}
    if params.method != "likert":
        sets |= _evalset_sizes(params)
    for m in params.eval_models():
        gens, notes, unknown = 0, [], []
        for name, size in sets.items():
            if size is None:
                unknown.append(name)
                continue
            es = next((s for s in ev.sets if s.name == name), None)
            per = 1 if params.method == "likert" or (es is not None and (es.orders == "random_seeded" or es.format in BENCHMARK_FORMATS)) else 2
            samples = 1 if params.method == "likert" else ev.samples
            gens += size * per * samples
            notes.append(f"{name} {size}x{per * samples}")
        note = ", ".join(notes) + (f"; unknown until the file exists: {', '.join(unknown)}" if unknown else "")
        plans.append(StagePlan(f"evaluate@{m}", gens, gens * ev.max_tokens, note))
    return plans, how


# What one generated row costs in memory while a stage holds its results: the text (a few bytes per token
# in Python and again in Arrow) and the row's other columns (ids, statuses, sampling, provenance).
BYTES_PER_TOKEN = 8
BYTES_PER_ROW = 1024


def memory_estimate(p: StagePlan) -> int:
    """Bytes a stage holds for its generated rows if every generation runs to its max_tokens."""
    return p.generations * BYTES_PER_ROW + p.max_new_tokens * BYTES_PER_TOKEN


def memory_problem(params: Params, ram_bytes: int | None = None, pool: int | None = None,
                   plans: list[StagePlan] | None = None) -> str | None:
    """Why this params set cannot fit this machine's memory (None: it can), before any model loads.

    A typo such as `judging.samples: 1000000000` would otherwise run for days
    and then die; here it is refused with the estimate. Where the prompt pool
    cannot be counted here, one prompt per split stands in (a lower bound)."""
    from .hardware import total_memory_bytes

    ram = ram_bytes or total_memory_bytes()
    try:
        plans = plans if plans is not None else make_plan(params, pool)[0]
    except ValueError:  # the pool cannot be counted here: the smallest pool that puts a prompt in every split
        shares = [f for f in (params.prompts.split.eval_fraction, *params.prompts.split.iteration_fractions.values()) if f > 0]
        plans, _ = make_plan(params, pool=math.ceil(1 / min(shares, default=1.0)))
    worst = max(plans, key=memory_estimate, default=None)
    if worst is None or memory_estimate(worst) <= ram:
        return None
    gib = 2**30
    return (f"{worst.stage} would hold about {memory_estimate(worst) / gib:,.0f} GiB of generated rows "
            f"({worst.generations:,} generations, up to {worst.max_new_tokens:,} tokens: {worst.note}); "
            f"this machine has {ram / gib:,.0f} GiB. Lower the samples, max_tokens or the number of prompts.")


def format_plan(params: Params, pool: int | None = None) -> str:
    plans, how = make_plan(params, pool)
    g = params.generation
    lines = [f"judgeloop plan: method {params.method}, backend {g.backend}; {how}",
             f"{'stage':<16} {'generations':>12} {'max new tokens':>15}  what"]
    for p in plans:
        lines.append(f"{p.stage:<16} {p.generations:>12,} {p.max_new_tokens:>15,}  {p.note}")
    total_g = sum(p.generations for p in plans)
    total_t = sum(p.max_new_tokens for p in plans)
    lines.append(f"{'total':<16} {total_g:>12,} {total_t:>15,}")
    lines.append("Forced verdicts (verdict_fallback: forced) add one scoring pass per unparsed judgment; no tokens generated.")
    if problem := memory_problem(params, pool=pool, plans=plans):
        lines.append(f"Refused: {problem}")
    return "\n".join(lines)
