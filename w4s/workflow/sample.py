"""One sample in its own process: what a pre-forked child does once the supervisor hands it a job.

By the time code from a job runs here, the child has dropped to a uid of its own, lost every capability, set its
limits and closed every descriptor except its result pipe, so whatever the code does (fork, kill, ptrace, open
/proc) only reaches its own processes. The result goes back length-prefixed, so the supervisor can stop reading
at the output limit instead of trusting the child to stop writing.
"""

from __future__ import annotations

import errno
import json
import linecache
import os
import resource
import signal
import struct
import tempfile
import traceback
from typing import Any

from w4s.workflow.gateway_client import GatewayClient
from w4s.workflow.helper_api import Agent

_CODE_NAME = "<workflow>"
_CHECK_NAME = "<check>"
FRAME = struct.Struct(">Q")


def apply_limits(limits: dict[str, Any], own_uid: bool) -> None:
    """Lower this process's limits; the process limit only where the uid is the sample's alone, since it counts
    every process of the uid."""
    mb = 1024 * 1024
    settings = [(resource.RLIMIT_AS, int(limits["memory_mb"]) * mb),
                (resource.RLIMIT_FSIZE, int(limits["max_file_mb"]) * mb),
                (resource.RLIMIT_NOFILE, int(limits["max_open_files"])),
                (resource.RLIMIT_CORE, 0)]
    if own_uid:
        settings.append((resource.RLIMIT_NPROC, int(limits["max_processes"])))
    for kind, value in settings:
        resource.setrlimit(kind, (value, value))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails with EFBIG instead of killing


def error_info(err: BaseException, code_name: str, limits: dict[str, Any]) -> dict[str, Any]:
    """Type, message and the failing lines of the generated code only: enough for the meta-agent to fix it."""
    message = str(err)
    if isinstance(err, OSError) and err.errno == errno.EFBIG:
        message += f" (the sandbox limits files and printed output to {limits['max_file_mb']} MB)"
    elif isinstance(err, MemoryError):
        message = message or f"out of memory (the sandbox allows {limits['memory_mb']} MB per sample)"
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == code_name]
    lines = [f"  at line {f.lineno}: {(f.line or '').strip()[:200]}" for f in frames[-3:]]
    return {"type": type(err).__name__, "message": message[:2000], "traceback": "\n".join(lines)}


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def run_workflow(job: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    code = job["code"]
    try:
        linecache.cache[_CODE_NAME] = (len(code), None, code.splitlines(True), _CODE_NAME)
        namespace: dict[str, Any] = {"__name__": "__workflow__"}
        exec(compile(code, _CODE_NAME, "exec"), namespace)
        workflow = namespace.get("workflow")
        if not callable(workflow):
            raise NameError("the code must define a function workflow(agent, task) -> dict")
        llm = GatewayClient(limits["gateway"], job["token"], float(limits["llm_timeout"]))
        agent = Agent(llm, job.get("context") or {}, limits)
        result = workflow(agent, job["task"])
        if not isinstance(result, dict) or "answer" not in result:
            raise TypeError(f"workflow must return a dict with the key 'answer', got {type(result).__name__}"
                            + (f" with keys {sorted(map(str, result))}" if isinstance(result, dict) else ""))
        return {"ok": True, "answer": _jsonable(result["answer"])}
    except BaseException as err:  # the workflow's failure is data for the meta-agent
        return {"ok": False, "error": error_info(err, _CODE_NAME, limits)}


def run_check(job: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    """A grading program (an answer's code and its hidden tests) passes when it runs to the end."""
    program = job["program"]
    linecache.cache[_CHECK_NAME] = (len(program), None, program.splitlines(True), _CHECK_NAME)
    try:
        exec(compile(program, _CHECK_NAME, "exec"), {"__name__": "__main__"})
        return {"ok": True}
    except BaseException as err:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == _CHECK_NAME]
        where = f" (line: {frames[-1].line.strip()[:200]})" if frames and frames[-1].line else ""
        message = str(err)[:300]
        return {"ok": False, "error": {"type": type(err).__name__, "traceback": "",
                                       "message": f"{type(err).__name__}{': ' + message if message else ''}{where}"}}


def serve_job(job_fd: int, result_fd: int, workdir: str, own_uid: bool) -> None:
    """Body of a pre-forked child: wait for the job, run it, send the result, exit. Never returns."""
    status = 0
    try:
        with os.fdopen(job_fd, "rb") as source:
            message = json.loads(source.read())
        job, limits = message["job"], message["limits"]
        os.chdir(workdir)
        tempfile.tempdir = workdir  # the worker resolved it before the fork
        os.environ.clear()
        os.environ.update({"HOME": workdir, "TMPDIR": workdir, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        log = os.open(os.path.join(workdir, "output.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        apply_limits({**limits, **job.get("limits", {})}, own_uid)
        result = (run_check if job.get("kind") == "check" else run_workflow)(job, limits)
        data = json.dumps(result, default=str).encode()
        os.write(result_fd, FRAME.pack(len(data)))
        view = memoryview(data)
        while view:
            view = view[os.write(result_fd, view):]
    except BaseException:
        status = 70
    os._exit(status)
