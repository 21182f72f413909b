"""A prompt longer than the model's context: the generating stage names the request (prompt
id / pair and order), the prompt's length and the model's limit, exits 1
before generating anything, and writes nothing; after the fix (the long
instruction dropped by prompts.max_chars), the rerun completes.

Fast: the tiny random-weight Llama of conftest (a 1024-position context).
Slow: the same on SmolLM2-135M (8192 positions), with an instruction of
about 9000 tokens.
"""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from .conftest import TINY_CONTEXT, assert_fails, assert_ok, assert_untouched, run_in

SHORT = [{"id": "short1", "instruction": "What is 3 plus 4?"}, {"id": "short2", "instruction": "Name a large planet."}]


def setup_pairs_project(project, model, long_words: int):
    (project.root / "models").mkdir(exist_ok=True)
    shutil.copytree(model, project.root / "models" / "it0")
    rows = [*SHORT, {"id": "long", "instruction": "Summarise the following text. " + "the answer is yes " * (long_words // 4)}]
    (project.root / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    project.set_params({
        "prompts": {"sources": [{"kind": "jsonl", "path": "mine.jsonl"}], "max_chars": 200_000,
                    "split": {"seed": 0, "eval_fraction": 0.5, "iteration_fractions": {"it1": 0.25, "it2": 0.25}}},
        "generation": {"backend": "transformers", "device": "cpu", "cache_dir": "cache", "batch_size": 4},
        "pairs": {"max_tokens": 8, "modify_max_tokens": 8, "modify_with_response": False},
        "iterations": {"it1": {"prev": "it0"}, "it2": {"prev": "it1"}},
    })
    assert_ok(project.stage("prompts"))
    assert pq.read_table(project.root / "data/prompts.parquet").num_rows == 3


def check_fails_then_fixed(project, context: int, caplog, monkeypatch):
    before = project.outputs()
    err = assert_fails(project.stage("pairs", timeout=900), "stage pairs failed: request 'long:w': the prompt is ",
                       f"takes at most {context} tokens (max_position_embeddings)", "prompts.max_chars")
    assert "models/it0" in err
    assert_untouched(project, before)  # no pairs.parquet, no cached shard

    project.update_params({"prompts": {"max_chars": 4000}})
    assert_ok(project.stage("prompts"))  # the long instruction is dropped now, by name
    assert run_in(project.root, "pairs", caplog=caplog, monkeypatch=monkeypatch) == (0, "")
    pairs = pq.read_table(project.root / "data/pairs.parquet").column("pair_id").to_pylist()
    assert sorted(pairs) == ["short1", "short2"]


def test_prompt_longer_than_context_tiny_model(project, tiny_model, caplog, monkeypatch):
    setup_pairs_project(project, tiny_model, long_words=TINY_CONTEXT + 200)
    check_fails_then_fixed(project, TINY_CONTEXT, caplog, monkeypatch)


def test_judge_prompt_longer_than_context_names_the_pair(project, tiny_model):
    """Long responses in one pair: the judge prompt (both responses) is too long for the judge."""
    (project.root / "models").mkdir()
    shutil.copytree(tiny_model, project.root / "models" / "it0")
    rows = project.write_pairs(n=2)
    rows[1]["response_l"] = "no " * (TINY_CONTEXT + 50)
    from judgeloop.io import write_parquet
    from judgeloop.schemas import to_table

    write_parquet(to_table("pairs", rows), project.root / "data/pairs.parquet")
    project.set_params({"generation": {"backend": "transformers", "device": "cpu", "cache_dir": None},
                        "judging": {"samples": 1, "max_tokens": 4}, "iterations": {"it1": {"prev": "it0"}}})
    before = project.outputs()
    assert_fails(project.stage("judge", "--iteration", "it1"), "stage judge failed: request 'it1:p1:", "the prompt is ",
                 f"takes at most {TINY_CONTEXT} tokens")
    assert_untouched(project, before)


@pytest.mark.slow
def test_prompt_longer_than_context_smollm2(project, seed_model, caplog, monkeypatch):
    setup_pairs_project(project, seed_model, long_words=9000)
    check_fails_then_fixed(project, 8192, caplog, monkeypatch)
