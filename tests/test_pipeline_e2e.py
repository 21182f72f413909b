"""End to end: the README's run command in a fresh clone, on the real SmolLM2-135M.

One module-scoped run, as a new user would make it (setup, the `smoke`
preset, `dvc repro` with the environment activated and nothing else on
PATH); the tests below inspect what it produced and run DVC's own views and
experiments on it. Slow (several minutes on 2 CPU cores).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
import yaml

from conftest import LLMBAR_NATURAL
from judgeloop.cli import main as cli_main

from test_readme import fresh_clone, readme_commands, sh

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def dvc(*args: str, cwd: Path, timeout: float = 3600) -> subprocess.CompletedProcess:
    """`dvc ARGS` as a user runs it in the clone: the project's environment activated, nothing else on PATH."""
    return sh(f"source .venv/bin/activate && {shlex.join(['dvc', *args])}", cwd, timeout=timeout)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fresh clone, the `smoke` preset plus an LLMBar evaluation set applied with `judgeloop preset`,
    then the README's run command, verbatim, in a shell without the virtualenv."""
    work = fresh_clone(tmp_path_factory.mktemp("project"))
    shutil.copy(LLMBAR_NATURAL, work / "llmbar.json")  # a user's own copy of the set
    (work / "eval-sets.yaml").write_text(yaml.safe_dump({"evaluation": {"sets": [
        {"name": "llmbar-natural", "format": "llmbar", "path": "llmbar.json", "limit": 2}]}}))
    for preset in ("smoke", str(work / "eval-sets.yaml")):
        assert cli_main(["preset", preset, "--root", str(work)]) == 0
    commit(work, "smoke params")
    run_command, _ = readme_commands()
    run = sh(run_command, work)
    (work / "repro.log").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    commit(work, "smoke run")  # dvc.lock and the metrics, as a DVC user commits a run
    return work


def commit(work: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message, "--allow-empty"], cwd=work, check=True)


def test_readme_run_command_ran_every_stage(project: Path):
    log = (project / "repro.log").read_text()
    for stage in ("seed", "prompts", "pairs", "judge@it1", "train@it2", "evalset@0", "evaluate@it2", "report"):
        assert f"Running stage '{stage}'" in log, stage


def test_readme_test_command_in_the_fresh_clone(project: Path):
    _, test_command = readme_commands()
    res = sh(f"{test_command} tests/test_readme.py", project, timeout=1200)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "passed" in res.stdout


def test_outputs_exist(project: Path):
    for rel in ["models/it0/model.safetensors", "models/it0/judgeloop_manifest.json", "data/prompts.parquet",
                "data/pairs.parquet", "data/it1/judgments.parquet", "data/it1/sft.parquet", "models/it2/model.safetensors",
                "metrics/it0/eval.json", "metrics/it2/eval.json", "metrics/it2/train.json",
                "stats/pairs.json", "stats/it1/judge.json", "stats/it1/curation.json", "stats/it1/train.json",
                "stats/it2/eval.json", "data/evalsets/llmbar-natural.parquet", "reports/summary.md",
                "reports/plots/eval.png", "reports/plots/judges/synthetic.json", "reports/it1/validation/results.json"]:
        assert (project / rel).exists(), rel


def test_pairs_record_provenance(project: Path):
    rows = duckdb.sql(f"select gen_status, generator, generator_hash, sampling, seed from '{project}/data/pairs.parquet'").fetchall()
    assert rows and all(r[1] and r[2] and json.loads(r[3])["answer"]["max_tokens"] == 24 for r in rows)
    assert any(r[0] == "ok" for r in rows)


def test_judgments_both_orders_and_forced_fallback(project: Path):
    q = f"select \"order\", verdict, parse_status, verdict_source, p_a, p_b, correct, judge_model from '{project}/data/it1/judgments.parquet'"
    rows = duckdb.sql(q).fetchall()
    assert {r[0] for r in rows} == {"wl", "lw"}
    for order, verdict, status, source, p_a, p_b, correct, judge in rows:
        assert judge.endswith("models/it0")
        assert verdict in ("A", "B")  # forced fallback: every row has a verdict
        if source == "forced":
            assert abs(p_a + p_b - 1) < 1e-6
        else:
            assert status == "ok"
        assert correct == (verdict == ("A" if order == "wl" else "B"))


