"""The helper API a workflow sees as ``agent`` (paper, appendix A.2).

This module runs inside the sandbox, next to untrusted code, so it is standard-library only and holds no
secrets: an LLM call is a request to the gateway with the sample's own token, and the gateway owns the
providers, the prices and the budget. Code execution goes one level further down, into a child process with
wall-clock, CPU and memory limits, because ``execute_code`` runs model-written code on model-written input.
"""

from __future__ import annotations

import json
import os
import re
import resource
from collections.abc import Callable, Sequence
from typing import IO, Any

from w4s.workflow.confine import end_group

_REFLECTION_PROMPT = """You are given a programming problem, a candidate solution and the public tests it fails.
Reflect on why it fails, then write a corrected solution.

## Problem
{problem}

## Candidate solution
```python
{solution}
```

## Failed public tests
{failures}

Reply with the keys "reflection" (your analysis) and "code" (the complete corrected Python code, defining
`{entry_point}`)."""


class LLMCallError(RuntimeError):
    """The runner refused or failed an LLM call (bad arguments, unknown model, call limit reached)."""


class JSONFormatError(ValueError):
    """The executor did not produce JSON with the requested keys, even after the bounded re-asks."""


class ExecutionError(RuntimeError):
    """Code run by ``execute_code`` raised, timed out or ran out of memory."""


def _limit_child(memory_mb: int, cpu_seconds: int) -> Callable[[], None]:
    def apply() -> None:
        mem = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024 * 1024,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def file_tail(file: IO[bytes], size: int = 4096) -> str:
    """The last ``size`` bytes of an open file, as text."""
    file.seek(0, os.SEEK_END)
    file.seek(max(0, file.tell() - size))
    return file.read().decode("utf-8", "replace")


def _wait(pid: int, timeout: float) -> int | None:
    """Wait until child ``pid`` exits or ``timeout`` passes: its wait status, or None on timeout.

    A pidfd wakes up the moment the child exits; where pidfds are missing, poll every 2 ms (a sleep of 50 ms, as
    ``Popen.wait`` does, would be a large share of a short program's run).
    """
    import select
    import time

    deadline = time.monotonic() + timeout
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = -1
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if fd >= 0:
                select.select([fd], [], [], left)
            else:
                time.sleep(min(0.002, left))
    finally:
        if fd >= 0:
            os.close(fd)


def _run_limited(task: Callable[[], dict[str, Any]], timeout: float, memory_mb: int) -> dict[str, Any]:
    """Run ``task`` in a forked child under wall-clock, CPU, memory and file-size limits; its process group is
    killed afterwards so nothing it started lingers.

    A fork rather than a new interpreter: a fresh Python costs hundreds of milliseconds under gVisor, and the
    sample's uid may not be allowed to execute the host's Python at all in the plain-process backend. The
    child's output is an unlinked temporary file, not a pipe: the wait is for the child itself, so a process it
    started that keeps the output open cannot stall the caller until the timeout, and the output is bounded by
    the file-size limit instead of piling up in this process's memory.
    """
    import tempfile
    import traceback

    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's side
            status = 0
            try:
                os.setsid()
                _limit_child(memory_mb, int(timeout) + 1)()
                os.dup2(errors.fileno(), 1)
                os.dup2(errors.fileno(), 2)
                try:
                    result = task()
                except BaseException as err:
                    lines = traceback.format_exception(type(err), err, err.__traceback__)
                    result = {"ok": False, "error": "".join(lines[-6:])}
                output.write(json.dumps(result, default=str).encode())
                output.flush()
            except BaseException:
                status = 70
            os._exit(status)
        try:
            status = _wait(pid, timeout)
        finally:
            end_group(pid)  # whatever the code forked dies with it, and is reaped
        if status is None:
            raise ExecutionError(f"code execution timed out after {timeout:g} s")
        output.seek(0)
        out, err = output.read().decode("utf-8", "replace"), file_tail(errors)
    if not out:
        how = (f"was killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exited with code {os.WEXITSTATUS(status)}")
        reason = "ran out of memory" if "MemoryError" in err else how
        raise ExecutionError(f"code execution {reason}: {err.strip()[-800:]}")
    return json.loads(out)


