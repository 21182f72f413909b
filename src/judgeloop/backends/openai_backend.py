"""Any OpenAI-compatible HTTP server (vllm serve, SGLang, TGI, llama.cpp's llama-server, hosted APIs).

Two modes, chosen by `generation.openai.tokenizer`:

* `completions` (a tokenizer is set): prompts are rendered here with
  `AutoTokenizer.apply_chat_template(..., add_generation_prompt=True)`, the
  same text the transformers backend feeds its model, and sent to
  `POST {base_url}/completions` as `prompt = rendered + prefill`.
* `chat` (no tokenizer): the messages go to `POST {base_url}/chat/completions`
  and the server applies its own chat template. A prefill is sent as a final
  assistant message with the extra body fields `continue_final_message: true,
  add_generation_prompt: false`, which vLLM and llama.cpp understand (the
  model continues that message instead of starting a new turn). Hosted APIs
  that reject unknown fields cannot take prefills in this mode. `render`
  cannot know the server's template here; it returns a canonical JSON form
  of the messages, which is what the shard cache keys on.

Requests run concurrently on one asyncio loop per call (`max_concurrency` in
flight), spread round-robin over `base_urls`. A failed attempt (HTTP 429 or
5xx, a connection error, a timeout) is retried on the next endpoint after an
exponential backoff with full jitter (`backoff_s * 2**attempt`, uniformly
scaled); other 4xx responses fail at once with the server's message. After
`max_retries` retries the call raises `RuntimeError` naming the endpoint URL
and the last error. A local protocol error (a header httpx refuses to send)
cannot succeed on retry and fails at once. The API key (read from
`$api_key_env`) is only ever put in the Authorization header; credentials in
a base URL (`user:password@`, query values) are kept in the URL that is
called. Every message, log line and identity redacts all of them, in every
form a message could print (raw, escaped, URL-encoded): `secret_forms`.

Semantics kept identical to the transformers backend:

* a completion's text includes the stop string that ended it. OpenAI-style
  servers strip it; it is restored from vLLM's `stop_reason`, SGLang's
  `matched_stop` or, for llama.cpp, `__verbose.stopping_word` (requested with
  `verbose: true`). A server that says none of these (hosted APIs) returns
  the text without the stop string.
* sampling is temperature + top-p only, as in the transformers backend.
  llama.cpp applies top-k 40 and min-p 0.05 unless told otherwise, so it is
  sent `top_k: 0, min_p: 0`.
* `n` samples per request. Servers that return fewer choices than `n` (some
  ignore `n`) get `n` separate requests with seeds `seed + i` instead.
  llama.cpp seeds its i-th choice with `seed + i` itself, so both give the
  same samples. Its `usage` covers only the first choice, and only the first
  choice says which stop string ended it, so judgeloop asks llama.cpp for
  the sampled token's log-probability (`logprobs: 1`) and counts each
  choice's tokens from that list; requests with stop strings and n > 1 go
  to llama.cpp as n separate requests.
* `n_tokens` is the number of generated tokens: the server's
  `usage.completion_tokens` for one choice, the per-choice log-probability
  list where the server gives one, and otherwise the estimate of
  `_split_usage` (usage is per response, not per choice).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import math
import os
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

from ..config import GenerationConfig
from ..seed import model_identity
from .base import Backend, Completion, Request

log = logging.getLogger(__name__)

T = TypeVar("T")

_SEED_MASK = 0xFFFFFFFF  # llama.cpp takes uint32 seeds
_sleep = asyncio.sleep  # the backoff wait (tests replace it)


class OpenAIBackend(Backend):
    def __init__(self, model_dir: str | Path | None, cfg: GenerationConfig):
        super().__init__()
        try:
            import httpx  # noqa: F401
        except ImportError as e:  # pragma: no cover - httpx is a dependency
            raise ImportError("generation.backend=openai needs the httpx package (pip install httpx)") from e
        oc = cfg.openai
        if not oc.base_urls:
            raise ValueError("generation.openai.base_urls is empty")
        self.cfg = cfg
        self.ocfg = oc
        self.base_urls = [u.rstrip("/") for u in oc.base_urls]
        self._api_key = _read_api_key(oc.api_key_env)
        self._secrets = sorted({f for sec in [self._api_key or "", *(x for u in self.base_urls for x in url_secrets(u))]
                                for f in secret_forms(sec)}, key=len, reverse=True)
        _HTTP_LOG_REDACTION.add(self._secrets)  # httpx logs the URLs it calls
        self.mode = "completions" if oc.tokenizer else "chat"
        self.tok = None
        if oc.tokenizer:
            from transformers import AutoTokenizer

            self.tok = AutoTokenizer.from_pretrained(oc.tokenizer)
        self._rr = itertools.count()  # round-robin over base_urls
        self._jitter = random.Random()  # private: never touches the global RNG
        # Counters (also in stats.extra): HTTP attempts made, and how many were retries.
        self.attempts = 0
        self.retries = 0
        # Fall back to one request per sample (set when a server returns fewer choices than n).
        self._split_n = False
        self.server_kind = "unknown"  # llamacpp | vllm | sglang | <owned_by> | unknown
        self.stats.extra.update({"http_requests": 0, "http_retries": 0})

        models = self._list_models(required=oc.model is None)
        if oc.model:
            self.model_name = oc.model
        else:
            if not models or not models[0].get("id"):
                raise RuntimeError(self._redact(f"GET {self.base_urls[0]}/models: the server lists no models; "
                                                "set generation.openai.model"))
            self.model_name = str(models[0]["id"])
        owned = next((m.get("owned_by") for m in models if m.get("id") == self.model_name), None)
        if owned is None and models:
            owned = models[0].get("owned_by")
        if isinstance(owned, str) and owned:
            self.server_kind = owned.lower()

        model_hash = "unknown"
        if model_dir is not None and Path(model_dir).is_dir():
            _, model_hash = model_identity(model_dir)
        if model_hash == "unknown":
            # No local weights to hash: identify the model by where it is served and its name.
            ident = json.dumps({"base_urls": sorted(self._redact(u) for u in self.base_urls), "model": self.model_name},
                               sort_keys=True)
            model_hash = "server:" + hashlib.sha256(ident.encode()).hexdigest()[:16]
        self.model_hash = model_hash
        log.info(
            "openai backend: model %s (%s server) at %s, %s mode",
            self.model_name, self.server_kind, self._redact(", ".join(self.base_urls)), self.mode,
        )

    def engine_identity(self) -> dict[str, Any]:
        return {
            "engine": "openai",
            "model": self.model_name,
            "base_urls": sorted(self._redact(u) for u in self.base_urls),
            "mode": self.mode,
            # a retrained model served under the same name must not hit old cache shards
            "model_hash": self.model_hash,
        }

    # -- prompts -------------------------------------------------------------

    def render(self, messages) -> str:
        if self.tok is not None:
            return self.tok.apply_chat_template(self._defused(messages), tokenize=False, add_generation_prompt=True)
        # chat mode: the server renders; this canonical form stands in for its prompt text
        return "chat:" + json.dumps(list(messages), ensure_ascii=False, sort_keys=True)

    def _defused(self, messages) -> list[dict[str, str]]:
        """Message texts that cannot become control tokens: the generic spellings, and the tokenizer's own when set.
        The server tokenises what it is sent with its special tokens live, so this is the only place to do it."""
        from ..templates import control_tokens, defuse_messages

        if getattr(self, "_controls", None) is None:
            self._controls = control_tokens(self.tok) if self.tok is not None else frozenset()
        return defuse_messages(messages, self._controls)

    # -- generation ----------------------------------------------------------

    def generate(self, requests: list[Request], desc: str = "generate") -> list[list[Completion]]:
        if not requests:
            return []
        t0 = time.time()
        try:
            out = self._run(lambda: self._generate_all(requests, desc))
        finally:
            self.stats.seconds += time.time() - t0
        self.stats.requests += len(requests)
        return out

    async def _generate_all(self, requests: list[Request], desc: str) -> list[list[Completion]]:
        bar = tqdm(total=sum(r.sampling.n for r in requests), desc=desc, unit="seq", mininterval=2.0)
        try:
            async with self._client() as client:
                sem = asyncio.Semaphore(self.ocfg.max_concurrency)
                return await _gather_or_cancel([self._generate_one(client, sem, r, bar) for r in requests])
        finally:
            bar.close()

    async def _generate_one(self, client, sem, r: Request, bar) -> list[Completion]:
        try:
            return await self._generate_one_unnamed(client, sem, r, bar)
        except RuntimeError as e:  # which request failed, besides the endpoint and the error
            raise RuntimeError(f"request {r.request_id!r}: {e}") from None

    async def _generate_one_unnamed(self, client, sem, r: Request, bar) -> list[Completion]:
        s = r.sampling
        path = self._path()
        # llama.cpp reports the matched stop string for its first choice only
        if s.n == 1 or not (self._split_n or (self.server_kind == "llamacpp" and s.stop)):
            data = await self._post(client, sem, path, self._gen_body(r, s.n, s.seed), check=_check_generation)
            choices = _choices(data)
            if "timings" in data and self.server_kind != "llamacpp":  # only llama.cpp adds timings
                self.server_kind = "llamacpp"
            if len(choices) >= s.n and (s.n == 1 or self._choices_usable(s, choices)):
                comps = self._to_completions(r, data, choices[: s.n], first_idx=0)
                bar.update(s.n)
                return comps
            if s.n == 1:
                raise RuntimeError(f"{path}: the server returned no choices for request {r.request_id}")
            if self.server_kind == "llamacpp":
                pass  # no per-choice token counts or stop strings: per-sample requests below
            elif not self._split_n:
                log.info(
                    "openai backend: the server returned %d choice(s) for n=%d; "
                    "sending one request per sample from now on", len(choices), s.n,
                )
                self._split_n = True
        # one request per sample; sample i uses seed + i
        datas = await _gather_or_cancel(
            [self._post(client, sem, path, self._gen_body(r, 1, s.seed + i), check=_check_generation) for i in range(s.n)]
        )
        comps = []
        for i, data in enumerate(datas):
            choices = _choices(data)
            if not choices:
                raise RuntimeError(f"{path}: the server returned no choices for request {r.request_id}")
            comps.extend(self._to_completions(r, data, choices[:1], first_idx=i))
        bar.update(s.n)
        return comps

    def _choices_usable(self, s, choices: list[dict]) -> bool:
        """Several choices of one response can be taken as they are: not from llama.cpp, or from llama.cpp
        with per-choice token counts (its log-probability lists) and no stop string to restore."""
        if self.server_kind != "llamacpp":
            return True
        return not s.stop and all(_logprob_count(c) is not None for c in choices)

    def _path(self) -> str:
        return "/completions" if self.mode == "completions" else "/chat/completions"

    def _gen_body(self, r: Request, n: int, seed: int) -> dict[str, Any]:
        s = r.sampling
        body: dict[str, Any] = {
            "model": self.model_name,
            "max_tokens": s.max_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "n": n,
            "seed": seed & _SEED_MASK,
        }
        if self.server_kind == "llamacpp":
            body.update(top_k=0, min_p=0.0)  # its defaults (40, 0.05) would truncate the distribution
            if n > 1:  # per-choice token counts come from the sampled tokens' log-probabilities
                if self.mode == "chat":
                    body.update(logprobs=True, top_logprobs=1)
                else:
                    body["logprobs"] = 1
        if s.stop:
            body["stop"] = list(s.stop)
            if self.server_kind == "llamacpp":
                body["verbose"] = True  # its OpenAI format omits which stop string matched
        if self.mode == "completions":
            body["prompt"] = self.render(r.messages) + r.prefill
            self._completions_extras(body)
        else:
            body["messages"] = self._chat_messages(r.messages, r.prefill)
            if r.prefill:
                body.update(continue_final_message=True, add_generation_prompt=False)
        return body

    def _completions_extras(self, body: dict[str, Any]) -> None:
        # The rendered template already holds any BOS token; vLLM would add another.
        if self.server_kind == "vllm":
            body["add_special_tokens"] = False

    def _chat_messages(self, messages, assistant: str) -> list[dict[str, str]]:
        msgs = self._defused(messages)
        if assistant:
            msgs.append({"role": "assistant", "content": assistant})
        return msgs

    def _to_completions(self, r: Request, data: dict, choices: list[dict], first_idx: int) -> list[Completion]:
        s = r.sampling
        usage = data.get("usage") or {}
        if "completion_tokens" not in usage:
            raise RuntimeError(f"the server returned no usage.completion_tokens for request {r.request_id}")
        n_prompt = int(usage.get("prompt_tokens") or 0)
        finishes = ["length" if c.get("finish_reason") == "length" else "stop" for c in choices]
        listed = [_logprob_count(c) for c in choices]
        if len(choices) > 1 and None not in listed:
            counts: list[int] = listed  # type: ignore[assignment]
        else:
            counts = _split_usage(int(usage["completion_tokens"]), finishes, s.max_tokens)
        out = []
        for j, (c, finish, n_tok) in enumerate(zip(choices, finishes, counts)):
            text = _choice_text(c)
            if finish == "stop" and s.stop:
                hit = _matched_stop(c, data, s.stop)
                if hit and not text.endswith(hit):
                    text += hit
            out.append(Completion(r.request_id, first_idx + j, text, n_prompt, n_tok, finish))
        self.stats.tokens_in += n_prompt
        self.stats.tokens_out += sum(counts)
        return out

    # -- scoring -------------------------------------------------------------

    def choice_logprobs(self, contexts, choices: list[str]) -> list[dict[str, float]]:
        """Next-token log-probabilities of each choice, from the server's top-k list.

        Tokens match a choice after stripping whitespace ("A" and " A" both
        count for "A"; several matches are summed in probability). A choice
        not among the `logprobs_top_k` most likely tokens gets `float("-inf")`:
        the server does not report its probability, and it is below every
        listed one.
        """
        if not contexts:
            return []
        t0 = time.time()
        try:
            return self._run(lambda: self._logprobs_all(contexts, list(choices)))
        finally:
            self.stats.seconds += time.time() - t0

    async def _logprobs_all(self, contexts, choices: list[str]) -> list[dict[str, float]]:
        async with self._client() as client:
            sem = asyncio.Semaphore(self.ocfg.max_concurrency)
            return await _gather_or_cancel([self._logprobs_one(client, sem, m, a, choices) for m, a in contexts])

    async def _logprobs_one(self, client, sem, messages, assistant: str, choices: list[str]) -> dict[str, float]:
        k = self.ocfg.logprobs_top_k
        body: dict[str, Any] = {"model": self.model_name, "max_tokens": 1, "temperature": 0.0, "seed": 0}
        if self.mode == "completions":
            body.update(prompt=self.render(messages) + assistant, logprobs=k)
            self._completions_extras(body)
        else:
            body.update(
                messages=self._chat_messages(messages, assistant),
                logprobs=True,
                top_logprobs=k,
                continue_final_message=True,
                add_generation_prompt=False,
            )
        data = await self._post(client, sem, self._path(), body, check=_check_logprobs)
        chs = _choices(data)
        if not chs:
            raise RuntimeError(f"{self._path()}: the server returned no choices for a log-probability request")
        top = _top_logprobs(chs[0])
        self.stats.tokens_in += int((data.get("usage") or {}).get("prompt_tokens") or 0)
        out: dict[str, float] = {}
        for ch in choices:
            vals = [lp for tok, lp in top.items() if tok.strip() == ch]
            out[ch] = _logsumexp(vals) if vals else float("-inf")
        return out

    # -- HTTP ----------------------------------------------------------------

    def _client(self):
        import httpx

        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        n = self.ocfg.max_concurrency
        return httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(self.ocfg.timeout_s),
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
            trust_env=False,  # no proxies from the environment: traffic goes to base_urls only
        )

    async def _post(self, client, sem: asyncio.Semaphore, path: str, body: dict[str, Any],
                    check: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        async with sem:
            return await self._call(client, "POST", path, body, self.ocfg.max_retries, check)

    async def _call(self, client, method: str, path: str, body: dict[str, Any] | None, max_retries: int,
                    check: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """One API call with retries; `check` raises MalformedResponse for a 2xx body of the wrong shape.

        A malformed body is not retried: a server that answers with garbage once
        is broken, and the error names it.
        """
        import httpx

        start = next(self._rr)
        url, last_err = "", ""
        for attempt in range(max_retries + 1):
            url = self.base_urls[(start + attempt) % len(self.base_urls)] + path
            self.attempts += 1
            self.stats.extra["http_requests"] += 1
            retry_after = 0.0
            try:
                resp = await client.request(method, url, json=body)
            except httpx.LocalProtocolError as e:  # a request httpx will not send (a bad header): the same every time
                raise RuntimeError(self._redact(f"{method} {url}: {type(e).__name__}: {e}".rstrip(": "))) from None
            except httpx.TransportError as e:  # connection refused/reset, timeouts, protocol errors
                last_err = self._redact(f"{type(e).__name__}: {e}".rstrip(": "))
            else:
                if resp.status_code < 400:
                    try:
                        data = resp.json()
                    except ValueError:
                        last_err = f"HTTP {resp.status_code}: the response is not JSON"
                    else:
                        if isinstance(data, dict):
                            if check is not None:
                                try:
                                    check(data)
                                except MalformedResponse as e:
                                    raise RuntimeError(self._redact(f"{method} {url}: malformed response: {e}")) from None
                            return data
                        last_err = f"HTTP {resp.status_code}: the response is not a JSON object"
                else:
                    msg = self._redact(_error_message(resp))
                    if resp.status_code != 429 and resp.status_code < 500:
                        raise RuntimeError(self._redact(f"{method} {url}: HTTP {resp.status_code}: {msg}"))
                    last_err = f"HTTP {resp.status_code}: {msg}"
                    retry_after = _retry_after(resp)
            if attempt < max_retries:
                delay = max(self._jitter.uniform(0.0, self.ocfg.backoff_s * 2**attempt), retry_after)
                self.retries += 1
                self.stats.extra["http_retries"] += 1
                log.warning(
                    "openai backend: %s %s failed (%s); retry %d/%d in %.2f s",
                    method, self._redact(url), last_err, attempt + 1, max_retries, delay,
                )
                await _sleep(delay)
        tried = sorted({self.base_urls[(start + a) % len(self.base_urls)] for a in range(max_retries + 1)})
        raise RuntimeError(self._redact(
            f"{method} {url}: failed after {max_retries + 1} attempt(s) (endpoints tried: {', '.join(tried)}); "
            f"last error: {last_err}"
        ))

    def _list_models(self, required: bool) -> list[dict[str, Any]]:
        """GET /models on the first endpoint; retried only when the model name depends on it."""

        async def go():
            async with self._client() as client:
                return await self._call(client, "GET", "/models", None, self.ocfg.max_retries if required else 0)

        try:
            data = self._run(go)
        except RuntimeError as e:
            if required:
                raise
            log.warning("openai backend: could not list the server's models (%s); continuing", self._redact(str(e)))
            return []
        models = data.get("data")
        return [m for m in models if isinstance(m, dict)] if isinstance(models, list) else []

    def _redact(self, text: str) -> str:
        for form in self._secrets:  # longest first: a form that contains another goes whole
            text = text.replace(form, "***")
        return text

    def _run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine to completion from sync code, also when a loop already runs here."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(make())  # type: ignore[arg-type]
        # called from inside an event loop (a notebook, an async caller): use a private thread
        with ThreadPoolExecutor(max_workers=1) as ex:
            return ex.submit(lambda: asyncio.run(make())).result()  # type: ignore[arg-type]


# -- helpers -----------------------------------------------------------------


def _read_api_key(env: str | None) -> str | None:
    if not env:
        return None
    key = os.environ.get(env)
    if not key:
        raise RuntimeError(f"generation.openai.api_key_env: the environment variable {env} is not set")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in key):
        # an HTTP header cannot carry it (a trailing newline from `echo` or a file, typically); never print it
        raise RuntimeError(f"generation.openai.api_key_env: the key in {env} holds whitespace or control characters "
                           "(a trailing newline?); remove them")
    return key


class _RedactingFilter(logging.Filter):
    """Redacts known secrets from the records of the HTTP libraries' loggers (httpx logs every URL it calls)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self.installed = False

    def add(self, secrets: list[str]) -> None:
        self.secrets = sorted(set(self.secrets) | set(secrets), key=len, reverse=True)
        if self.secrets and not self.installed:
            for name in ("httpx", "httpcore"):
                logging.getLogger(name).addFilter(self)
            self.installed = True

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if any(s in text for s in self.secrets):
            for form in self.secrets:
                text = text.replace(form, "***")
            record.msg, record.args = text, None
        return True


