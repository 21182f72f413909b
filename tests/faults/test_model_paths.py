"""A model path that does not exist or is not a model: for the seed stage (`seed.source`),
for a stage that loads `models/<prev>` (judge), and for `judgeloop judge --model`.

Each: exit non-zero with the path named and what is wrong with it, no
models/it0 or judgments written (no half-saved checkpoint either), and after
the fix the same command completes. The "model" that fixes things is the
tiny random-weight Llama of conftest (real transformers code, a second to
load); tests/faults/test_model_faults_slow.py repeats the key cases on
SmolLM2-135M.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .conftest import assert_fails, assert_untouched, run_in


def make_bad(kind: str, where: Path, tiny: Path) -> Path:
    """A path that is not a usable model, of the given kind."""
    if kind == "missing":
        return where / "no-such-model"
    if kind == "empty-dir":
        where.mkdir(parents=True)
        return where
    if kind == "a-file":
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text("not a model\n")
        return where
    shutil.copytree(tiny, where)
    if kind == "config-not-json":
        (where / "config.json").write_text("{not json")
    elif kind == "config-not-a-model":
        (where / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    elif kind == "no-tokenizer":
        for f in ("tokenizer.json", "tokenizer_config.json"):
            (where / f).unlink()
    elif kind == "no-weights":
        (where / "model.safetensors").unlink()
    elif kind == "truncated-weights":
        data = (where / "model.safetensors").read_bytes()
        (where / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif kind == "garbage-weights":
        (where / "model.safetensors").write_bytes(b"\x00" * 1000)
    elif kind == "no-chat-template":
        (where / "chat_template.jinja").unlink()
    else:
        raise ValueError(kind)
    return where


SEED_CASES = [
    ("missing", ["not an existing directory"]),
    ("empty-dir", ["not a model directory (no config.json)"]),
    ("a-file", ["is a file, not a model directory"]),
    ("config-not-json", ["cannot load", "config.json", "not a valid JSON file"]),
    ("config-not-a-model", ["cannot load", "no-such-architecture"]),
    ("no-tokenizer", ["cannot load its tokenizer"]),
    ("no-weights", ["cannot load the model weights"]),
    ("truncated-weights", ["cannot load the model weights"]),
    ("garbage-weights", ["cannot load the model weights"]),
    ("no-chat-template", ["the tokenizer has no chat template"]),
]


@pytest.mark.parametrize("kind,needles", SEED_CASES, ids=[c[0] for c in SEED_CASES])
def test_seed_source_that_is_not_a_model(project, tiny_model, kind, needles, caplog, monkeypatch):
    bad = make_bad(kind, project.root / "inputs" / "bad-model", tiny_model)
    project.set_params({"seed": {"source": str(bad)}})
    rc, msg = run_in(project.root, "seed", caplog=caplog, monkeypatch=monkeypatch)
    assert rc == 1
    for n in ["stage seed failed: seed.source", repr(str(bad)), *needles]:
        assert n in msg, (n, msg)
    assert project.outputs() == {}  # no models/it0, no half-saved checkpoint


def test_seed_source_user_view_then_fixed(project, tiny_model, caplog, monkeypatch):
    bad = make_bad("truncated-weights", project.root / "inputs" / "bad-model", tiny_model)
    project.set_params({"seed": {"source": str(bad)}})
    assert_fails(project.stage("seed"), f"stage seed failed: seed.source '{bad}': cannot load the model weights")
    assert project.outputs() == {}
    project.set_params({"seed": {"source": str(tiny_model)}})  # the fix; the rerun in process (no second torch import)
    assert run_in(project.root, "seed", caplog=caplog, monkeypatch=monkeypatch) == (0, "")
    manifest = json.loads((project.root / "models/it0/judgeloop_manifest.json").read_text())
    assert manifest["source"] == str(tiny_model) and len(manifest["content_hash"]) == 64
    assert project.temporaries() == []


@pytest.mark.parametrize("source,needles", [
    ("packaged:no-such-model", ["unknown packaged model 'no-such-model'", "available: ['gemma3-270m', 'smollm2-135m']"]),
    ("no-such-org/no-such-model", ["seed.source 'no-such-org/no-such-model'", "cannot load from the hub or its cache"]),
    ("not a model id", ["seed.source 'not a model id'", "not an existing directory"]),
])
def test_seed_source_names_that_resolve_to_nothing(project, source, needles):
    project.set_params({"seed": {"source": source}})
    assert_fails(project.stage("seed"), *needles)
    assert project.outputs() == {}


@pytest.fixture
def judge_project(project):
    project.write_pairs(n=2)
    project.set_params({"generation": {"backend": "transformers", "device": "cpu", "cache_dir": None, "batch_size": 4},
                        "judging": {"samples": 1, "max_tokens": 4, "verdict_fallback": "forced"},
                        "iterations": {"it1": {"prev": "it0"}}})
    return project


JUDGE_CASES = [
    ("missing", ["models/it0: not a model directory (no config.json)"]),
    ("empty-dir", ["models/it0: not a model directory (no config.json)"]),
    ("config-not-json", ["models/it0", "cannot load", "not a valid JSON file"]),
    ("no-tokenizer", ["models/it0", "cannot load its tokenizer"]),
    ("no-weights", ["models/it0", "cannot load the model weights"]),
    ("truncated-weights", ["models/it0", "cannot load the model weights"]),
    ("garbage-weights", ["models/it0", "cannot load the model weights"]),
]


@pytest.mark.parametrize("kind,needles", JUDGE_CASES, ids=[c[0] for c in JUDGE_CASES])
def test_previous_judge_that_is_not_a_model(judge_project, tiny_model, kind, needles, caplog, monkeypatch):
    project = judge_project
    if kind != "missing":
        make_bad(kind, project.root / "models" / "it0", tiny_model)
    before = project.outputs()
    rc, msg = run_in(project.root, "judge", "--iteration", "it1", caplog=caplog, monkeypatch=monkeypatch)
    assert rc == 1
    for n in ["stage judge failed:", *needles]:
        assert n in msg, (n, msg)
    assert_untouched(project, before)


def test_previous_judge_user_view_then_fixed(judge_project, tiny_model, caplog, monkeypatch):
    project = judge_project
    it0 = make_bad("garbage-weights", project.root / "models" / "it0", tiny_model)
    before = project.outputs()
    assert_fails(project.stage("judge", "--iteration", "it1"), "stage judge failed: models/it0: cannot load the model weights")
    assert_untouched(project, before)
    shutil.rmtree(it0)  # the fix: the real checkpoint back in place (a rerun of the stage that makes it)
    shutil.copytree(tiny_model, it0)
    assert run_in(project.root, "judge", "--iteration", "it1", caplog=caplog, monkeypatch=monkeypatch) == (0, "")
    assert pq.read_table(project.root / "data/it1/judgments.parquet").num_rows == 4


PAIRWISE = [{"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5"}]
JUDGE_ARGS = ["judge", "pairs.jsonl", "--format", "pairwise", "--output", "out.parquet", "--max-tokens", "4"]


@pytest.mark.parametrize("kind,needles", [
    ("missing", ["no such model directory"]),
    ("empty-dir", ["not a model directory (no config.json)"]),
    ("a-file", ["is a file, not a model directory"]),
    ("garbage-weights", ["cannot load the model weights"]),
    ("no-tokenizer", ["cannot load its tokenizer"]),
])
def test_judge_cli_model_that_is_not_a_model(project, tiny_model, kind, needles, capsys, monkeypatch):
    from judgeloop.cli import main

    monkeypatch.chdir(project.root)
    (project.root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PAIRWISE))
    bad = make_bad(kind, project.root / "bad-model", tiny_model)
    assert main([*JUDGE_ARGS, "--model", str(bad)]) == 2
    err = capsys.readouterr().err
    for n in ["judgeloop: judge:", str(bad), *needles]:
        assert n in err, (n, err)
    assert sorted(p.name for p in project.root.iterdir() if "out" in p.name) == []


def test_judge_cli_user_view_then_fixed(project, tiny_model, monkeypatch):
    from judgeloop.cli import main

    (project.root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PAIRWISE))
    bad = make_bad("truncated-weights", project.root / "bad-model", tiny_model)
    res = project.cli(*JUDGE_ARGS, "--model", str(bad))
    assert res.returncode == 2
    assert_fails(res, f"judgeloop: judge: {bad}: cannot load the model weights")
    assert sorted(p.name for p in project.root.iterdir() if "out" in p.name) == []
    monkeypatch.chdir(project.root)
    assert main([*JUDGE_ARGS, "--model", str(tiny_model)]) == 0
    assert pq.read_table(project.root / "out.parquet").num_rows == 2


def test_judge_cli_relative_model_path_typo(project, capsys, monkeypatch):
    """`models/it9` when models/ exists is a missing folder, not a Hugging Face id to look up."""
    from judgeloop.cli import main

    monkeypatch.chdir(project.root)
    (project.root / "models" / "it1").mkdir(parents=True)
    (project.root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PAIRWISE))
    assert main([*JUDGE_ARGS, "--model", "models/it9"]) == 2
    assert "judgeloop: judge: --model models/it9: no such model directory" in capsys.readouterr().err
