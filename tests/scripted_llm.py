"""Scripted stand-in for remote OpenAI/Anthropic endpoints, which cannot run here.

A mock of the remote providers: a real HTTP server (uvicorn + starlette on 127.0.0.1) that speaks the OpenAI
chat-completions and Anthropic messages wire formats and answers from a deterministic Python ``responder``.
It is a real server rather than an in-process fake because the code under test talks to providers over HTTP
with httpx, sometimes from subprocesses, and its timeouts, retries and connection pooling are part of what
is tested.

Token usage is a deterministic approximation, not a tokenizer: ``prompt_tokens`` (``input_tokens``) is the
number of whitespace-separated words over all message contents (the Anthropic ``system`` field included),
and ``completion_tokens`` (``output_tokens``) the words over all returned texts.

The server runs in a background thread (``ScriptedLLM``) or, for benchmarks that must not share the GIL with
the client, in its own process (``start_process`` / ``python tests/scripted_llm.py --responder MOD:FUNC``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import importlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

logger = logging.getLogger(__name__)

Api = Literal["openai", "anthropic"]
# One text (repeated for every one of the n choices) or exactly n texts, one per choice.
Reply = str | Sequence[str]

_OPENAI_ERROR_TYPES = {400: "invalid_request_error", 429: "rate_limit_exceeded", 503: "service_unavailable"}
_ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 429: "rate_limit_error", 503: "overloaded_error",
                          529: "overloaded_error"}


@dataclass(frozen=True)
class Call:
    """One chat request as the responder sees it, the same shape whichever wire format it came in."""

    api: Api
    model: str
    messages: list[dict[str, str]]  # {role, content}; an Anthropic ``system`` field comes first, role system
    temperature: float
    seed: int | None
    n: int
    json_mode: bool  # response_format {"type": "json_object"} was asked for
    max_tokens: int | None  # max_tokens or max_completion_tokens
    raw: dict[str, Any]  # the request JSON as received


@dataclass(frozen=True)
class Exchange:
    """What the server did with one call, for tests to assert on."""

    call: Call
    status: int
    texts: tuple[str, ...]  # the choices answered; empty when the call failed
    error: str | None  # why it failed: an injected fault or the responder's exception


@dataclass(frozen=True)
class Fault:
    """Make the next ``times`` matching calls fail with ``status`` and/or hang ``hang_s`` seconds first.

    ``status`` None with ``hang_s`` > 0 answers normally after the hang (long after a client timeout).
    ``retry_after_s`` adds a Retry-After header, as rate-limited providers send.
    """

    status: int | None = 500
    times: int = 1
    retry_after_s: float | None = None
    hang_s: float = 0.0
    match: Callable[[Call], bool] | None = None

    def __post_init__(self) -> None:
        if self.times < 1:
            raise ValueError("a fault must apply to at least one call")
        if self.status is None and self.hang_s <= 0:
            raise ValueError("a fault needs an error status, a hang, or both")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"fault status {self.status} is not an HTTP error")


class _BadRequest(ValueError):
    """The request is malformed the way the real provider would reject it with HTTP 400."""


def _text(content: Any) -> str:
    """Flatten a message content (a string, or a list of text parts/blocks) to its text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise _BadRequest(f"unsupported message content of type {type(content).__name__}")


def _messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise _BadRequest("messages must be a non-empty list")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in raw):
        raise _BadRequest("every message needs a string role")
    return [{"role": m["role"], "content": _text(m.get("content"))} for m in raw]


def _model(raw: dict[str, Any]) -> str:
    model = raw.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequest("model is required")
    if raw.get("stream"):
        raise _BadRequest("streaming is not scripted")
    return model


def _parse_openai(raw: dict[str, Any]) -> Call:
    response_format = raw.get("response_format")
    n = raw.get("n", 1)
    if not isinstance(n, int) or n < 1:
        raise _BadRequest("n must be a positive integer")
    return Call(
        api="openai", model=_model(raw), messages=_messages(raw.get("messages")),
        temperature=float(raw.get("temperature", 1.0)), seed=raw.get("seed"), n=n,
        json_mode=isinstance(response_format, dict) and response_format.get("type") == "json_object",
        max_tokens=raw.get("max_completion_tokens", raw.get("max_tokens")), raw=raw,
    )


def _parse_anthropic(raw: dict[str, Any]) -> Call:
    """Parse a messages request, rejecting what the real API rejects and a client could plausibly send."""
    model = _model(raw)
    if not isinstance(raw.get("max_tokens"), int):
        raise _BadRequest("max_tokens: field required")
    if "n" in raw:
        raise _BadRequest("n: extra inputs are not permitted")
    messages = _messages(raw.get("messages"))
    if any(m["role"] not in ("user", "assistant") for m in messages):
        raise _BadRequest("messages: roles must be user or assistant; system text goes in the system field")
    if raw.get("system"):
        messages.insert(0, {"role": "system", "content": _text(raw["system"])})
    return Call(api="anthropic", model=model, messages=messages,
                temperature=float(raw.get("temperature", 1.0)), seed=None, n=1, json_mode=False,
                max_tokens=raw["max_tokens"], raw=raw)