def _solution_value(code: str) -> dict[str, Any]:
    """What execute_code runs: the code, then its ``solution()``."""
    namespace: dict[str, Any] = {"__name__": "__solution__"}
    exec(compile(code, "<execute_code>", "exec"), namespace)
    solution = namespace.get("solution")
    if not callable(solution):
        raise ValueError("the code must define a function solution() that returns the result")
    return {"ok": True, "value": solution()}


def _public_tests(solution: str, tests: list[str]) -> dict[str, Any]:
    """The solution, then each assert as its own check so one failure does not hide the rest."""
    namespace: dict[str, Any] = {"__name__": "__solution__"}
    try:
        exec(compile(solution, "<solution>", "exec"), namespace)
    except BaseException as err:
        return {"ok": False, "failures": [{"test": "(loading the solution)", "error": f"{type(err).__name__}: {err}"}]}
    failures = []
    for test in tests:
        try:
            exec(compile(test, "<test>", "exec"), dict(namespace))
        except BaseException as err:
            failures.append({"test": test, "error": f"{type(err).__name__}: {err}"})
    return {"ok": not failures, "failures": failures}


_BOXED = "\\boxed{"


def _last_boxed(text: str) -> str | None:
    start = text.rfind(_BOXED)
    if start < 0:
        return None
    depth, i = 1, start + len(_BOXED)
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
    return None


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def extract_answer_str(text: str) -> str:
    """The last ``\\boxed{...}``, else the last number (commas removed), else the last sentence."""
    text = str(text)
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    numbers = _NUMBER.findall(text)
    if numbers:
        return numbers[-1].replace(",", "")
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]
    return sentences[-1] if sentences else ""


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)


