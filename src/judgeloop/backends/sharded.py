"""Resumable generation: requests in fixed shards, each finished shard cached.

A shard's key is a hash of the engine's identity (model content hash, engine
settings that change sampled text such as batch size and dtype) and of every
request in it (the rendered prompt text, prefill and sampling parameters,
seed included). A finished shard is written atomically to the cache, so a
run killed mid-way redoes at most the shard in flight, and a rerun after a
code change that does not touch generation reads everything back. Because
each shard is generated on its own, the output is identical to an
uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..io import atomic_path
from .base import Backend, Completion, Request

log = logging.getLogger(__name__)


class ShardedBackend(Backend):
    """Wraps an engine; same interface, plus a shard cache and shard counts in `stats`."""

    def __init__(self, inner: Backend, cache_dir: str | Path | None, shard_size: int):
        super().__init__()
        self.inner = inner
        self.stats = inner.stats  # one set of throughput numbers
        self.model_name, self.model_hash = inner.model_name, inner.model_hash
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.shard_size = shard_size
        self.stats.extra.update({"shards": 0, "shards_cached": 0, "shards_generated": 0})

    def render(self, messages) -> str:
        return self.inner.render(messages)

    def choice_logprobs(self, contexts, choices):
        return self.inner.choice_logprobs(contexts, choices)

    def shard_key(self, shard: list[Request]) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self.inner.engine_identity(), sort_keys=True).encode())
        for r in shard:
            h.update(
                json.dumps(
                    [r.request_id, self.inner.render(r.messages), r.prefill, r.sampling.to_dict()], sort_keys=True
                ).encode()
            )
        return h.hexdigest()

    def generate(self, requests: list[Request], desc: str = "generate") -> list[list[Completion]]:
        shards = [requests[i : i + self.shard_size] for i in range(0, len(requests), self.shard_size)]
        out: list[list[Completion]] = []
        for idx, shard in enumerate(tqdm(shards, desc=f"{desc} (shards)", unit="shard", mininterval=2.0)):
            self.stats.extra["shards"] += 1
            path = self._path(self.shard_key(shard)) if self.cache_dir else None
            if path is not None and path.exists():
                out.extend(_load(path, shard))
                self.stats.extra["shards_cached"] += 1
                continue
            log.info("%s: shard %d/%d (%d requests)", desc, idx + 1, len(shards), len(shard))
            comps = self.inner.generate(shard, desc=f"{desc} {idx + 1}/{len(shards)}")
            if path is not None:
                _save(path, comps)
            self.stats.extra["shards_generated"] += 1
            out.extend(comps)
        if self.cache_dir:
            log.info(
                "%s: %d shards, %d from cache, %d generated",
                desc, len(shards), self.stats.extra["shards_cached"], self.stats.extra["shards_generated"],
            )
        return out

    def _path(self, key: str) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / key[:2] / f"{key}.jsonl"

    def close(self) -> None:
        self.inner.close()


def _save(path: Path, comps: list[list[Completion]]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for cs in comps:
                f.write(json.dumps([asdict(c) for c in cs], ensure_ascii=False) + "\n")


def _load(path: Path, shard: list[Request]) -> list[list[Completion]]:
    rows: list[Any] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    comps = [[Completion(**c) for c in cs] for cs in rows]
    if len(comps) != len(shard) or any(cs and cs[0].request_id != r.request_id for cs, r in zip(comps, shard)):
        raise ValueError(f"{path}: cached shard does not match its requests; delete it and rerun")
    return comps