def test_iteration_chain_and_eval_metrics(project: Path):
    j2 = duckdb.sql(f"select distinct judge_model from '{project}/data/it2/judgments.parquet'").fetchall()
    assert all(r[0].endswith("models/it1") for r in j2)
    card = json.loads((project / "models/it2/judgeloop_manifest.json").read_text())
    assert card["init"].endswith("models/it0")  # paper: restart from the seed
    for m in ("it0", "it1", "it2"):
        ev = json.loads((project / f"stats/{m}/eval.json").read_text())
        assert set(ev["sets"]) == {"synthetic", "llmbar-natural"}
        s = ev["sets"]["llmbar-natural"]
        assert s["n_examples"] == 2 and 0 <= s["accuracy"] <= 1 and 0 <= s["parse_rate"] <= 1
        metrics = json.loads((project / f"metrics/{m}/eval.json").read_text())[m]
        assert metrics["llmbar-natural"] == {"acc": s["accuracy"], "parse": s["parse_rate"], "a_share": s["a_rate"],
                                             "consist": s["position_consistency"], "n": 2,
                                             "acc_lo": s["accuracy_ci95"][0], "acc_hi": s["accuracy_ci95"][1]}
        assert metrics["n"] == ev["sets"]["synthetic"]["n_examples"]


def test_second_repro_is_noop(project: Path):
    status = dvc("status", cwd=project)
    assert status.returncode == 0
    assert "up to date" in status.stdout.lower(), status.stdout


def test_dvc_metrics_show_is_a_few_named_numbers(project: Path):
    res = dvc("metrics", "show", cwd=project)
    assert res.returncode == 0, res.stderr
    header = res.stdout.splitlines()[0].split()
    for col in ("it0.acc", "it0.acc_lo", "it2.acc_hi", "it1.parse", "it2.a_share", "it2.consist", "it1.n", "it1.llmbar-natural.acc",
                "it1.judged", "it2.kept", "it2.keep_rate", "it1.loss", "it2.ex_per_s"):
        assert col in header, (col, header)
    assert len(header) == 1 + 3 * 14 + 2 * 5, header  # Path; per judge 7 x 2 sets; per iteration 5
    assert "throughput" not in res.stdout and "scoring_rule" not in res.stdout


def test_dvc_plots_show_accuracy_and_parse_rate_per_judge(project: Path):
    res = dvc("plots", "show", "--json", cwd=project)
    assert res.returncode == 0, res.stderr
    plots = json.loads(res.stdout)["data"]
    for set_name in ("synthetic", "llmbar-natural"):
        rows = plots[f"reports/plots/judges/{set_name}.json"][0]["content"]["data"]["values"]
        fields = {r["field"] for r in rows}
        assert fields == {"accuracy", "parse_rate"}, fields
        assert sorted({r["judge"] for r in rows}) == ["it0", "it1", "it2"]


def test_editing_an_evaluation_set_reruns_its_evaluation(project: Path):
    path = project / "llmbar.json"
    original = path.read_text()
    data = json.loads(original)
    data[0]["label"] = 3 - data[0]["label"]  # a relabelled example
    path.write_text(json.dumps(data))
    try:
        status = dvc("status", cwd=project).stdout
        assert "evalset@0" in status and "llmbar.json" in status, status
        assert dvc("repro", "evalset@0", cwd=project).returncode == 0
        status = dvc("status", cwd=project).stdout  # the re-read set is new input to every judge's evaluation
        changed = sorted(line.rstrip(":") for line in status.splitlines() if line and not line.startswith(("\t", " ")))
        assert changed == ["evaluate@it0", "evaluate@it1", "evaluate@it2", "report"], status
    finally:
        path.write_text(original)
        assert dvc("repro", "evalset@0", cwd=project).returncode == 0
    assert "up to date" in dvc("status", cwd=project).stdout.lower()


