"""Generation engines behind one interface (see `base.Backend`)."""

from __future__ import annotations

from pathlib import Path

from ..config import GenerationConfig
from .base import Backend, Completion, Request, Sampling, ThroughputStats

__all__ = ["Backend", "Completion", "Request", "Sampling", "ThroughputStats", "make_backend"]


def make_backend(model_dir: str | Path, cfg: GenerationConfig) -> Backend:
    if cfg.backend == "transformers":
        from .transformers_backend import TransformersBackend

        return TransformersBackend(model_dir, cfg)
    raise ValueError(f"generation.backend: unknown backend {cfg.backend!r}")  # pragma: no cover