_HTTP_LOG_REDACTION = _RedactingFilter()


def secret_forms(secret: str) -> set[str]:
    """Every form in which a message may print `secret`: as is, stripped, escaped (repr / JSON), URL-encoded."""
    from urllib.parse import quote, quote_plus

    if not secret:
        return set()
    forms = {secret, secret.strip(), repr(secret)[1:-1], json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             quote(secret, safe=""), quote_plus(secret), quote(secret)}
    return {f for f in forms if len(f) >= 3}


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries: its password (or a lone user name, a token), `user:password`, query values."""
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    out = []
    if parts.password is not None:
        out += [parts.password, parts.netloc.rsplit("@", 1)[0]]
    elif parts.username:
        out.append(parts.username)
    out += [v for _, v in parse_qsl(parts.query, keep_blank_values=False)]
    return out


async def _gather_or_cancel(coros: list[Awaitable[T]]) -> list[T]:
    """gather, but the first failure cancels the rest (no requests left running)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class MalformedResponse(RuntimeError):
    """A 2xx response whose JSON is not shaped as the OpenAI API says; the message says where."""


def _kind(v: Any) -> str:
    text = repr(v)
    return f"{type(v).__name__} {text if len(text) <= 40 else text[:39] + '…'}"


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _check_choices(data: dict[str, Any]) -> list[Any]:
    chs = data.get("choices")
    if isinstance(chs, list) and not chs or chs is None:
        raise MalformedResponse("the server returned no choices")
    if not isinstance(chs, list):
        raise MalformedResponse(f"`choices` is {_kind(chs)}, not a list")
    for i, c in enumerate(chs):
        if not isinstance(c, dict):
            raise MalformedResponse(f"choices[{i}] is {_kind(c)}, not an object")
    return chs


