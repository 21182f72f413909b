"""`judgeloop preset NAME`: named params sets written into params.yaml, comments kept, validated first."""

import shutil
from pathlib import Path

import pytest
import yaml

from judgeloop.cli import main
from judgeloop.config import load_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    return tmp_path


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "configs/presets").glob("*.yaml")))
def test_every_shipped_preset_applies_and_validates(project, name, capsys):
    assert main(["preset", name, "--root", str(project)]) == 0
    text = (project / "params.yaml").read_text()
    assert "# Self-Taught Evaluator" in text  # params.yaml's own comments survive
    load_params(project / "params.yaml")
    preset = yaml.safe_load((ROOT / "configs/presets" / f"{name}.yaml").read_text())
    params = yaml.safe_load(text)
    for key, value in preset.items():  # every value of the preset is now in params.yaml
        if isinstance(value, dict):
            assert all(params[key][k] == v for k, v in value.items() if not isinstance(v, dict)), key
        else:
            assert params[key] == value


def test_paper_preset_is_the_papers_setting(project):
    main(["preset", "paper", "--root", str(project)])
    p = load_params(project / "params.yaml")
    assert p.judging.samples == 15 and p.judging.max_tokens == 4096 and p.judging.verdict_fallback == "none"
    assert p.training.learning_rate == 1e-6 and p.training.warmup_steps == 100 and p.training.init == "seed"
    assert p.generation.backend == "vllm" and p.generation.vllm.tensor_parallel_size == 8
    assert p.training.accelerate_config == "configs/accelerate/zero3.yaml" and list(p.iterations) == [f"it{k}" for k in range(1, 6)]
    assert p.evaluation.verdict_fallback == "none"


def test_an_invalid_preset_changes_nothing(project, tmp_path, capsys):
    before = (project / "params.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("judging: {samples: 0}\n")
    assert main(["preset", str(bad), "--root", str(project)]) == 2
    assert "judging.samples" in capsys.readouterr().err
    assert (project / "params.yaml").read_text() == before
    assert main(["preset", "no-such-preset", "--root", str(project)]) == 2
    assert "presets: paper, showcase, smoke" in capsys.readouterr().err
