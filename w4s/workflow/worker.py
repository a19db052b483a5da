"""Entry point of a workflow worker process: ``python -I -m w4s.workflow.worker``.

The runner starts it with an empty environment (no credentials), talks to it over stdin/stdout in JSON lines,
and kills it on a sample timeout. The workflow's own prints go to stderr so they cannot corrupt the protocol.
Each sample runs in a fresh namespace, so nothing leaks from one sample to the next except what the process
itself keeps, and a crash or a memory blow-up takes only this process down.

Protocol (one JSON object per line):
  runner -> worker  {"op": "run", "code", "task", "context", "limits"}
  worker -> runner  {"op": "llm", ...request}      runner -> worker {"op": "llm_result", "texts"} | {"op": "llm_error"}
  worker -> runner  {"op": "done", "ok": true, "answer"} | {"op": "done", "ok": false, "error"}
  runner -> worker  {"op": "check", "program", "timeout", "memory_mb"}   (grading workers only)
  worker -> runner  {"op": "checked", "ok", "error"}
"""

from __future__ import annotations

import json
import linecache
import os
import sys
import traceback
from typing import Any, TextIO

from w4s.workflow import confine
from w4s.workflow.helper_api import Agent, LLMCallError, run_check

_CODE_NAME = "<workflow>"


class _Channel:
    def __init__(self, reader: TextIO, writer: TextIO) -> None:
        self._reader = reader
        self._writer = writer

    def send(self, message: dict[str, Any]) -> None:
        self._writer.write(json.dumps(message, default=str) + "\n")
        self._writer.flush()

    def receive(self) -> dict[str, Any] | None:
        line = self._reader.readline()
        return json.loads(line) if line else None

    def request_llm(self, request: dict[str, Any]) -> list[str]:
        self.send({"op": "llm", **request})
        reply = self.receive()
        if reply is None:
            raise SystemExit(0)
        if reply["op"] == "llm_error":
            raise LLMCallError(reply["message"])
        return list(reply["texts"])


def _format_error(err: BaseException) -> str:
    """Traceback limited to the workflow's own frames, with the failing source line, for self-correction."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == _CODE_NAME]
    lines = [f"{type(err).__name__}: {err}"]
    for frame in frames[-3:]:
        lines.append(f"  at workflow line {frame.lineno}: {(frame.line or '').strip()}")
    return "\n".join(lines)


def _compile(code: str, cache: dict[str, Any]) -> Any:
    """Compile once per workflow: a worker runs many samples of the same code in a row."""
    if code not in cache:
        cache.clear()
        cache[code] = compile(code, _CODE_NAME, "exec")
        linecache.cache[_CODE_NAME] = (len(code), None, code.splitlines(True), _CODE_NAME)
    return cache[code]


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def run_sample(channel: _Channel, message: dict[str, Any], cache: dict[str, Any]) -> dict[str, Any]:
    try:
        namespace: dict[str, Any] = {"__name__": "__workflow__"}
        exec(_compile(message["code"], cache), namespace)
        workflow = namespace.get("workflow")
        if not callable(workflow):
            raise NameError("the code must define a function workflow(agent, task) -> dict")
        agent = Agent(channel.request_llm, message.get("context") or {}, message["limits"])
        result = workflow(agent, message["task"])
        if not isinstance(result, dict) or "answer" not in result:
            raise TypeError(f"workflow must return a dict with the key 'answer', got {type(result).__name__}"
                            + (f" with keys {sorted(map(str, result))}" if isinstance(result, dict) else ""))
        return {"op": "done", "ok": True, "answer": _jsonable(result["answer"])}
    except SystemExit:
        raise
    except BaseException as err:  # the workflow's failure is data, reported to the runner
        return {"op": "done", "ok": False, "error": _format_error(err)}


def main() -> None:
    confine.become_subreaper()
    protocol_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    channel = _Channel(sys.stdin, protocol_out)
    cache: dict[str, Any] = {}
    channel.send({"op": "ready", "pid": os.getpid()})
    while (message := channel.receive()) is not None:
        if message.get("op") == "run":
            reply = run_sample(channel, message, cache)
        elif message.get("op") == "check":
            reply = {"op": "checked", **run_check(message["program"], float(message["timeout"]),
                                                  int(message["memory_mb"]))}
        else:
            continue
        confine.kill_strays()  # nothing a sample started may outlive it
        channel.send(reply)


if __name__ == "__main__":
    main()
