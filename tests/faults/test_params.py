"""Malformed params, every field: the stage exits non-zero naming the key, and writes nothing.

The fields are not listed by hand: they are walked from the typed models in
judgeloop.config over a full dump of the shipped params.yaml, so a field
added later is covered too. Each gets a value of the wrong type and, where
the field has a numeric bound, a value just past it. One stage subprocess
with every leaf broken at once checks the user-level view (all keys named in
one message, exit 1, no output); the per-field cases run `run_stage` in
process (the same code the stage scripts call) to stay fast.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import annotated_types as at
import pytest
import yaml
from pydantic import BaseModel

from judgeloop.config import ConfigError, IterationOverrides, Params, _inner_model, parse_params
from judgeloop.pipeline import run_stage

from .conftest import assert_fails, assert_ok, assert_untouched, shipped_params

# a full params document: the shipped file with every default written out, and
# one evaluation set so the EvalSet fields are there to break
BASE = Params.model_validate(shipped_params()).model_dump(mode="json")
BASE["evaluation"]["sets"] = [{"name": "mine", "format": "pairwise", "path": "pairs.jsonl"}]
parse_params(BASE)

WRONG_TYPES = ["§not-valid§", 12345, [1, 2]]


def _fields(model: type[BaseModel], data: Any, path: tuple) -> list[tuple[tuple, Any]]:
    """(path, FieldInfo) of every field reachable in `data`, nested models included (and descended)."""
    out = []
    for name, info in model.model_fields.items():
        here, value = (*path, name), data.get(name)
        out.append((here, info))
        inner = _inner_model(info.annotation)
        if inner is None or inner is IterationOverrides:
            continue
        if isinstance(value, dict) and name not in ("iterations",):
            out += _fields(inner, value, here)
        elif isinstance(value, dict):  # iterations: name -> IterationConfig
            for key, item in value.items():
                out += _fields(inner, item, (*here, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                out += _fields(inner, item, (*here, i))
    return out


def _override_fields() -> list[tuple[tuple, Any]]:
    """Per-iteration overrides: iterations.it1.overrides.<block>.<field> for every field of the block."""
    out = []
    for block in ("judging", "curation", "training"):
        model = type(getattr(parse_params(BASE), block))
        for here, info in _fields(model, BASE[block], ("iterations", "it1", "overrides", block)):
            out.append((here, info))
    return out


def _set(data: dict, path: tuple, value: Any) -> dict:
    data = copy.deepcopy(data)
    cur = data
    for p in path[:-1]:
        cur = cur.setdefault(p, {}) if isinstance(cur, dict) else cur[p]
    cur[path[-1]] = value
    return data


def _fails(data: dict) -> bool:
    try:
        parse_params(data)
    except ConfigError:
        return True
    return False


def _out_of_range(info: Any) -> list[Any]:
    """Values just past each numeric bound of a field."""
    vals = []
    for m in info.metadata:
        if isinstance(m, at.Ge):
            vals.append(m.ge - 1 if isinstance(m.ge, int) else m.ge - 0.5)
        elif isinstance(m, at.Gt):
            vals.append(m.gt)
        elif isinstance(m, at.Le):
            vals.append(m.le + 1 if isinstance(m.le, int) else m.le + 0.5)
        elif isinstance(m, at.Lt):
            vals.append(m.lt)
    return vals


def _cases() -> list[tuple[str, tuple, Any]]:
    cases = []
    for path, info in _fields(Params, BASE, ()) + _override_fields():
        key = ".".join(map(str, path))
        wrong = next((v for v in WRONG_TYPES if _fails(_set(BASE, path, v))), None)
        assert wrong is not None, f"{key} accepts every wrong-typed value tried"
        cases.append((key, path, wrong))
        cases += [(key, path, v) for v in _out_of_range(info)]
    return cases


CASES = _cases()


def _leaf_paths() -> list[tuple]:
    return [p for p, info in _fields(Params, BASE, ()) if _inner_model(info.annotation) is None]


def test_the_walk_covers_every_block():
    keys = {k for k, _, _ in CASES}
    for must in ("method", "seed.source", "prompts.sources.0.kind", "prompts.split.iteration_fractions",
                 "generation.openai.max_retries", "generation.vllm.gpu_memory_utilization", "pairs.modify_max_tokens",
                 "judging.samples", "curation.dpo_balance", "training.lora.r", "training.dpo.beta",
                 "evaluation.sets.0.orders", "likert.sources.0.layout", "likert.synthetic_gold", "iterations.it2.prev",
                 "iterations.it1.overrides.judging.samples", "iterations.it2.overrides", "training.launcher"):
        assert must in keys, must
    assert len(keys) > 120


@pytest.mark.parametrize("key,path,value", CASES, ids=[f"{k}={v!r}" for k, _, v in CASES])
def test_each_bad_field_is_named_and_nothing_is_written(key, path, value, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)  # a stage that wrongly ran would write here, not into the repository
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_set(BASE, path, value), sort_keys=False))
    with caplog.at_level(logging.ERROR, logger="judgeloop"):
        rc = run_stage("prompts", ["--params", "params.yaml"])
    assert rc == 1
    msg = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "params.yaml" in msg and key in msg, msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_every_leaf_broken_at_once_names_them_all(project):
    """The user's view: one stage run, exit 1, every broken key listed, no output."""
    data, expected = copy.deepcopy(BASE), []
    for path in _leaf_paths():
        wrong = next(v for v in WRONG_TYPES if _fails(_set(BASE, path, v)))
        data = _set(data, path, wrong)
        expected.append(".".join(map(str, path)))
    (project.root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    before = project.outputs()
    for res in (project.stage("prompts"), project.cli("stage", "judge", "--iteration", "it1")):
        err = assert_fails(res, "params.yaml: invalid params:")
        missing = [k for k in expected if f"  {k}: " not in err and f"  {k} = " not in err]
        assert not missing, f"keys not named: {missing}\n{err[-3000:]}"
    assert_untouched(project, before)
    project.set_params({})  # the fix: the shipped params
    assert_ok(project.stage("prompts"))
    assert (project.root / "data/prompts.parquet").exists()


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"prompts": {"min_chars": 500, "max_chars": 100}}, "prompts.min_chars (500) must be <= prompts.max_chars (100)"),
        ({"prompts": {"split": {"eval_fraction": 0.99}}}, "prompts.split.eval_fraction + sum of prompts.split.iteration_fractions"),
        ({"prompts": {"split": {"iteration_fractions": {"it9": 0.1}}}}, "prompts.split.iteration_fractions must name every iteration"),
        ({"iterations": {"it2": {"prev": "it7"}}}, "iterations.it2.prev = 'it7' does not exist"),
        ({"iterations": {"it1": {"prev": "it2"}}}, "iterations.it1: `prev` chain has a cycle"),
        ({"evaluation": {"models": ["it0", "it9"]}}, "evaluation.models has 'it9'"),
        ({"training": {"launcher": "accelerate"}}, "training.accelerate_config"),
        ({"prompts": {"sources": [{"kind": "jsonl"}]}}, "needs `path`"),
        ({"judging": {"sampels": 3}}, "judging.sampels: unknown key; allowed keys here:"),
        ({"iterations": {"it1": {"overrides": {"judging": {"samples": 0}}}}}, "iterations.it1.overrides.judging.samples"),
    ],
    ids=["min>max", "fractions>1", "fraction-missing", "prev-unknown", "prev-cycle", "eval-model-unknown",
         "accelerate-without-config", "source-without-path", "unknown-key", "override-out-of-range"],
)
def test_impossible_combinations_fail_in_the_stage(project, change, needle):
    project.set_params(change)
    before = project.outputs()
    assert_fails(project.stage("prompts"), "params.yaml", needle)
    assert_untouched(project, before)


@pytest.mark.parametrize(
    "content,needle",
    [
        (None, "params.yaml: file not found"),
        (b"judging: {samples: [1, 2\n", "params.yaml: not valid YAML"),
        (b"- just\n- a list\n", "params.yaml: the top level must be a mapping"),
        (b"method: pairwise\nseed: {source: \xff\xfe}\n", "params.yaml: not valid UTF-8"),
        (b"", "params.yaml: the top level must be a mapping"),
    ],
    ids=["missing", "yaml-syntax", "not-a-mapping", "not-utf8", "empty"],
)
def test_unreadable_params_file(project, content, needle):
    path: Path = project.root / "params.yaml"
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    before = project.outputs()
    assert_fails(project.stage("prompts"), needle)
    assert_untouched(project, before)
    project.set_params({})
    assert_ok(project.stage("prompts"))
