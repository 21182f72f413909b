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