def _words(text: str) -> int:
    return len(text.split())


def _error_body(api: Api, status: int, message: str) -> dict[str, Any]:
    if api == "anthropic":
        kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind = _OPENAI_ERROR_TYPES.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def _success_body(call: Call, texts: tuple[str, ...]) -> dict[str, Any]:
    """The provider's response JSON; the id is a digest of the request so that replies are reproducible."""
    digest = hashlib.sha256(json.dumps(call.raw, sort_keys=True).encode()).hexdigest()[:24]
    prompt = sum(_words(m["content"]) for m in call.messages)
    completion = sum(_words(t) for t in texts)
    if call.api == "anthropic":
        return {"id": f"msg_{digest}", "type": "message", "role": "assistant", "model": call.model,
                "content": [{"type": "text", "text": texts[0]}], "stop_reason": "end_turn",
                "stop_sequence": None, "usage": {"input_tokens": prompt, "output_tokens": completion}}
    return {
        "id": f"chatcmpl-{digest}", "object": "chat.completion", "created": 0, "model": call.model,
        "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                    for i, t in enumerate(texts)],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion},
    }


class ScriptedLLM:
    """A scripted provider on a loopback port; use as a context manager or with start()/stop().

    ``latency_s`` and the fault queue may be changed while it runs. Chat endpoints accept any model name;
    ``models`` is only what ``GET /v1/models`` lists.
    """

    def __init__(self, responder: Callable[[Call], Reply], *, latency_s: float = 0.0,
                 models: Sequence[str] = ("scripted-model",), ready_timeout_s: float = 10.0,
                 loop: str = "asyncio") -> None:
        # loop="auto" picks uvloop when installed; only a server in its own process may use it, because uvicorn
        # installs it as the process-wide event loop policy. HTTP parsing uses httptools when installed.
        self.loop = loop
        self.responder = responder
        self.latency_s = latency_s
        self.models = tuple(models)
        self.ready_timeout_s = ready_timeout_s
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._faults: list[Fault] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
            Route("/v1/messages", self._messages, methods=["POST"]),
            Route("/v1/models", self._list_models, methods=["GET"]),
        ])

    # -- scripting -------------------------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault; each call consumes the first queued fault that matches it."""
        with self._lock:
            self._faults.append(fault)

    def fail_next(self, k: int = 1, status: int = 500, *, retry_after_s: float | None = None,
                  match: Callable[[Call], bool] | None = None) -> None:
        """Fail the next ``k`` (matching) calls with ``status``, e.g. 429 with ``retry_after_s``."""
        self.add_fault(Fault(status=status, times=k, retry_after_s=retry_after_s, match=match))

    def hang_next(self, k: int = 1, seconds: float = 60.0, *,
                  match: Callable[[Call], bool] | None = None) -> None:
        """Delay the next ``k`` (matching) calls by ``seconds``, to drive a client past its timeout."""
        self.add_fault(Fault(status=None, times=k, hang_s=seconds, match=match))

    @property
    def calls(self) -> list[Exchange]:
        """A snapshot of every parsed call with its outcome, in order of completion."""
        with self._lock:
            return list(self._exchanges)

    def reset(self) -> None:
        """Forget recorded calls and pending faults, so one server can serve several tests."""
        with self._lock:
            self._exchanges.clear()
            self._faults.clear()

    def _take_fault(self, call: Call) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.match is None or fault.match(call):
                    if fault.times == 1:
                        del self._faults[i]
                    else:
                        self._faults[i] = dataclasses.replace(fault, times=fault.times - 1)
                    return fault
        return None

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)

    # -- HTTP ------------------------------------------------------------------------------------------------

    async def _chat_completions(self, request: Request) -> JSONResponse:
        return await self._serve(request, "openai")

    async def _messages(self, request: Request) -> JSONResponse:
        return await self._serve(request, "anthropic")

    async def _list_models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "scripted"} for m in self.models]})

    async def _serve(self, request: Request, api: Api) -> JSONResponse:
        try:
            raw = json.loads(await request.body())
            if not isinstance(raw, dict):
                raise _BadRequest("the request body must be a JSON object")
            call = _parse_openai(raw) if api == "openai" else _parse_anthropic(raw)
        except (ValueError, TypeError) as err:  # _BadRequest, JSONDecodeError, a null where a number goes
            return JSONResponse(_error_body(api, 400, str(err)), status_code=400)
        fault = self._take_fault(call)
        delay = self.latency_s + (fault.hang_s if fault else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        if fault is not None and fault.status is not None:
            message = f"scripted fault: HTTP {fault.status}"
            self._record(Exchange(call, fault.status, (), message))
            headers = {} if fault.retry_after_s is None else {"Retry-After": f"{fault.retry_after_s:g}"}
            return JSONResponse(_error_body(api, fault.status, message), status_code=fault.status,
                                headers=headers)
        try:
            texts = self._texts(call)
        except Exception as err:  # a responder bug must reach the test as a visible 500, not kill the server
            logger.exception("scripted responder failed")
            message = f"responder raised {type(err).__name__}: {err}"
            self._record(Exchange(call, 500, (), message))
            return JSONResponse(_error_body(api, 500, message), status_code=500)
        self._record(Exchange(call, 200, texts, None))
        return JSONResponse(_success_body(call, texts))

    def _texts(self, call: Call) -> tuple[str, ...]:
        reply = self.responder(call)
        if isinstance(reply, str):
            return (reply,) * call.n
        texts = tuple(reply)
        if len(texts) != call.n or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"responder must return a str or {call.n} strs for n={call.n}, got {reply!r}")
        return texts

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the scripted server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ``http://127.0.0.1:PORT/v1``; Anthropic clients use the same one."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ScriptedLLM:
        """Serve on a free loopback port from a daemon thread; returns once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError("the scripted server is already started")
        # Binding here, not in uvicorn, gives the port without a race between choosing it and binding it.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self.app, loop=self.loop, http="auto", lifespan="off", access_log=False, log_config=None,
            log_level="warning", limit_concurrency=None, backlog=4096, timeout_keep_alive=300,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="scripted-llm", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.ready_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError("the scripted server did not start")
            time.sleep(0.005)
        self._port = sock.getsockname()[1]
        return self

    def stop(self) -> None:
        """Shut the server down (pending requests get up to 2 s) and wait for its thread."""
        if self._thread is None or self._server is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=self.ready_timeout_s)
        if self._thread.is_alive():
            raise RuntimeError("the scripted server thread did not stop")
        self._thread = self._server = self._port = None

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def echo(call: Call) -> str:
    """A ready-made responder: the last message's content, for tests and benchmarks that need any answer."""
    return call.messages[-1]["content"]