def _check_generation(data: dict[str, Any]) -> None:
    """Choices with string texts and a usage block with token counts (what `_to_completions` reads)."""
    for i, c in enumerate(_check_choices(data)):
        if "message" in c:
            m = c["message"]
            if not isinstance(m, dict):
                raise MalformedResponse(f"choices[{i}].message is {_kind(m)}, not an object")
            if not isinstance(m.get("content"), (str, type(None))):
                raise MalformedResponse(f"choices[{i}].message.content is {_kind(m.get('content'))}, not a string")
        elif not isinstance(c.get("text"), (str, type(None))):
            raise MalformedResponse(f"choices[{i}].text is {_kind(c.get('text'))}, not a string")
    usage = data.get("usage")
    if not isinstance(usage, dict) or "completion_tokens" not in usage:
        raise MalformedResponse("no usage.completion_tokens (the number of generated tokens)")
    for key in ("completion_tokens", "prompt_tokens"):
        v = usage.get(key)
        if not (_count(v) or (key == "prompt_tokens" and v is None)):
            raise MalformedResponse(f"usage.{key} is {_kind(v)}, not a token count")


def _check_logprobs(data: dict[str, Any]) -> None:
    _top_logprobs(_check_choices(data)[0])


def _choices(data: dict[str, Any]) -> list[dict[str, Any]]:
    chs = data.get("choices") or []
    chs = [c for c in chs if isinstance(c, dict)]
    return sorted(chs, key=lambda c: c.get("index", 0) if isinstance(c.get("index"), int) else 0)


