"""Shared fixtures: the real seed model, materialised once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    """GPU- and vLLM-only tests skip themselves where those are absent."""
    import importlib.util

    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    has_vllm = importlib.util.find_spec("vllm") is not None
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))
        if "vllm" in item.keywords and not has_vllm:
            item.add_marker(pytest.mark.skip(reason="needs the vllm package (pip install -e .[gpu])"))


@pytest.fixture(scope="session")
def seed_model(tmp_path_factory) -> Path:
    """models/it0 from the packaged SmolLM2-135M GGUF (~25 s on 2 cores)."""
    from judgeloop.seed import materialise_seed

    out = tmp_path_factory.mktemp("models") / "it0"
    materialise_seed("packaged:smollm2-135m", None, out)
    return out


@pytest.fixture
def hf_offline(monkeypatch, tmp_path):
    """No network, and a datasets cache inside tmp_path."""
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # both libraries read the environment once, at import
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache", raising=False)
    return datasets