def resolve_responder(ref: str) -> Callable[[Call], Reply]:
    """Import ``MODULE:FUNC``, the way a responder is named to a server in another process."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(f"responder reference {ref!r} is not MODULE:FUNC")
    return getattr(importlib.import_module(module_name), attr)


def _child_pythonpath() -> str:
    """The caller's import path minus the interpreter's own dirs, so the child imports the same responders."""
    own = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    entries = [os.path.realpath(p or os.getcwd()) for p in sys.path]
    keep = [p for p in entries
            if os.path.isdir(p) and not any(p == o or p.startswith(o + os.sep) for o in own)]
    return os.pathsep.join(dict.fromkeys(keep))


def start_process(responder_ref: str, latency_s: float = 0.0, *,
                  ready_timeout_s: float = 30.0) -> tuple[str, Callable[[], None]]:
    """Run the server in its own process (no GIL shared with the client); returns (base_url, stop).

    ``stop`` terminates the child by PID, waits, and kills it if it does not exit; it is idempotent.
    """
    workdir = Path(tempfile.mkdtemp(prefix="scripted-llm-"))
    port_file, log_file = workdir / "port", workdir / "stderr.log"
    with log_file.open("wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--responder", responder_ref,
             "--latency", repr(latency_s), "--port-file", str(port_file)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            env={**os.environ, "PYTHONPATH": _child_pythonpath()},
        )

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    deadline = time.monotonic() + ready_timeout_s
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log_file.read_text(errors="replace")[-2000:]
            stop()
            raise RuntimeError(f"scripted server process did not start (exit {proc.returncode}):\n{tail}")
        time.sleep(0.02)
    base_url = f"http://127.0.0.1:{int(port_file.read_text())}/v1"
    httpx.get(f"{base_url}/models", timeout=5).raise_for_status()
    return base_url, stop


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: serve until SIGTERM/SIGINT, writing the port to --port-file once connections are accepted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responder", required=True, help="MODULE:FUNC taking a Call, returning a Reply")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to sleep per call")
    parser.add_argument("--port-file", required=True, type=Path, help="where to write the port when ready")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with ScriptedLLM(resolve_responder(args.responder), latency_s=args.latency, loop="auto") as server:
        tmp = args.port_file.with_name(args.port_file.name + ".tmp")
        tmp.write_text(str(server.port))
        tmp.replace(args.port_file)  # atomic, so a poller never reads a partial port
        stopping.wait()
    return 0


if __name__ == "__main__":
    # Run as the importable module ``scripted_llm`` (its directory is sys.path[0] here), so that responders
    # referring to ``scripted_llm:...`` share one set of classes with the server instead of a __main__ copy.
    sys.exit(importlib.import_module("scripted_llm").main())
