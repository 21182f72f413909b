"""The shape of every dataset judgeloop writes, defined once.

Writers build tables with `to_table(KIND, rows)`, the validation stage derives
its expectations from the same column lists, and the audit views read them.
Every row carries what made it (model, hash, sampling parameters, seed) so a
SQL query alone can audit it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

s, i64, f64, b = pa.string(), pa.int64(), pa.float64(), pa.bool_()

PROMPTS = pa.schema(
    [
        ("prompt_id", s),
        ("instruction", s),
        ("source", s),
        ("source_row", i64),  # 0-based row in the source file
        ("category", s),
        ("category_source", s),  # given | llm | none
        ("category_parse_status", s),  # ok | unparsed | skipped
        ("split", s),  # eval | <iteration name> | unused
        ("split_u", f64),  # the hash-derived uniform number the split came from
        ("split_seed", i64),
    ]
)

PAIRS = pa.schema(
    [
        ("pair_id", s),
        ("prompt_id", s),
        ("split", s),
        ("category", s),
        ("instruction", s),
        ("response_w", s),
        ("modified_instruction", s),
        ("response_l", s),
        ("gen_status", s),  # ok | unparsed | empty_w | empty_l | same_as_w | truncated_w | ...
        ("generator", s),  # model name/path
        ("generator_hash", s),
        ("sampling", s),  # JSON of the sampling parameters
        ("seed", i64),
        ("n_tokens_w", i64),
        ("n_tokens_modify", i64),
        ("n_tokens_l", i64),
        ("finish_reason_w", s),
        ("finish_reason_modify", s),
        ("finish_reason_l", s),
        ("raw_modify", s),  # the generator's full tagged output, for audit
    ]
)

JUDGMENTS = pa.schema(
    [
        ("judgment_id", s),
        ("pair_id", s),
        ("iteration", s),
        ("judge_model", s),
        ("judge_hash", s),
        ("order", s),  # wl: y_w shown as A; lw: y_l shown as A
        ("sample_idx", i64),
        ("seed", i64),
        ("sampling", s),
        ("text", s),
        ("verdict", s),  # A | B | null
        ("parse_status", s),  # ok | none | both | truncated
        ("verdict_source", s),  # parsed | forced | null
        ("p_a", f64),  # forced fallback: p(A) restricted to {A, B}
        ("p_b", f64),
        ("prior_a", f64),  # judging.forced_calibration: the prior P(A) a forced verdict was divided by; else null
        ("correct", b),  # null when there is no verdict
        ("n_tokens", i64),
        ("finish_reason", s),
        ("len_a", i64),  # characters of the answer shown as A / B (length-bias audits)
        ("len_b", i64),
    ]
)

SFT = pa.schema(
    [
        ("example_id", s),
        ("pair_id", s),
        ("iteration", s),
        ("order", s),
        ("judgment_id", s),
        ("verdict", s),
        ("verdict_source", s),
        ("prompt", s),  # the judge prompt (user message)
        ("completion", s),  # the judgment the next model learns to write
    ]
)

DPO = pa.schema(
    [
        ("example_id", s),
        ("pair_id", s),
        ("iteration", s),
        ("order", s),
        ("prompt", s),  # the judge prompt (user message)
        ("chosen", s),  # a correct judgment (with the canonical verdict line if forced)
        ("rejected", s),  # a wrong, tied or unparsed judgment of the same pair and order
        ("chosen_judgment_id", s),
        ("rejected_judgment_id", s),
        ("chosen_verdict", s),
        ("rejected_verdict", s),  # null: the rejected judgment had no verdict
        ("rejected_reason", s),  # wrong | unparsed
    ]
)

EVAL = pa.schema(
    [
        ("dataset", s),
        ("subset", s),
        ("example_id", s),
        ("judge", s),
        ("judge_hash", s),
        ("order", s),  # wl: the better answer shown as A; lw: shown as B; chosen_at_X (best of N); rating (Ties)
        ("text", s),
        ("verdict", s),
        ("parse_status", s),
        ("verdict_source", s),
        ("p_a", f64),
        ("p_b", f64),
        ("prior_a", f64),
        ("score", f64),  # 1 correct, 0 wrong, 0.5 no verdict (best of 4: 0.25); null: a Ties rating or knockout match
        ("n_tokens", i64),
        ("finish_reason", s),
    ]
)

# -- Likert (Self-Rationalization) --------------------------------------------

RUBRICS = pa.schema(
    [
        ("item_id", s),
        ("instruction", s),
        ("response", s),
        ("reference_answer", s),
        ("criteria", s),
        *[(f"score{k}_description", s) for k in range(1, 6)],
        ("gold_score", i64),
        ("capability", s),
        ("source", s),
        ("split", s),  # eval | <iteration name> | unused
    ]
)

LIKERT_JUDGMENTS = pa.schema(
    [
        ("judgment_id", s),
        ("item_id", s),
        ("iteration", s),
        ("judge_model", s),
        ("judge_hash", s),
        ("sample_idx", i64),
        ("seed", i64),
        ("sampling", s),
        ("text", s),
        ("score", i64),  # 1..5 | null
        ("parse_status", s),  # ok | none | truncated | multiple | out_of_range
        ("score_source", s),  # parsed | forced | null
        ("expected_score", f64),  # forced: sum of s * p(s)
        ("gold_score", i64),
        ("n_tokens", i64),
        ("finish_reason", s),
    ]
)

LIKERT_EVAL = pa.schema(
    [
        ("dataset", s),
        ("example_id", s),
        ("judge", s),
        ("judge_hash", s),
        ("text", s),
        ("score", i64),
        ("gold_score", i64),
        ("parse_status", s),
        ("score_source", s),
        ("expected_score", f64),
        ("n_tokens", i64),
        ("finish_reason", s),
    ]
)

# A labelled evaluation set as read from its file (evaluation.sets), one row per
# example: the `evalset` stage writes it, so editing the file re-runs evaluation.
EVALSET = pa.schema(
    [
        ("dataset", s),
        ("item_id", s),
        ("instruction", s),
        ("better", s),  # pairwise formats (llmbar, pairwise, rewardbench, judgebench); else null
        ("worse", s),
        ("chosen", pa.list_(s)),  # formats with several completions (rewardbench2, rmbench); else null
        ("rejected", pa.list_(s)),
        ("subset", s),
        ("source", s),  # the file or directory it was read from
        ("source_format", s),  # llmbar | pairwise | rewardbench | rewardbench2 | judgebench | rmbench
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "prompts": PROMPTS,
    "pairs": PAIRS,
    "judgments": JUDGMENTS,
    "sft": SFT,
    "dpo": DPO,
    "eval": EVAL,
    "rubrics": RUBRICS,
    "likert_judgments": LIKERT_JUDGMENTS,
    "likert_eval": LIKERT_EVAL,
    "evalset": EVALSET,
}

# The column that identifies a row of each dataset kind.
KEYS = {
    "prompts": "prompt_id",
    "pairs": "pair_id",
    "judgments": "judgment_id",
    "sft": "example_id",
    "dpo": "example_id",
    "eval": "example_id",
    "rubrics": "item_id",
    "likert_judgments": "judgment_id",
    "likert_eval": "example_id",
    "evalset": "item_id",
}


def to_table(kind: str, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Build a table of `kind` from dict rows; a missing or extra field is an error."""
    schema = SCHEMAS[kind]
    names = schema.names
    cols: dict[str, list[Any]] = {n: [] for n in names}
    for idx, row in enumerate(rows):
        missing = [n for n in names if n not in row]
        extra = [k for k in row if k not in cols]
        if missing or extra:
            raise ValueError(f"{kind} row {idx}: missing fields {missing}, unexpected fields {extra}")
        for n in names:
            cols[n].append(row[n])
    return pa.table(cols, schema=schema)