def extract_code_block(text: str, entry_point: str = "solution") -> str:
    """The first fenced block that defines ``entry_point`` (python-tagged first), else ``""``."""
    blocks = _FENCE.findall(str(text))
    definition = re.compile(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", re.MULTILINE)
    for want_python in (True, False):
        for lang, body in blocks:
            if (lang.lower() in ("python", "py", "python3")) == want_python and definition.search(body):
                return body.strip("\n")
    return ""


def _parse_json_reply(text: str, keys: Sequence[str]) -> dict[str, Any]:
    """Find the JSON object in a reply (bare or fenced) and check the requested keys; raise ValueError."""
    candidates = [body for _, body in _FENCE.findall(text)] + [text]
    last_error = "no JSON object found"
    for cand in candidates:
        start, end = cand.find("{"), cand.rfind("}")
        if start < 0 or end <= start:
            continue
        try:
            value = json.loads(cand[start:end + 1])
        except json.JSONDecodeError as err:
            last_error = f"invalid JSON: {err}"
            continue
        if not isinstance(value, dict):
            last_error = "the JSON value is not an object"
            continue
        missing = [k for k in keys if k not in value]
        if missing:
            last_error = f"missing keys {missing}"
            continue
        return value
    raise ValueError(last_error)


def _check_messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    checked = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            raise ValueError(f"messages[{i}] must be a dict with exactly the keys 'role' and 'content'")
        if m["role"] not in ("system", "user", "assistant"):
            raise ValueError(f"messages[{i}]['role'] must be 'user' or 'assistant', got {m['role']!r}")
        checked.append({"role": m["role"], "content": str(m["content"])})
    return checked


class Agent:
    """What ``workflow(agent, task)`` receives. Method names and arguments follow the paper's helper API."""

    def __init__(self, request_llm: Callable[[dict[str, Any]], list[str]], context: dict[str, Any],
                 limits: dict[str, Any]) -> None:
        self._request_llm = request_llm
        self._context = context
        self._limits = limits

    def call_llm(self, messages: list[dict[str, str]], temperature: float = 0.7, num_of_response: int = 1,
                 agent_role: str = "assistant", instructions: str = "", model: str | None = None,
                 max_tokens: int | None = None) -> list[str]:
        """Ask the executor; returns ``num_of_response`` reply texts."""
        system = f"You are a helpful {agent_role}. {instructions}".strip()
        return self._chat(messages, system, temperature, num_of_response, model, max_tokens, json_mode=False)

    def call_json_format_llm(self, messages: list[dict[str, str]], temperature: float = 0.7,
                             num_of_response: int = 1, agent_role: str = "assistant",
                             return_dict_keys: Sequence[str] = ("answer",), instructions: str = "",
                             model: str | None = None, max_tokens: int | None = None) -> list[dict[str, Any]]:
        """Ask for JSON replies with the given keys; malformed replies are re-asked a bounded number of times."""
        keys = [str(k) for k in return_dict_keys]
        system = (f"You are a helpful {agent_role}. Reply in JSON format, ONLY using the keys {keys}. "
                  f"{instructions}").strip()
        msgs = _check_messages(messages)
        texts = self._chat(msgs, system, temperature, num_of_response, model, max_tokens, json_mode=True)
        results: list[dict[str, Any]] = []
        for text in texts:
            reply = text
            for attempt in range(self._limits["json_retries"] + 1):
                try:
                    results.append(_parse_json_reply(reply, keys))
                    break
                except ValueError as err:
                    if attempt == self._limits["json_retries"]:
                        raise JSONFormatError(
                            f"the executor's reply is not a JSON object with keys {keys} ({err}) after "
                            f"{attempt + 1} tries; reply was: {reply[:300]!r}") from None
                    retry = [*msgs, {"role": "assistant", "content": reply},
                             {"role": "user", "content": f"That reply is not usable ({err}). Reply again "
                              f"with ONLY a JSON object with exactly the keys {keys}."}]
                    reply = self._chat(retry, system, temperature, 1, model, max_tokens, json_mode=True)[0]
        return results

    def _chat(self, messages: Any, system: str, temperature: float, n: int, model: str | None,
              max_tokens: int | None, json_mode: bool) -> list[str]:
        msgs = _check_messages(messages)
        if msgs[0]["role"] != "system":
            msgs = [{"role": "system", "content": system}, *msgs]
        if not isinstance(n, int) or not 1 <= n <= 16:
            raise ValueError("num_of_response must be an integer from 1 to 16")
        try:
            temperature = float(temperature)
        except (TypeError, ValueError):
            raise ValueError("temperature must be a number") from None
        return self._request_llm({"messages": msgs, "temperature": temperature, "n": n, "model": model,
                                  "max_tokens": max_tokens, "json_mode": json_mode})

    def execute_code(self, code: str, timeout: float | None = None) -> Any:
        """Run code that defines ``solution()`` in a limited child process and return its value."""
        limit = float(self._limits["execute_code_timeout"])
        timeout = limit if timeout is None else min(float(timeout), limit)
        source = str(code)
        result = _run_limited(lambda: _solution_value(source), timeout, int(self._limits["execute_code_memory_mb"]))
        if not result["ok"]:
            raise ExecutionError(f"error when executing code:\n{result['error']}")
        return result["value"]

    @staticmethod
    def extract_answer_str(text: str) -> str:
        return extract_answer_str(text)

    @staticmethod
    def extract_code_block(text: str, entry_point: str = "solution") -> str:
        return extract_code_block(text, entry_point)

    def test_on_public_test(self, task: str, solution_code: str, entry_point: str,
                            test_loop: int = 3) -> dict[str, Any]:
        """Run the task's public tests; on failure ask the executor to reflect and repair, ``test_loop`` times.

        Only the public tests that the benchmark hands to this sample are used; hidden tests never reach here.
        """
        tests = list(self._context.get("public_tests") or [])
        if not tests:
            return {"result": True, "solution": solution_code, "feedback": "no public tests for this task",
                    "count": 0}
        solution, feedback, count = solution_code, "", 0
        for count in range(test_loop + 1):
            outcome = self._run_tests(solution, tests)
            if outcome["ok"]:
                return {"result": True, "solution": solution, "feedback": "no error", "count": count}
            feedback = json.dumps(outcome["failures"], indent=1)[:3000]
            if count == test_loop:
                break
            reply = self.call_json_format_llm(
                [{"role": "user", "content": _REFLECTION_PROMPT.format(
                    problem=task, solution=solution, failures=feedback, entry_point=entry_point)}],
                temperature=0.3, agent_role="expert Python programmer", return_dict_keys=["reflection", "code"],
            )[0]
            solution = extract_code_block(str(reply["code"]), entry_point) or str(reply["code"])
        return {"result": False, "solution": solution, "feedback": feedback, "count": count}

    def _run_tests(self, solution: str, tests: list[str]) -> dict[str, Any]:
        try:
            return _run_limited(lambda: _public_tests(solution, tests), float(self._limits["execute_code_timeout"]),
                                int(self._limits["execute_code_memory_mb"]))
        except ExecutionError as err:
            return {"ok": False, "failures": [{"test": "(all)", "error": str(err)}]}
