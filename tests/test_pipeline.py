"""The DAG in dvc.yaml against the code its stages run."""

import re
from pathlib import Path

import yaml

from judgeloop.pipeline import STAGES

ROOT = Path(__file__).resolve().parents[1]


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_every_stage_depends_on_the_code_it_runs():
    """Editing any library module (the verdict parser, a backend) must make `dvc repro` re-run the stages."""
    for name, stage in _stages().items():
        body = stage.get("do", stage)
        script = re.search(r"python (stages/\w+\.py)", body["cmd"]).group(1)
        deps = [d.split("#")[0].strip() for d in body["deps"]]
        for needed in (script, "stages/_stage.py", "src/judgeloop"):
            assert needed in deps, f"stage {name}: {needed} missing from deps {deps}"
        assert Path(script).stem in STAGES


def test_bytecode_does_not_change_the_library_hash():
    ignored = (ROOT / ".dvcignore").read_text().split()
    assert "__pycache__/" in ignored and "*.pyc" in ignored


# -- hostile and careless input at the stage scripts (what dvc.yaml runs) ---------------------------------------

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402


def _project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copytree(ROOT / "stages", proj / "stages")
    shutil.copy(ROOT / "params.yaml", proj / "params.yaml")
    return proj


def _stage(proj: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"stages/{script}.py", *args], cwd=proj, capture_output=True, text=True,
                          timeout=300)


def test_an_iteration_named_like_a_path_writes_nothing_outside(tmp_path):
    proj = _project(tmp_path)
    text = (proj / "params.yaml").read_text()
    (proj / "params.yaml").write_text(text.replace("\n  it2:", "\n  ../../../somewhere:").replace("{it1: 0.25, it2: 0.25}",
                                                                                               "{it1: 0.25, ../../../somewhere: 0.25}"))
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    run = _stage(proj, "judge", "--iteration", "../../../somewhere")
    assert run.returncode == 1
    assert "'../../../somewhere' is not a valid name" in run.stderr and "Traceback" not in run.stderr
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    assert not (proj / "data").exists()


def test_a_link_out_of_the_project_is_refused_before_anything_is_written(tmp_path):
    proj = _project(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (proj / "data").mkdir()
    (proj / "data" / "it1").symlink_to(outside, target_is_directory=True)
    run = _stage(proj, "curate", "--iteration", "it1")
    assert run.returncode == 1 and "outside the project" in run.stderr, run.stderr
    assert list(outside.iterdir()) == []


def test_validate_refuses_an_iteration_that_judged_evaluation_prompts(tmp_path):
    """The held-out split must never reach training data, whatever produced the files."""
    proj = _project(tmp_path)
    (proj / "data" / "it1").mkdir(parents=True)
    pq.write_table(pa.table({"pair_id": ["p1", "p2"], "prompt_id": ["x1", "x2"], "split": ["it1", "eval"]}),
                   proj / "data" / "pairs.parquet")
    pq.write_table(pa.table({"pair_id": ["p1", "p2"]}), proj / "data" / "it1" / "judgments.parquet")
    run = _stage(proj, "validate", "--iteration", "it1")
    assert run.returncode == 1
    assert "in the evaluation split too" in run.stderr and "x2" in run.stderr and "x1" not in run.stderr.split("prompt_id")[-1]


@pytest.mark.parametrize("script,needed", [("judge", "--iteration"), ("curate", "--iteration"), ("validate", "--iteration"),
                                           ("train", "--iteration"), ("evaluate", "--iteration"), ("evalset", "--name")])
def test_a_stage_without_its_argument_says_which_it_needs(tmp_path, script, needed):
    run = _stage(_project(tmp_path), script)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"stage {script} needs {needed} (one of [" in run.stderr, run.stderr


def test_a_params_set_that_cannot_fit_in_memory_is_refused_before_any_model_loads(tmp_path):
    proj = _project(tmp_path)
    text = (proj / "params.yaml").read_text()
    (proj / "params.yaml").write_text(re.sub(r"\n  samples: \d+", "\n  samples: 1000000000", text, count=1))
    run = _stage(proj, "judge", "--iteration", "it1")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert re.search(r"judge@it\d would hold about [\d,]+ GiB of generated rows .* this machine has [\d,]+ GiB", run.stderr), run.stderr
    assert not (proj / "models").exists() and not (proj / "data" / "it1").exists()
