"""vLLM backend on a GPU: same prompt text as transformers, samples, forced verdicts.

Skipped without CUDA or the vllm package (pip install -e ".[gpu]").
"""

from __future__ import annotations

import pytest

from judgeloop.backends import Request, Sampling
from judgeloop.config import GenerationConfig
from judgeloop.judging import PairwiseItem, judge_items

pytestmark = [pytest.mark.gpu, pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def vllm_backend(seed_model):
    from judgeloop.backends.vllm_backend import VllmBackend

    return VllmBackend(seed_model, GenerationConfig(backend="vllm", dtype="float32"))


def test_same_prompt_text_as_transformers(seed_model, vllm_backend):
    from judgeloop.backends.transformers_backend import TransformersBackend

    hf = TransformersBackend(seed_model, GenerationConfig(device="cpu"))
    msgs = ({"role": "user", "content": "Which is larger, 3 or 5?"},)
    assert vllm_backend.render(msgs) == hf.render(msgs)


def test_n_samples_and_forced_verdicts(vllm_backend):
    out = vllm_backend.generate([Request("r", ({"role": "user", "content": "Say hi."},), Sampling(0.7, 0.9, 8, 3, 1))])
    assert len(out[0]) == 3 and all(1 <= c.n_tokens <= 8 for c in out[0])
    items = [PairwiseItem("x", "What is 2 + 2?", "4", "5")]
    judged = judge_items(items, vllm_backend, Sampling(0.7, 0.9, 8, 2, 1), "forced", seed_key="t")
    assert all(j.verdict in ("A", "B") for j in judged)
