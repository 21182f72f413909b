"""The instruction pool: normalise, de-duplicate, hash-based splits, categories."""

import copy
import json
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
import yaml

from judgeloop.config import parse_params
from judgeloop.loaders import InputError
from judgeloop.pool import (
    assign_split,
    build_prompts,
    dedupe_key,
    normalise,
    split_u,
    text_id,
)
from judgeloop.schemas import PROMPTS

PARAMS_YAML = Path(__file__).resolve().parents[1] / "params.yaml"
SHIPPED = yaml.safe_load(PARAMS_YAML.read_text(encoding="utf-8"))


DEFAULT_FRACTIONS = {"it1": 0.3, "it2": 0.3}


def make_params(sources=None, *, fractions=None, eval_fraction=0.1, split_seed=0, **prompt_over):
    """Params with the given sources and split; one iteration per entry of `fractions`."""
    fractions = dict(fractions or DEFAULT_FRACTIONS)
    d = copy.deepcopy(SHIPPED)
    if sources is not None:
        d["prompts"]["sources"] = sources
    d["prompts"]["split"] = {"seed": split_seed, "eval_fraction": eval_fraction, "iteration_fractions": fractions}
    d["prompts"].update(prompt_over)
    names = list(fractions)
    d["iterations"] = {n: {"prev": names[i - 1] if i else "it0"} for i, n in enumerate(names)}
    d["evaluation"]["models"] = None
    return parse_params(d)


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {"kind": "jsonl", "path": str(path)}


def many(n, start=0, prefix="p"):
    return [
        {"id": f"{prefix}{i}", "instruction": f"Instruction {prefix}{i}: explain topic {i}."}
        for i in range(start, start + n)
    ]


def splits(table) -> dict[str, str]:
    return dict(zip(table.column("prompt_id").to_pylist(), table.column("split").to_pylist()))


# --- normalise / dedupe_key ------------------------------------------------------------


def test_normalise_crlf_and_cr():
    assert normalise("a\r\nb\rc\n") == "a\nb\nc"


def test_normalise_trailing_spaces_and_outer_blank_lines():
    assert normalise("\n\n  hello   \nworld\t \n\n") == "hello\nworld"


def test_normalise_nfc():
    decomposed = "cafe\u0301"
    out = normalise(decomposed)
    assert out == "caf\u00e9"
    assert unicodedata.is_normalized("NFC", out)


def test_normalise_keeps_code_indentation_and_blank_lines():
    text = "Fix this:\r\n\r\ndef f(x):   \r\n    if x:\r\n        return 1\r\n\treturn 2\r\n"
    assert normalise(text) == "Fix this:\n\ndef f(x):\n    if x:\n        return 1\n\treturn 2"


def test_normalise_keeps_inner_spacing():
    assert normalise("a   b") == "a   b"


def test_normalise_is_idempotent():
    text = " x \r\n  y  \r\n"
    assert normalise(normalise(text)) == normalise(text)


def test_dedupe_key_ignores_case_and_whitespace():
    assert dedupe_key("Hello   World\n") == dedupe_key("hello world")
    assert dedupe_key("STRASSE") == dedupe_key("straße")  # casefold, not lower
    assert dedupe_key("hello world") != dedupe_key("hello worlds")


def test_text_id_is_stable_and_dedupe_aware():
    assert text_id("Hello World") == text_id("hello   world")
    assert text_id("a") != text_id("b")
    assert text_id("x").startswith("h-") and len(text_id("x")) == 14


# --- split_u / assign_split --------------------------------------------------------------


def test_split_u_is_deterministic_and_in_unit_interval():
    us = [split_u(f"id{i}", 0) for i in range(2000)]
    assert us == [split_u(f"id{i}", 0) for i in range(2000)]
    assert all(0.0 <= u < 1.0 for u in us)
    # roughly uniform
    assert 0.45 < sum(us) / len(us) < 0.55
    assert 0.08 < sum(u < 0.1 for u in us) / len(us) < 0.12


def test_split_u_depends_on_seed():
    assert split_u("id1", 0) != split_u("id1", 1)


def test_assign_split_ranges():
    its = [("it1", 0.25), ("it2", 0.25)]  # binary fractions: exact boundaries
    assert assign_split(0.0, 0.125, its) == "eval"
    assert assign_split(0.124, 0.125, its) == "eval"
    assert assign_split(0.125, 0.125, its) == "it1"
    assert assign_split(0.374, 0.125, its) == "it1"
    assert assign_split(0.375, 0.125, its) == "it2"
    assert assign_split(0.624, 0.125, its) == "it2"
    assert assign_split(0.625, 0.125, its) == "unused"
    assert assign_split(0.99, 0.125, its) == "unused"


def test_assign_split_follows_the_given_order():
    assert assign_split(0.2, 0.125, [("it2", 0.25), ("it1", 0.25)]) == "it2"


