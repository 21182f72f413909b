"""A generation backend that returns garbage: the judge stage, on the `openai` backend, talks
to a scripted OpenAI-compatible server on 127.0.0.1 that answers with
malformed bodies. Each: exit 1 with the endpoint and what is wrong named,
no judgments.parquet and no cached shard of garbage; once the server answers
properly, the same command completes.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from .conftest import assert_fails, assert_ok, assert_untouched, run_in


def chat(content, finish="stop", usage=None, **extra):
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish, **extra}
    return {"object": "chat.completion", "choices": [choice],
            "usage": usage if usage is not None else {"prompt_tokens": 20, "completion_tokens": 4}}


def sane(path, body):
    if body.get("logprobs"):
        return 200, chat("A", logprobs={"content": [{"token": "A", "logprob": -0.1,
                                                     "top_logprobs": [{"token": "A", "logprob": -0.1}, {"token": "B", "logprob": -2.4}]}]}), {}
    return 200, chat("Response A answers the question. [[A]]"), {}


def const(status, payload):
    return lambda path, body: (status, payload, {})


GARBAGE = [
    # (id, handler, words the message must contain besides the endpoint)
    ("html-page", const(200, "<html><body>502 Bad Gateway</body></html>"), ["the response is not JSON"]),
    ("empty-body", const(200, ""), ["the response is not JSON"]),
    ("json-array", const(200, [1, 2, 3]), ["not a JSON object"]),
    ("no-choices", const(200, {"id": "cmpl-1", "object": "chat.completion"}), ["no choices"]),
    ("choices-not-a-list", const(200, {"choices": "A", "usage": {"completion_tokens": 1}}), ["choices"]),
    ("choice-not-an-object", const(200, {"choices": ["[[A]]"], "usage": {"completion_tokens": 1}}), ["choice"]),
    ("message-not-an-object", const(200, {"choices": [{"index": 0, "message": "[[A]]"}], "usage": {"completion_tokens": 1}}),
     ["message"]),
    ("content-a-number", const(200, chat(42)), ["content", "int"]),
    ("no-usage", const(200, chat("[[A]]", usage={})), ["usage.completion_tokens"]),
    ("usage-not-a-number", const(200, chat("[[A]]", usage={"completion_tokens": "four"})), ["usage.completion_tokens", "'four'"]),
    ("usage-negative", const(200, chat("[[A]]", usage={"completion_tokens": -3})), ["usage.completion_tokens", "-3"]),
    ("server-error-forever", const(500, {"error": {"message": "CUDA out of memory"}}), ["HTTP 500", "CUDA out of memory", "after 2 attempt(s)"]),
]


@pytest.fixture
def judge_project(project, fake):
    server = fake(sane)
    project.write_pairs(n=2)
    project.set_params({
        "generation": {"backend": "openai", "cache_dir": "cache", "shard_size": 2,
                       "openai": {"base_urls": [server.url], "max_retries": 1, "backoff_s": 0.01, "timeout_s": 10}},
        "judging": {"samples": 1, "max_tokens": 8, "verdict_fallback": "none"},
    })
    return project, server


@pytest.mark.parametrize("case_id,handler,needles", GARBAGE, ids=[g[0] for g in GARBAGE])
def test_garbage_is_named_then_a_sane_server_completes(judge_project, case_id, handler, needles, caplog, monkeypatch):
    project, server = judge_project
    server.handler = handler
    before = project.outputs()
    err = assert_fails(project.stage("judge", "--iteration", "it1"), "stage judge failed:", server.url, *needles)
    assert "request 'it1:p" in err  # which request got the garbage
    assert_untouched(project, before)  # no judgments, no metrics, no cached shard

    server.handler = sane  # the fix; the rerun in process (the same run_stage the script calls)
    assert run_in(project.root, "judge", "--iteration", "it1", caplog=caplog, monkeypatch=monkeypatch) == (0, "")
    rows = pq.read_table(project.root / "data/it1/judgments.parquet").to_pylist()
    assert len(rows) == 4 and {r["verdict"] for r in rows} == {"A"}


LOGPROB_GARBAGE = [
    ("no-logprobs", chat("no verdict here"), ["no logprobs"]),
    ("logprobs-content-strings", chat("no verdict here", logprobs={"content": ["A", "B"]}), ["log-probabilities", "logprobs.content[0]"]),
    ("top-logprobs-not-numbers", chat("x", logprobs={"content": [{"token": "A", "logprob": "high", "top_logprobs": "many"}]}),
     ["log-probabilities"]),
]


@pytest.mark.parametrize("case_id,payload,needles", LOGPROB_GARBAGE, ids=[g[0] for g in LOGPROB_GARBAGE])
def test_garbage_log_probabilities_for_forced_verdicts(judge_project, case_id, payload, needles):
    """verdict_fallback: forced asks the server for next-token log-probabilities; garbage there is named too."""
    project, server = judge_project
    project.update_params({"judging": {"verdict_fallback": "forced"}})

    def handler(path, body):
        return (200, payload, {}) if body.get("logprobs") else (200, chat("I cannot decide."), {})

    server.handler = handler
    before = {k: v for k, v in project.outputs().items() if not k.startswith("cache/")}
    assert_fails(project.stage("judge", "--iteration", "it1"), "stage judge failed:", server.url, *needles)
    after = {k: v for k, v in project.outputs().items() if not k.startswith("cache/")}
    assert after == before and project.temporaries() == []  # generated shards may be cached; no judgments

    server.handler = sane
    assert_ok(project.stage("judge", "--iteration", "it1"))
