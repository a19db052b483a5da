"""Run an embedded GGUF model behind llama-cpp-python's OpenAI-compatible server, on loopback.

The server runs in a child process (``python -m llama_cpp.server``) rather than in-process so that the
model's memory and threads go away with it, a crash in native code cannot take w4s down, and every client
talks the same OpenAI HTTP API it uses for hosted providers and vLLM.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

from w4s.artifacts import cache_root
from w4s.embedded.provision import ensure_model
from w4s.errors import W4SError
from w4s.workflow.confine import die_with_parent

# Modules the ``serve`` extra brings (llama-cpp-python[server]); checked without importing them.
_SERVER_MODULES = (
    "llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings",
)


def _require_server_modules() -> None:
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise W4SError(
            f"the embedded model server needs llama-cpp-python's server (missing: {', '.join(missing)}); "
            "install the serve extra: pip install 'w4s[serve]' (it compiles llama.cpp, a few minutes; "
            "CMAKE_ARGS=-DLLAVA_BUILD=OFF skips the unused multimodal part)"
        )


def _free_port() -> int:
    """Ask the kernel for a free loopback port (losing the race to bind it is a start error)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _default_threads() -> int:
    """All CPUs this process may use: the meta-agent and executor servers take turns, rarely running at once."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_ENV_KEEP = {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "LD_LIBRARY_PATH"}
_ENV_KEEP_PREFIXES = ("GGML_", "LLAMA_", "OPENBLAS_", "OMP_")


def server_env() -> dict[str, str]:
    """The runner's environment minus everything the model server has no use for, provider keys above all:
    a model server is a long-lived process whose /proc environment other local processes may read."""
    return {k: v for k, v in os.environ.items() if k in _ENV_KEEP or k.startswith(_ENV_KEEP_PREFIXES)}


class LlamaServer:
    """One llama.cpp OpenAI-compatible server process serving one GGUF model under an alias.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. The chat template embedded in the GGUF
    is used (no ``--chat_format``), which is right for the Qwen2.5 and SmolLM2 files this project ships.
    """

    def __init__(
        self,
        model_path: Path,
        alias: str,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        log_path: Path | None = None,
        ready_timeout_s: float = 300.0,
    ) -> None:
        self.model_path = Path(model_path)
        self.model = alias
        self.n_ctx = n_ctx
        self.n_threads = n_threads or _default_threads()
        self.ready_timeout_s = ready_timeout_s
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        # One log per alias, overwritten on each start, so repeated runs do not pile up files in the cache.
        self.log_path = log_path or cache_root() / "logs" / f"llama-server-{alias}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """PID of the server process, or None before :meth:`start`."""
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        """The server command line; logits_all and mlock are turned off (the server defaults them on) because
        nothing here needs per-token logits and pinning GBs of weights in RAM only causes mlock warnings."""
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.model,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
            "--n_threads_batch", str(self.n_threads),
            "--logits_all", "false",
            "--use_mlock", "false",
        ]

    def start(self) -> Self:
        """Launch the server, wait until it answers ``GET /v1/models``, then send one warm-up chat request.

        The warm-up makes the first real call's latency the model's, not the server's lazy set-up, and proves
        the chat template works before anyone depends on it.
        """
        if self._proc is not None:
            return self
        _require_server_modules()
        if not self.model_path.is_file():
            raise W4SError(f"model file {self.model_path} does not exist")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        # die_with_parent: a killed runner must never leave a model server holding gigabytes and a port.
        self._proc = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, preexec_fn=die_with_parent, env=server_env())
        atexit.register(self.stop)
        try:
            self._wait_ready()
            self._warm_up()
        except BaseException:
            self.stop()
            raise
        return self

    def _fail(self, reason: str) -> W4SError:
        return W4SError(f"llama.cpp server for {self.model} {reason}; last lines of {self.log_path}:\n"
                        f"{self.log_tail()}")

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.ready_timeout_s
        with httpx.Client(timeout=5.0) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    raise self._fail(f"exited with status {code} while starting")
                try:
                    if client.get(f"{self.base_url}/models").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise self._fail(f"was not ready after {self.ready_timeout_s:.0f}s")
                time.sleep(0.25)

    def _warm_up(self) -> None:
        body = {"model": self.model, "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 2,
                "temperature": 0.0}
        try:
            reply = httpx.post(f"{self.base_url}/chat/completions", json=body, timeout=self.ready_timeout_s)
        except httpx.TransportError as exc:
            raise self._fail(f"failed the warm-up chat request ({exc!r})") from exc
        if reply.status_code != 200:
            raise self._fail(f"answered the warm-up chat request with {reply.status_code}: "
                             f"{reply.text[:500]}")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop the server by PID: SIGTERM, wait up to ``grace_s``, then SIGKILL; safe to call twice."""
        atexit.unregister(self.stop)
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve_embedded(
    name: str,
    progress: Callable[[str], None] | None = None,
    *,
    n_ctx: int = 8192,
    n_threads: int | None = None,
    log_path: Path | None = None,
    ready_timeout_s: float = 300.0,
) -> LlamaServer:
    """Provision the embedded model ``name`` (download, join, verify on first use) and start a server for it.

    The model name doubles as the served alias, so clients ask for the same name the config gave.
    """
    path = ensure_model(name, progress=progress)
    return LlamaServer(path, name, n_ctx=n_ctx, n_threads=n_threads, log_path=log_path,
                       ready_timeout_s=ready_timeout_s).start()
