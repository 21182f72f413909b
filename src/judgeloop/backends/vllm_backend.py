"""vLLM offline engine (GPU extra: pip install -e ".[gpu]").

The N samples of one request go through `SamplingParams(n=N, seed=...)`, so
they share the prompt's prefill; prefix caching is on by default, since every
judge request starts with the same instructions. Prompts are rendered with
the model's own chat template exactly as the transformers backend renders
them (tests/test_backends_gpu.py checks the text is identical). Multi-GPU:
`generation.vllm.tensor_parallel_size`; multi-node: vLLM's own Ray executor
or many `vllm serve` instances behind the `openai` backend.

vLLM does not hand GPU memory back inside a process, so judgeloop runs
generation and training as separate DVC stages (separate processes).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ..config import GenerationConfig
from ..seed import model_identity
from .base import Backend, Completion, Request

log = logging.getLogger(__name__)


class VllmBackend(Backend):
    def __init__(self, model_dir: str | Path, cfg: GenerationConfig):
        super().__init__()
        try:
            from vllm import LLM
        except ImportError:
            raise RuntimeError('generation.backend: vllm needs the GPU extra: pip install -e ".[gpu]"') from None
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").exists():
            raise FileNotFoundError(f"{model_dir}: not a model directory (no config.json)")
        v = cfg.vllm
        self.cfg = cfg
        self.model_name, self.model_hash = model_identity(model_dir)
        t0 = time.time()
        self.llm = LLM(
            model=str(model_dir),
            tensor_parallel_size=v.tensor_parallel_size,
            max_model_len=v.max_model_len,
            gpu_memory_utilization=v.gpu_memory_utilization,
            enable_prefix_caching=v.enable_prefix_caching,
            enforce_eager=v.enforce_eager,
            dtype="auto" if cfg.dtype == "auto" else cfg.dtype,
            seed=0,
        )
        self.tok = self.llm.get_tokenizer()
        log.info("vllm engine for %s ready in %.1f s", model_dir, time.time() - t0)

    def engine_identity(self) -> dict[str, Any]:
        return super().engine_identity() | {"tp": self.cfg.vllm.tensor_parallel_size, "dtype": self.cfg.dtype}

    def render(self, messages) -> str:
        return self.tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def generate(self, requests: list[Request], desc: str = "generate") -> list[list[Completion]]:
        from vllm import SamplingParams

        prompts = [self.render(r.messages) + r.prefill for r in requests]
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
            self.stats.tokens_in += n_prompt
            self.stats.tokens_out += sum(c.n_tokens for c in comps)
            result.append(comps)
        return result

    def choice_logprobs(self, contexts, choices: list[str]) -> list[dict[str, float]]:
        """Top-k next-token log-probs; a choice outside the top 20 gets -inf."""
        from vllm import SamplingParams

        ids = {}
        for c in choices:
            enc = self.tok.encode(c, add_special_tokens=False)
            if len(enc) != 1:
                raise ValueError(f"choice {c!r} is not a single token for this tokenizer ({enc})")
            ids[c] = enc[0]
        prompts = [self.render(messages) + assistant for messages, assistant in contexts]
        outs = self.llm.generate(prompts, SamplingParams(max_tokens=1, temperature=0.0, logprobs=20), use_tqdm=False)
        result = []
        for o in outs:
            top = o.outputs[0].logprobs[0] if o.outputs[0].logprobs else {}
            result.append({c: (top[i].logprob if i in top else float("-inf")) for c, i in ids.items()})
            self.stats.tokens_in += len(o.prompt_token_ids or [])
        return result
