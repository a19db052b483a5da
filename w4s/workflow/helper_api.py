"""The helper API a workflow sees as ``agent`` (paper, appendix A.2).

This module runs inside the worker process, next to untrusted code, so it is standard-library only and holds no
secrets: an LLM call is a request over the worker's pipe to the runner, which owns the providers, the prices and
the budget. Code execution goes one level further down, into a child process with wall-clock, CPU and memory
limits, because ``execute_code`` runs model-written code on model-written input.
"""

from __future__ import annotations

import json
import os
import re
import resource
import sys
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

from w4s.workflow.confine import end_group

if TYPE_CHECKING:
    import subprocess

# Runs in the execute_code child: reads the code on stdin, calls solution(), writes JSON to the saved stdout.
_EXEC_RUNNER = r"""
import json, os, sys, traceback
out = os.fdopen(os.dup(1), "w", encoding="utf-8")
os.dup2(2, 1)
code = sys.stdin.read()
try:
    ns = {"__name__": "__solution__"}
    exec(compile(code, "<execute_code>", "exec"), ns)
    fn = ns.get("solution")
    if not callable(fn):
        raise ValueError("the code must define a function solution() that returns the result")
    value = fn()
    out.write(json.dumps({"ok": True, "value": value}, default=str))
except BaseException as err:
    tb = traceback.format_exception(type(err), err, err.__traceback__)
    out.write(json.dumps({"ok": False, "error": "".join(tb[-6:])}))
out.flush()
"""

# Runs public tests: the solution, then each assert as its own check so one failure does not hide the rest.
_TEST_RUNNER = r"""
import json, os, sys, traceback
out = os.fdopen(os.dup(1), "w", encoding="utf-8")
os.dup2(2, 1)
payload = json.loads(sys.stdin.read())
failures = []
ns = {"__name__": "__solution__"}
try:
    exec(compile(payload["solution"], "<solution>", "exec"), ns)
except BaseException as err:
    out.write(json.dumps({"ok": False, "failures": [{"test": "(loading the solution)",
                                                      "error": f"{type(err).__name__}: {err}"}]}))
    out.flush()
    raise SystemExit(0)
for test in payload["tests"]:
    try:
        exec(compile(test, "<test>", "exec"), dict(ns))
    except BaseException as err:
        failures.append({"test": test, "error": f"{type(err).__name__}: {err}"})
out.write(json.dumps({"ok": not failures, "failures": failures}))
out.flush()
"""

# Runs a grading program (an answer's code followed by its hidden tests): it passes when it runs to the end.
# The program goes into linecache so a failure can name its line ("AssertionError (line: assert ...)").
_CHECK_RUNNER = r"""
import json, linecache, os, sys, traceback
out = os.fdopen(os.dup(1), "w", encoding="utf-8")
os.dup2(2, 1)
program = sys.stdin.read()
linecache.cache["<check>"] = (len(program), None, program.splitlines(True), "<check>")
try:
    exec(compile(program, "<check>", "exec"), {"__name__": "__main__"})
    out.write(json.dumps({"ok": True}))
except BaseException as err:
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == "<check>"]
    where = f" (line: {frames[-1].line.strip()[:200]})" if frames and frames[-1].line else ""
    message = str(err)[:300]
    out.write(json.dumps({"ok": False, "error": f"{type(err).__name__}{': ' + message if message else ''}{where}"}))
out.flush()
"""

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


def _tail(file: IO[bytes], size: int = 4096) -> str:
    file.seek(0, os.SEEK_END)
    file.seek(max(0, file.tell() - size))
    return file.read().decode("utf-8", "replace")


def _exited(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait until the child exits or ``timeout`` passes; True if it exited (and is reaped).

    A pidfd wakes up the moment the child exits; ``Popen.wait(timeout)`` polls with sleeps of up to 50 ms, a large
    share of a short program's run, so it is only the fallback where pidfds are missing. No helper thread: the
    worker's check for leftover children reads every thread's entry in /proc.
    """
    import select
    import subprocess

    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll(max(0, int(timeout * 1000)))
    finally:
        os.close(fd)
    return proc.poll() is not None


def _run_limited(runner: str, stdin: str, timeout: float, memory_mb: int) -> dict[str, Any]:
    """Run a runner script in a limited child; its process group is killed on timeout so nothing lingers.

    The child's input and output are unlinked temporary files, not pipes: the wait is for the child itself, so a
    process it started that keeps the output open cannot stall the caller until the timeout, and the output is
    bounded by the file-size limit instead of piling up in this process's memory.
    """
    import subprocess  # imported here: most workflows never execute code, and worker start-up time adds up
    import tempfile

    with tempfile.TemporaryDirectory(prefix="w4s-exec-") as cwd, tempfile.TemporaryFile() as given, \
            tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
        given.write(stdin.encode("utf-8", "replace"))
        given.seek(0)
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", runner], stdin=given, stdout=output, stderr=errors, cwd=cwd,
            env={"PATH": os.defpath, "LANG": "C.UTF-8", "HOME": cwd},
            start_new_session=True, preexec_fn=_limit_child(memory_mb, int(timeout) + 1),
        )
        try:
            if not _exited(proc, timeout):
                os.killpg(proc.pid, 9)
                proc.wait()
                raise ExecutionError(f"code execution timed out after {timeout:g} s")
        finally:
            end_group(proc.pid)  # whatever the code forked dies with it, and is reaped by this subreaper
        output.seek(0)
        out, err = output.read().decode("utf-8", "replace"), _tail(errors)
    if not out:
        reason = "ran out of memory" if "MemoryError" in err else f"exited with code {proc.returncode}"
        raise ExecutionError(f"code execution {reason}: {err.strip()[-800:]}")
    return json.loads(out)


def run_check(program: str, timeout: float, memory_mb: int) -> dict[str, Any]:
    """Run a grading program in a limited child: ``{"ok": True}`` or ``{"ok": False, "error": why}``.

    Only the worker's ``check`` operation calls this, in workers that never run workflow code, so a workflow
    cannot tamper with grading.
    """
    try:
        return _run_limited(_CHECK_RUNNER, program, timeout, memory_mb)
    except ExecutionError as err:
        return {"ok": False, "error": str(err)}


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
        result = _run_limited(_EXEC_RUNNER, str(code), timeout, int(self._limits["execute_code_memory_mb"]))
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
        payload = json.dumps({"solution": solution, "tests": tests})
        try:
            return _run_limited(_TEST_RUNNER, payload, float(self._limits["execute_code_timeout"]),
                                int(self._limits["execute_code_memory_mb"]))
        except ExecutionError as err:
            return {"ok": False, "failures": [{"test": "(all)", "error": str(err)}]}
