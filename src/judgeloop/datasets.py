"""Every dataset the pipeline writes, defined once: its file, schema, keys, and how it is validated.

The stages write to `path(kind, iteration)`; audit builds a view per file
(`FILES`), diff compares on `diff_key`, validate runs the suites `validation`
names. A Likert run writes other columns under the same file names
(`variant_of`): those kinds share the file, not the schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from .schemas import KEYS


@dataclass(frozen=True)
class Dataset:
    kind: str
    file: str  # data/FILE.parquet, or data/<iteration>/FILE.parquet when per_iteration
    per_iteration: bool
    schema: str  # the schemas.SCHEMAS entry of its columns
    diff_key: tuple[str, ...]  # a row's key across iterations or revisions (ids embed the iteration)
    validation: tuple[str, ...] = ()  # the suites validate runs on it (validation.py); none: not validated
    variant_of: str | None = None  # the kind whose file it is written as (a Likert run's judgments, sft)

    @property
    def key(self) -> str:
        """The column that identifies a row."""
        return KEYS[self.schema]

    @property
    def pattern(self) -> str:
        """Its files, relative to the project root (a glob over iterations when per iteration)."""
        return self.path("*")

    def path(self, iteration: str | None = None) -> str:
        """Its file relative to the project root (`iteration` is ignored for a dataset of one file)."""
        if not self.per_iteration:
            return f"data/{self.file}.parquet"
        if not iteration:
            raise ValueError(f"{self.kind} is per iteration: name one")
        return f"data/{iteration}/{self.file}.parquet"


DATASETS: dict[str, Dataset] = {d.kind: d for d in (
    Dataset("prompts", "prompts", False, "prompts", ("prompt_id",)),
    Dataset("pairs", "pairs", False, "pairs", ("pair_id",), ("pairs", "pairs_ok")),  # pairs_ok: its gen_status ok rows
    Dataset("rubrics", "rubrics", False, "rubrics", ("item_id",), ("rubrics",)),
    Dataset("judgments", "judgments", True, "judgments", ("pair_id", "order", "sample_idx"), ("judgments",)),
    Dataset("sft", "sft", True, "sft", ("pair_id", "order"), ("sft",)),
    Dataset("dpo", "dpo", True, "dpo", ("pair_id", "order"), ("dpo",)),
    Dataset("eval", "eval", True, "eval", ("example_id",)),
    Dataset("likert_judgments", "judgments", True, "likert_judgments", ("item_id", "sample_idx"), ("likert_judgments",),
            variant_of="judgments"),
    Dataset("likert_sft", "sft", True, "sft", ("pair_id", "order"), ("likert_sft",), variant_of="sft"),
    Dataset("likert_eval", "eval", True, "likert_eval", ("example_id",), variant_of="eval"),
)}

@dataclass(frozen=True)
class MethodKinds:
    """The dataset kinds a judging method reads and writes (methods/)."""

    items: str  # what it judges: data/pairs.parquet, data/rubrics.parquet
    judgments: str
    sft: str
    eval: str

    @property
    def validated(self) -> tuple[str, ...]:
        """What the validate stage checks after curation."""
        return (self.items, self.judgments, self.sft, "dpo")


#: one per file name: the kinds audit makes views of and diff compares (a variant is read as the kind it shares a file with)
FILES: dict[str, Dataset] = {k: d for k, d in DATASETS.items() if d.variant_of is None}


def path(kind: str, iteration: str | None = None) -> str:
    return DATASETS[kind].path(iteration)