def _choice_text(c: dict[str, Any]) -> str:
    if "message" in c:
        return (c.get("message") or {}).get("content") or ""
    return c.get("text") or ""


def _matched_stop(c: dict[str, Any], data: dict[str, Any], stops: tuple[str, ...]) -> str | None:
    """The stop string that ended a choice, where the server says (None: EOS or unknown)."""
    for v in (c.get("stop_reason"), c.get("matched_stop")):  # vLLM, SGLang
        if isinstance(v, str) and v in stops:
            return v
    verbose = data.get("__verbose")  # llama.cpp with verbose: true (one choice per response)
    if isinstance(verbose, dict):
        v = verbose.get("stopping_word")
        if isinstance(v, str) and v in stops:
            return v
    return None


def _logprob_count(c: dict[str, Any]) -> int | None:
    """Generated tokens of one choice, from its per-token log-probability list (None: no list)."""
    lp = c.get("logprobs")
    if not isinstance(lp, dict):
        return None
    content = lp.get("content")  # chat format, and llama.cpp's /completions
    if isinstance(content, list):
        return len(content)
    tokens = lp.get("tokens")  # legacy completions format
    return len(tokens) if isinstance(tokens, list) else None


def _split_usage(total: int, finishes: list[str], max_tokens: int) -> list[int]:
    """Per-choice token counts from a response's `usage.completion_tokens`.

    With one choice this is exact. OpenAI-style usage is per response, not per
    choice, so for several choices the split is an estimate: a choice that hit
    the length limit produced exactly `max_tokens`, and what is left is
    divided evenly among the others (remainder to the first ones). Exact
    per-sample counts need n=1 requests.
    """
    if len(finishes) == 1:
        return [total]
    n_len = finishes.count("length")
    rest, n_rest = total - n_len * max_tokens, len(finishes) - n_len
    if rest < 0 or (n_rest == 0 and rest != 0):
        # usage disagrees with the length rule (e.g. a context-limit stop): divide evenly
        q, r = divmod(total, len(finishes))
        return [q + (i < r) for i in range(len(finishes))]
    counts, k = [], 0
    q, r = divmod(rest, n_rest) if n_rest else (0, 0)
    for f in finishes:
        if f == "length":
            counts.append(max_tokens)
        else:
            counts.append(q + (k < r))
            k += 1
    return counts


