"""judgeloop.llamacpp: a llama-server that dies at start-up is reported with why, without retrying in vain."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from judgeloop.llamacpp import LlamaCppUnavailable, LlamaServer


def fake_server(tmp_path: Path, body: str) -> str:
    path = tmp_path / "llama-server"
    path.write_text(f"#!/usr/bin/env bash\necho \"starting $*\"\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_a_server_killed_by_sigill_is_named_and_not_retried(tmp_path):
    binary = fake_server(tmp_path, "kill -ILL $$")
    with pytest.raises(LlamaCppUnavailable) as e:
        LlamaServer(binary, "model.gguf")
    msg = str(e.value)
    assert "killed by SIGILL" in msg and "rebuild with scripts/llama_server.sh" in msg
    assert msg.count("starting -m model.gguf") == 1  # a new port cannot help a binary this CPU cannot run


def test_a_server_that_exits_is_retried_and_its_status_named(tmp_path):
    binary = fake_server(tmp_path, "exit 3")
    with pytest.raises(LlamaCppUnavailable, match=r"exited with status 3"):
        LlamaServer(binary, "model.gguf")
