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


def choice_continuations(encode, context: str, choices: list[str]) -> tuple[list[int], list[list[int]]]:
    """The tokens each choice adds to `context`, read off the tokenization of the whole text.

    A choice's tokens alone are not the tokens that follow the context: a
    SentencePiece tokenizer encodes "A" alone as "\u2581A" (its dummy-prefix
    space) but "[[" + "A" as "[[", "A"; a BPE tokenizer may merge the last
    characters of the context with the choice. So each `context + choice` is
    tokenized whole, and split after the longest token prefix that every one
    of them shares with the context alone. Returns (shared ids, each choice's
    remaining ids); the choices are scored as continuations of the shared ids.
    """
    ctx = encode(context)
    full = [encode(context + c) for c in choices]
    n = min(common_prefix(ctx, f) for f in full)
    conts = [f[n:] for f in full]
    for c, ids in zip(choices, conts):
        if not ids:
            raise ValueError(f"choice {c!r} adds no token to the context")
    return ctx[:n], conts


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


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
        """Log-probability of each choice as the continuation of each context.

        Each context is (messages, assistant text so far). A choice's tokens
        are those it has when the context and the choice are tokenized as one
        text (`choice_continuations`), and its log-probability is the sum over
        them, over the full vocabulary (not renormalised among the choices).
        """

    def engine_identity(self) -> dict[str, Any]:
        """What, besides the requests, determines the sampled text (cache keys use it)."""
        return {"engine": type(self).__name__, "model_hash": self.model_hash}

    def close(self) -> None:  # pragma: no cover - engines with resources override
        pass


class LocalTokenizer:
    """For engines that hold the model's Hugging Face tokenizer as `self.tok` (transformers, vLLM).

    Both render and tokenize prompts this one way, so the ids the engines see
    are the same (tests/test_vllm_backend.py compares them)."""

    tok: Any

    def render(self, messages) -> str:
        """The chat template over the messages; their text never becomes a control token (`templates.defuse`)."""
        from ..templates import control_tokens, defuse_messages

        if getattr(self, "_controls", None) is None:
            self._controls = control_tokens(self.tok)
        return self.tok.apply_chat_template(defuse_messages(messages, self._controls), tokenize=False,
                                            add_generation_prompt=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of rendered text; the chat template holds the special tokens, so none are added."""
        return self.tok(text, add_special_tokens=False)["input_ids"]
