"""The iteration report: reports/summary.md, reports/summary.json, plots.

Reads what the other stages measured (stats/); parse rate is always shown
beside accuracy, so a forced-verdict judge cannot pass for one that follows
the format. reports/plots/judges/<set>.json holds one row per judge for
`dvc plots show/diff` (declared in dvc.yaml); the PNGs are for the report.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .config import Params
from .datasets import path as dataset_path
from .io import atomic_path, read_json, write_json

log = logging.getLogger(__name__)

STATS, REPORTS = Path("stats"), Path("reports")


def _load(path: Path) -> dict[str, Any] | None:
    return read_json(path) if path.exists() else None


def collect(params: Params) -> dict[str, Any]:
    models = params.eval_models()
    from .hardware import environment

    from .evaluation import paired_difference

    out: dict[str, Any] = {"method": params.method, "models": {}, "iterations": {}, "changes": {}, "environment": environment()}
    per_item: dict[str, dict[str, dict[str, float]]] = {}
    for m in models:
        ev = _load(STATS / m / "eval.json")
        if ev:
            out["models"][m] = {name: {k: v for k, v in s.items() if k != "item_scores"} for name, s in ev["sets"].items()}
            per_item[m] = {name: s["item_scores"] for name, s in ev["sets"].items() if s.get("item_scores")}
    # each later judge against the first, on the examples both scored (paired: the same pairs, the same orders)
    first = next(iter(per_item), None)
    for m in list(per_item)[1:]:
        for name, scores in per_item[m].items():
            if first is not None and name in per_item[first] and (d := paired_difference(per_item[first][name], scores)):
                out["changes"].setdefault(m, {})[name] = d | {"from": first}
    for it in params.iterations:
        cur, tr, jd = (_load(STATS / it / f) for f in ("curation.json", "train.json", "judge.json"))
        out["iterations"][it] = {
            "prev": params.iterations[it].prev,
            "curation": cur,
            "train": {k: v for k, v in (tr or {}).items() if k != "loss_history"} or None,
            "loss_history": (tr or {}).get("loss_history", []),
            "judge_throughput": (jd or {}).get("throughput"),
        }
    # training examples behind each judge: its own set, plus its init's when it trained on from a previous judge
    trained: dict[str, int] = {"it0": 0}
    for it in params.iterations:  # params order: an iteration's init comes before it
        own = ((out["iterations"][it]["train"] or {}).get("examples")) or 0
        trained[it] = own + trained.get(params.init_model(it), 0) if params.init_model(it) != "it0" else own
    out["trained_on"] = {m: trained.get(m) for m in models}
    return out


LIKERT_KEYS = ("pearson", "spearman", "kendall_tau", "exact", "within_1")


def plot_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Long-format rows (one per model and eval set) for DVC plots and our PNGs."""
    rows = []
    for m, sets in summary["models"].items():
        for set_name, s in sets.items():
            row = {
                "model": m,
                "set": set_name,
                "accuracy": s.get("accuracy"),
                "accuracy_ci95": s.get("accuracy_ci95"),
                "accuracy_forced": s.get("accuracy_forced"),
                "parse_rate": s.get("parse_rate"),
                "position_consistency": s.get("position_consistency"),
                "a_rate": s.get("a_rate"),
                "accuracy_wl": (s.get("accuracy_by_order") or {}).get("wl"),
                "accuracy_lw": (s.get("accuracy_by_order") or {}).get("lw"),
                "majority_accuracy": (s.get("majority") or {}).get("majority_accuracy"),
                "rewardbench_overall": ((s.get("rewardbench") or {}).get("all") or {}).get("overall"),
                "benchmark": s.get("benchmark"),
            }
            row.update({k: s.get(k) for k in LIKERT_KEYS})
            rows.append(row)
    return rows


