"""A scripted engine for fast tests of judging and of the stage bodies: canned completions and next-token logprobs."""

from __future__ import annotations

from collections.abc import Callable

from judgeloop.backends import Completion
from judgeloop.backends.base import ThroughputStats


class ScriptedBackend:
    """Completions from `texts` (sample i gets texts[i], cycling) or from `rule(prompt, sample_idx)`;
    `choice_logprobs` gives every context `logprobs` (default: the first choice likeliest) and records the contexts."""

    model_name, model_hash = "scripted", "0"

    def __init__(self, texts: list[str] | None = None, rule: Callable[[str, int], str] | None = None,
                 logprobs: dict[str, float] | None = None):
        self.texts, self.rule, self.logprobs = texts, rule, logprobs
        self.forced_contexts: list = []
        self.stats = ThroughputStats()

    def _text(self, prompt: str, i: int) -> str:
        return self.rule(prompt, i) if self.rule else self.texts[i % len(self.texts)]

    def generate(self, requests, desc=""):
        self.stats.requests += len(requests)
        return [[Completion(r.request_id, i, self._text(r.messages[-1]["content"], i), 5, 3, "stop")
                 for i in range(r.sampling.n)] for r in requests]

    def choice_logprobs(self, contexts, choices):
        self.forced_contexts += contexts
        lp = self.logprobs or {c: -0.1 if k == 0 else -2.3 for k, c in enumerate(choices)}
        return [dict(lp) for _ in contexts]

    def close(self):
        pass