def test_it2_only_param_reruns_only_it2(project: Path):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["iterations"]["it2"]["overrides"] = {"judging": {"samples": 3}}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        dry = dvc("repro", "--dry", cwd=project)
        assert dry.returncode == 0, dry.stderr
        ran = [line.split("'")[1] for line in dry.stdout.splitlines() if line.startswith("Running stage")]
        # the params check runs on any edit of params.yaml; its marker does not change, so nothing else follows from it
        assert ran[0] == "check" and ran[1:] and all(s.endswith("@it2") for s in ran[1:]), ran
    finally:
        params["iterations"]["it2"].pop("overrides")
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_broken_dataset_fails_validation(project: Path):
    """A duplicate judgment_id makes validate fail with a readable message."""
    path = project / "data/it1/judgments.parquet"
    backup = path.read_bytes()
    try:
        duckdb.sql(f"copy (select * from '{path}' union all (select * from '{path}' limit 1)) to '{path}.new' (format parquet)")
        os.replace(f"{path}.new", path)
        run = sh("source .venv/bin/activate && python stages/validate.py --iteration it1", project, timeout=600)
        assert run.returncode != 0
        assert "judgments" in run.stderr and "judgment_id" in run.stderr and "it1:" in run.stderr, run.stderr[-2000:]
    finally:
        path.write_bytes(backup)