def dvc_plot_rows(summary: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per evaluation set, one row per judge in evaluation order (x = its index, for DVC's linear templates)."""
    keys = ("spearman", "parse_rate") if summary.get("method") == "likert" else ("accuracy", "parse_rate")
    models = list(summary["models"])
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["set"], []).append({"judge_index": models.index(r["model"]), "judge": r["model"], **{k: r[k] for k in keys}})
    return out


def _plots(summary: dict[str, Any], rows: list[dict[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    models = list(summary["models"])
    sets = sorted({r["set"] for r in rows})
    likert = summary.get("method") == "likert"
    metrics = [("accuracy", "Accuracy (official: no own verdict = 0.5)"), ("parse_rate", "Parse rate (judge wrote the verdict)"),
               ("position_consistency", "Position consistency"), ("a_rate", "Share of verdicts 'A'")]
    if likert:
        metrics = [("spearman", "Spearman with gold"), ("exact", "Exact match"), ("within_1", "Within 1 of gold"),
                   ("parse_rate", "Parse rate (judge wrote [RESULT])")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6))
    for ax, (key, title) in zip(axes, metrics):
        for s in sets:
            ys = [next((r[key] for r in rows if r["model"] == m and r["set"] == s), None) for m in models]
            ax.plot(models, [float("nan") if y is None else y for y in ys], marker="o", label=s)
        if key in ("accuracy", "position_consistency", "a_rate"):
            ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_ylim(-1.02 if key in ("spearman",) else -0.02, 1.02)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("judge")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    paths.append(_save(fig, out / "eval.png"))
    plt.close(fig)

    paths.append(_learning_curve(summary, rows, out / "learning_curve.png", plt))

    its = list(summary["iterations"])
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.6))
    keep = [((summary["iterations"][i]["curation"] or {}).get("keep_rate_pairs")) for i in its]
    axes[0].bar(its, [k or 0 for k in keep], color="tab:green")
    axes[0].set_ylim(0, 1)
    axes[0].set_title("Keep rate (pairs with a kept judgment)", fontsize=10)
    for i in its:
        hist = summary["iterations"][i]["loss_history"]
        if hist:
            axes[1].plot([h["step"] for h in hist], [h["loss"] for h in hist], marker=".", label=i)
    axes[1].set_title("Training loss", fontsize=10)
    axes[1].set_xlabel("step")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=8)
    axes[1].grid(alpha=0.3)
    dist = summary.get("verdicts", {})
    labels = sorted({v for d in dist.values() for v in d})
    bottom = [0.0] * len(its)
    for lab in labels:
        vals = [dist.get(i, {}).get(lab, 0) for i in its]
        axes[2].bar(its, vals, bottom=bottom, label=lab)
        bottom = [b + v for b, v in zip(bottom, vals)]
    axes[2].set_title("Sampled verdicts / scores (training judgments)", fontsize=10)
    if labels:
        axes[2].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    paths.append(_save(fig, out / "training.png"))
    plt.close(fig)
    return paths


