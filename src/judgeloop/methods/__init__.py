"""Judging methods, one module each, all with the same shape; `params.method` picks one (`method_of`).

A method module names the dataset kinds it reads and writes (KINDS, a
datasets.MethodKinds), the id `leaked` returns (LEAK_ID) and what
metrics/<judge>/eval.json holds (METRICS, HEADLINE_SET), and has
- judge(params, it, items, backend) -> (judgments table, counts for stats)
- curate(params, it, judgments, items, sft, dpo, backend) -> funnel (writes the SFT and DPO files)
- evaluate(params, name, items, evalsets, backend) -> (eval table, {set: summary})
- leaked(items, judgments) -> the ids judged for training that are in the eval split.
A new method is one module here, one entry in METHODS and its params block.
"""

from __future__ import annotations

from types import ModuleType

from . import likert, pairwise

METHODS: dict[str, ModuleType] = {m.NAME: m for m in (pairwise, likert)}


def method_of(name: str) -> ModuleType:
    if name not in METHODS:
        raise ValueError(f"method {name!r}: expected one of {sorted(METHODS)}")
    return METHODS[name]