def check_table(kind: str, table: pa.Table, where: str) -> None:
    """Fail with a clear message when a file does not have the columns of `kind`."""
    want = SCHEMAS[kind]
    missing = [f.name for f in want if f.name not in table.column_names]
    if missing:
        raise ValueError(f"{where}: not a {kind} table, missing columns {missing}")
    for f in want:
        got = table.schema.field(f.name).type
        if not _compatible(got, f.type):
            raise ValueError(f"{where}: column {f.name!r} is {got}, a {kind} table has {f.type} there")


def _compatible(got: pa.DataType, want: pa.DataType) -> bool:
    """Same type, or the same kind (any string, integer or float width); an all-null column fits anything."""
    if got == want or pa.types.is_null(got):
        return True
    strings = (pa.types.is_string, pa.types.is_large_string, getattr(pa.types, "is_string_view", lambda t: False))
    if any(k(got) for k in strings) and any(k(want) for k in strings):
        return True
    if pa.types.is_dictionary(got):
        return _compatible(got.value_type, want)
    for family in (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean):
        if family(got) and family(want):
            return True
    if pa.types.is_list(got) or pa.types.is_large_list(got):
        return (pa.types.is_list(want) or pa.types.is_large_list(want)) and _compatible(got.value_type, want.value_type)
    return False
