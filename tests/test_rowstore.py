"""rowstore: rows fetched by position from Parquet row groups, shared between threads; training texts column-wise."""

import threading

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from judgeloop.curation import training_completion
from judgeloop.rowstore import PY_WHITESPACE, PairTexts, RowGroups, Rows, Slab, completions
from judgeloop.templates import judge_messages


def test_rows_from_a_file_equal_rows_from_memory(tmp_path):
    table = pa.table({"x": list(range(50)), "y": [f"t{i}" for i in range(50)]})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=7)
    positions = pa.array([0, 6, 7, 30, 49]).to_numpy()
    from_file = Rows(["y"], path=tmp_path / "t.parquet").fetch(positions)
    assert from_file.equals(Rows(["y"], table=table).fetch(positions))
    assert from_file.column("y").to_pylist() == ["t0", "t6", "t7", "t30", "t49"]


def test_completions_are_training_completion_column_wise():
    texts = ["Reasoning. [[A]]", "No verdict here \u2003\n", "x"]
    verdicts, sources = ["A", "B", None], ["parsed", "forced", "forced"]
    got = completions(pa.array(texts), pa.array(verdicts), pa.array(sources)).to_pylist()
    # a forced row without a verdict keeps its text (nothing to append)
    assert got == [training_completion(texts[0], "A", "parsed"), training_completion(texts[1], "B", "forced"), "x"]
    assert "\u2003" in PY_WHITESPACE


def test_prompts_column_wise_are_the_judge_prompts(tmp_path):
    pairs = pa.table({"pair_id": ["p0", "p1"], "instruction": ["Say 1.", "Say 2."], "response_w": ["1", "2"],
                      "response_l": ["one", "two"]})
    texts = PairTexts(pairs, Rows(["instruction", "response_w", "response_l"], table=pairs), "short")
    rows = texts.rows_of(pl.Series(["p1", "p0"]))
    slab = Slab(texts.rows, rows)
    got = texts.prompts(slab, rows, pa.array(["wl", "lw"])).to_pylist()
    assert got == [judge_messages("Say 2.", "2", "two", "short")[0]["content"],
                   judge_messages("Say 1.", "one", "1", "short")[0]["content"]]


def test_shared_row_groups_bounded_and_never_deadlock(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": list(range(200))}), path, row_group_size=10)  # 20 row groups
    groups = RowGroups(path, ["x"], ("a", "b"))
    seen, held = {"a": [], "b": []}, []
    orders = {"a": list(range(20)), "b": [g for g in range(20) if g % 3] + [0, 19, 5]}  # b skips, then goes back

    def consume(who):
        try:
            for g in orders[who]:
                seen[who].append(groups.get(g, who).column("x").to_pylist() == list(range(10 * g, 10 * g + 10)))
                held.append(len(groups.cache))
        finally:
            groups.done(who)

    threads = [threading.Thread(target=consume, args=(w,)) for w in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert all(seen["a"]) and all(seen["b"]) and len(seen["a"]) == 20 and len(seen["b"]) == len(orders["b"])
    assert max(held) <= RowGroups.WINDOW + 3 and groups.cache == {}
