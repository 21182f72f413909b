"""The dataset registry: the paths stages write, and what audit, diff and validate read from it."""

import pytest

from judgeloop import audit, diff, validation
from judgeloop.datasets import DATASETS, FILES, path
from judgeloop.methods import METHODS
from judgeloop.schemas import SCHEMAS


def test_paths_are_the_published_layout():
    assert path("pairs") == path("pairs", "it1") == "data/pairs.parquet"
    assert path("judgments", "it2") == path("likert_judgments", "it2") == "data/it2/judgments.parquet"
    assert DATASETS["eval"].pattern == "data/*/eval.parquet"
    with pytest.raises(ValueError, match="sft is per iteration"):
        path("sft")


def test_one_file_kind_per_file_and_every_schema_known():
    assert list(FILES) == ["prompts", "pairs", "rubrics", "judgments", "sft", "dpo", "eval"]
    assert len({d.file for d in FILES.values()}) == len(FILES)
    for d in DATASETS.values():
        assert d.schema in SCHEMAS and (d.variant_of is None or d.variant_of in FILES)
        assert set(d.diff_key) <= set(SCHEMAS[d.schema].names), d.kind


def test_audit_diff_and_validation_read_the_registry():
    assert audit.SOURCES == {k: d.pattern for k, d in FILES.items()}
    assert audit.PER_ITERATION == set(diff.PER_ITERATION_KINDS) == {"judgments", "sft", "dpo", "eval"}
    assert diff.default_keys("judgments", ["item_id", "sample_idx", "score"]) == ["item_id", "sample_idx"]
    assert diff.dataset_path("dpo", "it1") == "data/it1/dpo.parquet"
    assert validation.BATCHES["pairs"] == ["pairs", "pairs_ok"] and "eval" not in validation.BATCHES


def test_every_method_names_registered_kinds():
    for m in METHODS.values():
        k = m.KINDS
        for kind in (k.items, k.judgments, k.sft, k.eval, *k.validated):
            assert kind in DATASETS, (m.NAME, kind)
        assert all(kind in validation.BATCHES for kind in k.validated)