def test_assign_split_zero_eval_fraction():
    assert assign_split(0.0, 0.0, [("it1", 0.5)]) == "it1"


# --- build_prompts ----------------------------------------------------------------------------


def test_build_prompts_schema_and_sorted(tmp_path):
    p = make_params([jsonl(tmp_path / "a.jsonl", many(20))])
    t = build_prompts(p)
    assert t.schema == PROMPTS
    ids = t.column("prompt_id").to_pylist()
    assert ids == sorted(ids) and len(ids) == 20
    row = t.to_pylist()[0]
    assert row["split_seed"] == 0
    assert row["split_u"] == split_u(row["prompt_id"], 0)
    assert row["category_source"] == "none" and row["category_parse_status"] == "skipped"


def test_build_prompts_normalises(tmp_path):
    rows = [{"id": "a", "instruction": "  Explain   this:\r\n    x = 1   \r\n"}]
    t = build_prompts(make_params([jsonl(tmp_path / "a.jsonl", rows)]))
    assert t.column("instruction").to_pylist() == ["Explain   this:\n    x = 1"]


def test_duplicates_by_case_and_whitespace_dropped_first_kept(tmp_path):
    rows = [
        {"id": "a", "instruction": "Explain how tides work."},
        {"id": "b", "instruction": "EXPLAIN  how\ntides work.  "},
        {"id": "c", "instruction": "explain how tides work."},
        {"id": "d", "instruction": "Explain how volcanoes work."},
    ]
    t = build_prompts(make_params([jsonl(tmp_path / "a.jsonl", rows)]))
    got = {r["prompt_id"]: r["instruction"] for r in t.to_pylist()}
    assert got == {"a": "Explain how tides work.", "d": "Explain how volcanoes work."}


def test_duplicates_across_sources_first_source_kept(tmp_path):
    a = jsonl(tmp_path / "a.jsonl", [{"id": "a1", "instruction": "Explain how tides work."}])
    b = jsonl(tmp_path / "b.jsonl", [{"id": "b1", "instruction": "explain how TIDES work."}])
    t = build_prompts(make_params([a, b]))
    assert t.column("prompt_id").to_pylist() == ["a1"]
    assert t.column("source").to_pylist() == [a["path"]]


def test_too_short_and_too_long_dropped(tmp_path):
    rows = [
        {"id": "short", "instruction": "  hi   "},  # 2 chars after normalising
        {"id": "edge_min", "instruction": "x" * 8},
        {"id": "edge_max", "instruction": "y" * 50},
        {"id": "long", "instruction": "z" * 51},
        {"id": "blank", "instruction": " \n\t "},
    ]
    t = build_prompts(make_params([jsonl(tmp_path / "a.jsonl", rows)], min_chars=8, max_chars=50))
    assert sorted(t.column("prompt_id").to_pylist()) == ["edge_max", "edge_min"]


def test_everything_dropped_is_an_error(tmp_path):
    rows = [{"id": "a", "instruction": "hi"}]
    with pytest.raises(InputError, match="no instruction left"):
        build_prompts(make_params([jsonl(tmp_path / "a.jsonl", rows)]))


def test_ids_must_be_unique_across_sources(tmp_path):
    a = jsonl(tmp_path / "a.jsonl", [{"id": "x1", "instruction": "Explain how tides work."}])
    b = jsonl(tmp_path / "b.jsonl", [{"id": "x1", "instruction": "Explain how volcanoes work."}])
    with pytest.raises(InputError) as ei:
        build_prompts(make_params([a, b]))
    msg = str(ei.value)
    assert "'x1'" in msg and a["path"] in msg and b["path"] in msg
    assert "id_column: null" in msg


def test_id_column_null_derives_ids_from_text(tmp_path):
    a = jsonl(tmp_path / "a.jsonl", [{"id": "x1", "instruction": "Explain how tides work."}])
    b = jsonl(tmp_path / "b.jsonl", [{"id": "x1", "instruction": "Explain how volcanoes work."}])
    b["id_column"] = None
    t = build_prompts(make_params([a, b]))
    ids = set(t.column("prompt_id").to_pylist())
    assert ids == {"x1", text_id("Explain how volcanoes work.")}


def test_given_categories_recorded(tmp_path):
    rows = [
        {"id": "a", "instruction": "What is 2 + 2 times 3?", "category": "math"},
        {"id": "b", "instruction": "Write a limerick about cats."},
    ]
    t = {r["prompt_id"]: r for r in build_prompts(make_params([jsonl(tmp_path / "a.jsonl", rows)])).to_pylist()}
    assert (t["a"]["category"], t["a"]["category_source"], t["a"]["category_parse_status"]) == ("math", "given", "ok")
    assert (t["b"]["category"], t["b"]["category_source"], t["b"]["category_parse_status"]) == (None, "none", "skipped")


