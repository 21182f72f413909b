"""Generation engines behind one interface (see `base.Backend`)."""

from __future__ import annotations

from pathlib import Path

from ..config import GenerationConfig
from .base import Backend, Completion, Request, Sampling, ThroughputStats

__all__ = ["Backend", "Completion", "Request", "Sampling", "ThroughputStats", "make_backend"]


def make_backend(model_dir: str | Path, cfg: GenerationConfig) -> Backend:
    """The configured engine, wrapped in the resumable shard cache (see `sharded`)."""
    if cfg.backend == "transformers":
        from .transformers_backend import TransformersBackend

        inner: Backend = TransformersBackend(model_dir, cfg)
    elif cfg.backend == "vllm":
        from .vllm_backend import VllmBackend

        inner = VllmBackend(model_dir, cfg)
    elif cfg.backend == "openai":
        from .openai_backend import OpenAIBackend

        inner = OpenAIBackend(model_dir, cfg)
    else:  # pragma: no cover - the config's Literal rejects others first
        raise ValueError(f"generation.backend: unknown backend {cfg.backend!r}")
    from .sharded import ShardedBackend

    return ShardedBackend(inner, cfg.cache_dir, cfg.shard_size)