def _learning_curve(summary: dict[str, Any], rows: list[dict[str, Any]], dest: Path, plt: Any) -> Path:
    """Accuracy (with its 95% interval) against the number of curated examples each judge was trained on."""
    key = "spearman" if summary.get("method") == "likert" else "accuracy"
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    trained = summary.get("trained_on", {})
    for s in sorted({r["set"] for r in rows}):
        pts = [(trained.get(r["model"]), r[key], r.get("accuracy_ci95"), r["model"]) for r in rows
               if r["set"] == s and trained.get(r["model"]) is not None and r[key] is not None]
        if not pts:
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        err = [[y - (ci[0] if ci else y) for _, y, ci, _ in pts], [(ci[1] if ci else y) - y for _, y, ci, _ in pts]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=s)
        for x, y, _, m in pts:
            ax.annotate(m, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if key == "accuracy":
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("curated training examples behind the judge")
    ax.set_ylabel(f"{key} (bars: 95% interval)" if key == "accuracy" else key)
    ax.set_title("Learning curve", fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = _save(fig, dest)
    plt.close(fig)
    return path


def _save(fig: Any, dest: Path) -> Path:
    with atomic_path(dest, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return dest


def _fmt(x: Any) -> str:
    return "-" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


def _with_ci(x: Any, ci: list[float] | None) -> str:
    return _fmt(x) + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def markdown(summary: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = ["# judgeloop iteration report", ""]
    lines += ["Scoring (official): 1 = a verdict the judge wrote for the better response, 0 = for the worse, "
              "0.5 = none of its own. Parse rate = share of judgments whose own text had exactly one of [[A]]/[[B]]; "
              "a forced verdict (read from the next-token distribution) counts only in 'acc. with forced'. "
              "[lo, hi]: 95% bootstrap interval over examples.", ""]
    if summary.get("method") == "likert":
        lines += ["## Evaluation (Likert, held-out rubric items)", "",
                  "| judge | set | pearson | spearman | kendall tau | exact | within 1 | parse rate |", "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['model']} | {r['set']} | {_fmt(r['pearson'])} | {_fmt(r['spearman'])} | {_fmt(r['kendall_tau'])} | "
                         f"{_fmt(r['exact'])} | {_fmt(r['within_1'])} | {_fmt(r['parse_rate'])} |")
    else:
        lines += ["## Evaluation", "", "| judge | set | accuracy | acc. better first | acc. better second | parse rate | position consistency | A share | acc. with forced | majority acc. | RewardBench |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['model']} | {r['set']} | {_with_ci(r['accuracy'], r['accuracy_ci95'])} | {_fmt(r['accuracy_wl'])} | {_fmt(r['accuracy_lw'])} | "
                         f"{_fmt(r['parse_rate'])} | {_fmt(r['position_consistency'])} | {_fmt(r['a_rate'])} | "
                         f"{_fmt(r['accuracy_forced'])} | {_fmt(r['majority_accuracy'])} | {_fmt(r['rewardbench_overall'])} |")
    lines += benchmark_lines(rows)
    if summary.get("changes"):
        lines += ["", "## Change in accuracy against the first judge", "",
                  "Paired: the same examples scored by both judges; 95% bootstrap interval of the mean difference.", "",
                  "| judge | set | from | examples | difference | 95% interval |", "|---|---|---|---|---|---|"]
        for m, sets in summary["changes"].items():
            for name, d in sets.items():
                ci = d.get("ci95")
                lines.append(f"| {m} | {name} | {d['from']} | {d['n']} | {d['difference']:+.3f} | "
                             f"{f'[{ci[0]:+.3f}, {ci[1]:+.3f}]' if ci else '-'} |")
    lines += ["", "## Iterations", "", "| iteration | from | judgments | correct | kept | keep rate (pairs) | train loss | empty? |",
              "|---|---|---|---|---|---|---|---|"]
    for it, d in summary["iterations"].items():
        c, t = d["curation"] or {}, d["train"] or {}
        lines.append(f"| {it} | {d['prev']} | {_fmt(c.get('judgments'))} | {_fmt(c.get('correct'))} | {_fmt(c.get('kept'))} | "
                     f"{_fmt(c.get('keep_rate_pairs'))} | {_fmt(t.get('train_loss'))} | {c.get('empty_reason', '')} |")
    env = summary.get("environment") or {}
    if env:
        cpu, versions = env.get("cpu", {}), env.get("versions", {})
        lines += ["", f"Made on: {cpu.get('model')} ({cpu.get('cpus')} CPUs; {' '.join(cpu.get('flags', []))}), "
                  f"Python {env.get('python')}, " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ". "
                  "Runs on the same machine give byte-identical outputs; another CPU may round differently."]
    lines += ["", "![evaluation](plots/eval.png)", "", "![learning curve](plots/learning_curve.png)", "",
              "![training](plots/training.png)", ""]
    return "\n".join(lines)


def benchmark_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The benchmark sets' official numbers (overall, then each section), one table per benchmark, with its rule."""
    lines: list[str] = []
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("benchmark"):
            by_name.setdefault(r["benchmark"]["name"], []).append(r)
    for name, rs in by_name.items():
        sections = list(rs[0]["benchmark"]["sections"])
        levels = [k for k in ("easy", "normal", "hard") if k in rs[0]["benchmark"]]
        cols = ["judge", "set", "overall", *sections, *levels]
        lines += ["", f"## {name}", "", f"Scoring: {rs[0]['benchmark']['scoring_rule']}.", "",
                  "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in rs:
            b = r["benchmark"]
            values = [b["overall"], *(b["sections"].get(k) for k in sections), *(b[k] for k in levels)]
            lines.append(f"| {r['model']} | {r['set']} | " + " | ".join(_fmt(v) for v in values) + " |")
    return lines


def verdict_distribution(params: Params) -> dict[str, dict[str, int]]:
    """Per iteration: counts of sampled verdicts (pairwise, with their source) or scores (likert)."""
    import duckdb

    out: dict[str, dict[str, int]] = {}
    for it in params.iterations:
        path = Path(dataset_path("judgments", it))
        if not path.exists():
            continue
        col = "coalesce(cast(score as varchar), 'none')" if params.method == "likert" else \
            "coalesce(verdict, 'none') || ' (' || coalesce(verdict_source, '-') || ')'"
        rows = duckdb.sql(f"select {col} as v, count(*) from read_parquet('{path}') group by 1 order by 1").fetchall()
        out[it] = {v: n for v, n in rows}
    return out


def build_report(params: Params) -> dict[str, Any]:
    summary = collect(params)
    summary["verdicts"] = verdict_distribution(params)
    rows = plot_rows(summary)
    write_json(summary, REPORTS / "summary.json")
    judges = REPORTS / "plots" / "judges"
    for stale in judges.glob("*.json"):  # a set dropped from evaluation.sets
        stale.unlink()
    for set_name, set_rows in dvc_plot_rows(summary, rows).items():
        write_json(set_rows, judges / f"{set_name}.json")
    _plots(summary, rows, REPORTS / "plots")
    with atomic_path(REPORTS / "summary.md") as tmp:
        tmp.write_text(markdown(summary, rows), encoding="utf-8")
    log.info("report: reports/summary.md, reports/summary.json, reports/plots/*.png")
    return summary