def test_categorize_enabled_needs_backend(tmp_path):
    p = make_params([jsonl(tmp_path / "a.jsonl", many(3))], categorize={"enabled": True})
    with pytest.raises(ValueError, match="backend"):
        build_prompts(p)


# --- split stability ----------------------------------------------------------------------------


def test_adding_prompts_keeps_existing_splits(tmp_path):
    f = tmp_path / "a.jsonl"
    before = splits(build_prompts(make_params([jsonl(f, many(200))])))
    after = splits(build_prompts(make_params([jsonl(f, many(200) + many(300, start=200))])))
    assert len(after) == 500
    assert {k: after[k] for k in before} == before
    # the new prompts are spread over the splits too
    assert {after[f"p{i}"] for i in range(200, 500)} >= {"eval", "it1", "it2", "unused"}


def test_adding_a_source_keeps_existing_splits(tmp_path):
    a = jsonl(tmp_path / "a.jsonl", many(150))
    before = splits(build_prompts(make_params([a])))
    b = jsonl(tmp_path / "b.jsonl", many(150, prefix="other"))
    after = splits(build_prompts(make_params([b, a])))  # even when put first
    assert {k: after[k] for k in before} == before


def test_appending_an_iteration_keeps_existing_splits(tmp_path):
    src = [jsonl(tmp_path / "a.jsonl", many(400))]
    before = splits(build_prompts(make_params(src, fractions={"it1": 0.3, "it2": 0.3})))
    after = splits(build_prompts(make_params(src, fractions={"it1": 0.3, "it2": 0.3, "it3": 0.2})))
    for pid, s in before.items():
        if s != "unused":
            assert after[pid] == s, pid
        else:
            assert after[pid] in ("unused", "it3"), pid
    assert "it3" in after.values()
    assert Counter(before.values())["unused"] == Counter(after.values())["unused"] + Counter(after.values())["it3"]


def test_changing_iteration_overrides_keeps_splits(tmp_path):
    src = [jsonl(tmp_path / "a.jsonl", many(100))]
    p = make_params(src)
    d = p.model_dump()
    d["iterations"]["it2"]["overrides"]["judging"] = {"samples": 6}
    assert build_prompts(p).equals(build_prompts(parse_params(d)))


def test_same_seed_same_splits_other_seed_different(tmp_path):
    src = [jsonl(tmp_path / "a.jsonl", many(300))]
    a = build_prompts(make_params(src, split_seed=0))
    b = build_prompts(make_params(src, split_seed=0))
    c = build_prompts(make_params(src, split_seed=1))
    assert a.equals(b)
    assert splits(a) != splits(c)
    assert a.column("split_u").to_pylist() != c.column("split_u").to_pylist()
    assert set(c.column("split_seed").to_pylist()) == {1}


def test_eval_fraction_respected_on_builtin_set():
    p = make_params(None, eval_fraction=0.2)  # builtin source
    t = build_prompts(p)
    n = t.num_rows
    assert n >= 300
    c = Counter(t.column("split").to_pylist())
    assert 0.13 < c["eval"] / n < 0.27
    assert 0.22 < c["it1"] / n < 0.38
    assert 0.22 < c["it2"] / n < 0.38
    assert set(c) == {"eval", "it1", "it2", "unused"}


def test_shipped_params_build_on_builtin():
    p = parse_params(copy.deepcopy(SHIPPED))
    t = build_prompts(p)
    c = Counter(t.column("split").to_pylist())
    assert t.num_rows >= 300
    assert c["unused"] > c["eval"]
    assert set(c) <= {"eval", "it1", "it2", "unused"}


def test_category_filter_marks_others_excluded(tmp_path):
    rows = [
        {"id": f"r{i}", "instruction": f"Reasoning puzzle number {i}.", "category": "Reasoning" if i % 2 else "math"}
        for i in range(100)
    ] + [{"id": "nocat", "instruction": "An instruction without a category."}]
    p = make_params([jsonl(tmp_path / "a.jsonl", rows)], categories=["reasoning"])
    t = build_prompts(p).to_pylist()
    for r in t:
        if r["category"] == "Reasoning":  # case-insensitive match
            assert r["split"] in ("eval", "it1", "it2", "unused")
        else:
            assert r["split"] == "excluded", r
    assert sum(r["split"] == "excluded" for r in t) == 51
    # the kept ones get the split they would get without a filter
    unfiltered = splits(build_prompts(make_params([jsonl(tmp_path / "a.jsonl", rows)])))
    for r in t:
        if r["split"] != "excluded":
            assert unfiltered[r["prompt_id"]] == r["split"]


def test_category_filter_on_builtin():
    t = build_prompts(make_params(None, categories=["reasoning", "math"])).to_pylist()
    kept = [r for r in t if r["split"] != "excluded"]
    assert kept and all(r["category"] in ("reasoning", "math") for r in kept)
    assert all(r["category"] not in ("reasoning", "math") for r in t if r["split"] == "excluded")