def _digests(project: Path) -> dict[str, str]:
    import hashlib

    paths = [*project.glob("metrics/*/*.json"), *project.glob("data/**/*.parquet"), *project.glob("reports/summary.*"),
             *project.glob("stats/**/*.json")]
    return {str(p.relative_to(project)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_a_failed_or_interrupted_run_loses_nothing(project: Path):
    """A bad param fails before DVC removes any output; an interrupted stage's cached outputs come back with
    `dvc checkout`, and the metrics and report (in git, not DVC's cache) are never removed."""
    import signal
    import time

    before = _digests(project)
    bad = dvc("exp", "run", "-S", "judging.samples=abc", cwd=project, timeout=600)
    assert bad.returncode != 0
    assert "judging.samples" in bad.stdout + bad.stderr and "Running stage 'check'" in bad.stdout
    assert "Running stage 'judge" not in bad.stdout  # failed in the check stage, before any other
    assert _digests(project) == before
    assert "samples: abc" in (project / "params.yaml").read_text()  # DVC leaves the bad value; git takes it back
    subprocess.run(["git", "checkout", "--", "params.yaml"], cwd=project, check=True)
    committed = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=project, capture_output=True, text=True).stdout
    assert (project / "params.yaml").read_text() == committed
    # a value that parses but would need absurd memory is refused in the check stage too, with the estimate
    huge = dvc("exp", "run", "-S", "judging.samples=1000000000", cwd=project, timeout=600)
    assert huge.returncode != 0 and "GiB of generated rows" in huge.stdout + huge.stderr, huge.stdout[-2000:]
    assert "Running stage 'judge" not in huge.stdout and _digests(project) == before
    subprocess.run(["git", "checkout", "--", "params.yaml"], cwd=project, check=True)
    # Ctrl-C in the middle of a stage: DVC has removed that stage's cached outputs; `dvc checkout` restores them
    proc = subprocess.Popen(["bash", "-c", "source .venv/bin/activate && exec dvc repro -f --single-item judge@it1"],
                            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and (project / "data/it1/judgments.parquet").exists():
        time.sleep(0.5)
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, out[-2000:]
    lost = {k for k in before if not (project / k).exists()}
    assert lost and all(k.startswith(("data/it1/", "stats/it1/")) for k in lost), lost
    assert dvc("checkout", cwd=project).returncode == 0
    assert _digests(project) == before
    status = dvc("status", cwd=project)
    assert "up to date" in status.stdout, status.stdout


def test_pairwise_dpo_experiment(project: Path):
    """`dvc exp run -S training.algo=dpo`: the pairwise loop trained with DPO (+ NLL) on the judge's own pairs."""
    # temperature 1: the seed's forced choices vary enough that some pair-orders get a correct and a wrong sample;
    # the 135M seed writes no verdict itself, so DPO's chosen side may be a forced one (opt-in, not the default)
    run = dvc("exp", "run", "-S", "training.algo=dpo", "-S", "judging.samples=6", "-S", "judging.temperature=1.0",
              "-S", "curation.dpo_chosen=parsed_or_forced", cwd=project)
    (project / "exp-dpo.log").write_text(run.stdout + run.stderr)
    try:
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
        for it in ("it1", "it2"):
            dpo = duckdb.sql(f"""select d.chosen, d.rejected, d.chosen_verdict, d.rejected_reason, d."order",
                                        c.correct, r.correct, c.pair_id = r.pair_id and c."order" = r."order"
                                 from '{project}/data/{it}/dpo.parquet' d
                                 join '{project}/data/{it}/judgments.parquet' c on c.judgment_id = d.chosen_judgment_id
                                 join '{project}/data/{it}/judgments.parquet' r on r.judgment_id = d.rejected_judgment_id""").fetchall()
            assert dpo, f"{it}: empty DPO set"
            for chosen, rejected, verdict, reason, order, c_ok, r_ok, same_group in dpo:
                assert c_ok is True and r_ok is not True and same_group and chosen != rejected
                assert chosen.endswith(f"[[{verdict}]]") and reason in ("wrong", "unparsed")
            card = json.loads((project / f"models/{it}/judgeloop_manifest.json").read_text())
            assert card["algo"] == "dpo" and card["dpo"]["beta"] == 0.1 and card["dpo"]["nll_weight"] == 1.5
            train = json.loads((project / f"stats/{it}/train.json").read_text())
            assert train["algo"] == "dpo" and train["train_loss"] > 0
            assert json.loads((project / f"metrics/{it}/train.json").read_text())[it]["loss"] == round(train["train_loss"], 4)
        assert json.loads((project / "stats/it2/eval.json").read_text())["sets"]["synthetic"]["n_judgments"] > 0
        # baseline and experiment side by side, as `dvc exp show` prints them in a 200-column terminal
        show = sh("source .venv/bin/activate && dvc exp show --only-changed --no-pager", project, timeout=600, COLUMNS="200")
        (project / "exp-show.txt").write_text(show.stdout)
        assert show.returncode == 0, show.stderr
        assert max(len(line) for line in show.stdout.splitlines()) <= 200, show.stdout
        header = next(line for line in show.stdout.splitlines() if "Experiment" in line)
        shown = [cell for cell in re.split(r"\s{2,}", header.strip()) if re.fullmatch(r"it\d\.[\w.-]+", cell)]
        # short names (no file paths); how many differ from the baseline depends on the run, DVC folds what does not fit
        assert shown and "metrics/" not in header, show.stdout
    finally:  # back to the committed pairwise run for the tests after this one
        subprocess.run(["git", "checkout", "--", "."], cwd=project, check=True)
        assert dvc("checkout", "--force", cwd=project).returncode == 0


def test_likert_and_dpo_experiment(project: Path):
    """`dvc exp run -S method=likert -S training.algo=dpo`: Self-Rationalization, two iterations."""
    commit(project, "pairwise run")
    run = dvc("exp", "run", "-S", "method=likert", "-S", "training.algo=dpo", "-S", "curation.dpo_chosen=parsed_or_forced",
              cwd=project)
    (project / "exp.log").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    judged = duckdb.sql(f"select item_id, score, gold_score, parse_status, score_source from '{project}/data/it2/judgments.parquet'").fetchall()
    assert judged and all(r[1] in range(1, 6) for r in judged)  # forced fallback: every sample has a score
    dpo = duckdb.sql(f"select chosen, rejected, chosen_verdict from '{project}/data/it1/dpo.parquet'").fetchall()
    for chosen, rejected, v in dpo:
        assert chosen != rejected and f"[RESULT] {v}" in chosen
    card = json.loads((project / "models/it2/judgeloop_manifest.json").read_text())
    assert card["algo"] == "dpo" and card["dpo"]["nll_weight"] == 1.5
    ev = json.loads((project / "stats/it2/eval.json").read_text())
    assert ev["method"] == "likert"
    m = ev["sets"]["rubrics"]
    assert m["n"] > 0 and 0 <= m["exact"] <= 1 and 0 <= m["within_1"] <= 1
