"""The generation interface every engine implements.

A stage builds `Request`s (chat messages + sampling parameters, with `n`
samples per request) and gets back, per request, `n` `Completion`s with token
counts and finish reasons. `choice_logprobs` scores a fixed continuation's
next token, which the forced-verdict fallback uses. Engines differ only
behind this interface; the stages never import an engine directly.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_p: float = 0.9
    max_tokens: int = 128
    n: int = 1
    seed: int = 0
    stop: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass(frozen=True)
class Request:
    request_id: str
    messages: tuple[dict[str, str], ...]
    sampling: Sampling
    # Text the assistant turn starts with (kept out of the returned completion).
    prefill: str = ""


@dataclass
class Completion:
    request_id: str
    sample_idx: int
    text: str
    n_prompt_tokens: int
    n_tokens: int
    finish_reason: str  # stop | length


@dataclass
class ThroughputStats:
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        tps = self.tokens_out / self.seconds if self.seconds else 0.0
        return {
            "requests": self.requests,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "seconds": round(self.seconds, 3),
            "tokens_per_s": round(tps, 2),
            **self.extra,
        }


class Backend(abc.ABC):
    """A loaded model that generates text for chat requests."""

    model_name: str
    model_hash: str

    def __init__(self) -> None:
        self.stats = ThroughputStats()

    @abc.abstractmethod
    def render(self, messages: tuple[dict[str, str], ...] | list[dict[str, str]]) -> str:
        """The exact prompt text the model sees (chat template + generation prompt)."""

    @abc.abstractmethod
    def generate(self, requests: list[Request], desc: str = "generate") -> list[list[Completion]]:
        """For each request, its `n` completions in sample order."""

    @abc.abstractmethod
    def choice_logprobs(
        self, contexts: list[tuple[tuple[dict[str, str], ...], str]], choices: list[str]
    ) -> list[dict[str, float]]:
        """Log-probabilities of each single-token choice as the next token.

        Each context is (messages, assistant text so far); the returned
        log-probabilities are over the full vocabulary (not renormalised).
        """

    def engine_identity(self) -> dict[str, Any]:
        """What, besides the requests, determines the sampled text (cache keys use it)."""
        return {"engine": type(self).__name__, "model_hash": self.model_hash}

    def close(self) -> None:  # pragma: no cover - engines with resources override
        pass