def _top_logprobs(c: dict[str, Any]) -> dict[str, float]:
    """{token: logprob} for the first generated position, in either response format."""
    lp = c.get("logprobs")
    if not isinstance(lp, dict):
        raise MalformedResponse("the server returned no logprobs (does it support them?)")
    out: dict[str, float] = {}

    def put(tok: Any, v: Any) -> None:
        if isinstance(tok, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v):
            out[tok] = max(float(v), out.get(tok, float("-inf")))

    def bad(where: str, v: Any, want: str) -> MalformedResponse:
        return MalformedResponse(f"next-token log-probabilities: {where} is {_kind(v)}, not {want}")

    content = lp.get("content")
    if isinstance(content, list) and content:  # chat format (also llama.cpp's /completions)
        first = content[0]
        if not isinstance(first, dict):
            raise bad("logprobs.content[0]", first, "an object")
        put(first.get("token"), first.get("logprob"))
        tops = first.get("top_logprobs") or []
        if not isinstance(tops, list):
            raise bad("logprobs.content[0].top_logprobs", tops, "a list")
        for t in tops:
            if isinstance(t, dict):
                put(t.get("token"), t.get("logprob"))
    elif isinstance(lp.get("top_logprobs"), list) and lp["top_logprobs"]:  # legacy completions format
        top = lp["top_logprobs"][0] or {}
        if not isinstance(top, dict):
            raise bad("logprobs.top_logprobs[0]", top, "an object")
        for tok, v in top.items():
            put(tok, v)
        tokens, values = lp.get("tokens"), lp.get("token_logprobs")
        if isinstance(tokens, list) and isinstance(values, list) and tokens and values:
            put(tokens[0], values[0])
    if not out:
        raise MalformedResponse("the server returned no usable next-token log-probabilities (token / logprob pairs)")
    return out


def _logsumexp(vals: list[float]) -> float:
    m = max(vals)
    if m == float("-inf"):
        return m
    return m + math.log(sum(math.exp(v - m) for v in vals))


def _error_message(resp) -> str:
    try:
        data = resp.json()
    except ValueError:
        return (resp.text or "").strip()[:500] or resp.reason_phrase
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            return str(err)[:500]
    return json.dumps(data)[:500]


def _retry_after(resp) -> float:
    """Seconds from a Retry-After header (capped at 60; 0 when absent or a date)."""
    try:
        return min(max(float(resp.headers.get("retry-after", 0)), 0.0), 60.0)
    except ValueError:
        return 0.0
