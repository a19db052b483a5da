"""A sandbox worker: ``python -I -m w4s.workflow.worker [--listen HOST:PORT] [--spares N]``.

It runs inside the sandbox (a gVisor container locally or a gVisor pod in a cluster; a plain process where
neither exists) and never runs job code itself. Every job gets a fresh child forked ahead of time (forking
under gVisor's ptrace platform costs about 20 ms, so spares are forked while the worker is idle and a job
starts in well under a millisecond). Where the worker runs as root (always inside gVisor) each child drops to
a uid of its own, so one sample cannot signal, trace or read another, or the worker, and the process limit
counts that sample's processes only; the child also loses every capability and gets its own working directory.

The worker enforces the per-sample wall clock and the output limit, kills everything a sample left running,
and reports each sample's result as soon as everything that sample started is stopped, so nothing a sample
started outlives its result, and one sample's failure never costs another its result.

Protocol: JSON lines over stdin/stdout (or one TCP connection at a time with ``--listen``).
  runner -> worker  {"op": "run", "jobs": [{"id", "code", "task", "context", "token"}
                                          | {"id", "kind": "check", "program", "limits": {...}}], "limits": {...}}
  worker -> runner  {"op": "ready", "pid", "uid_isolation"}
  worker -> runner  {"op": "result", "id", "ok", "answer", "error": {"type", "message", "traceback"} | null,
                     "wall_s"}
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import itertools
import json
import os
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from w4s.workflow import confine, sample
from w4s.workflow.helper_api import file_tail

# Imported before any fork, so samples start with them loaded (and can use them even where the Python
# installation is not readable by the samples' uids, as under a 0700 /root in the plain-process backend).
_PRELOAD = ("subprocess", "tempfile", "select", "re", "math", "random", "collections", "itertools", "functools",
            "statistics", "string", "textwrap", "typing", "dataclasses", "heapq", "bisect", "operator", "fractions",
            "decimal", "datetime", "copy", "ast", "hashlib", "concurrent.futures", "threading", "unicodedata",
            # a gateway reached by host name (a cluster's gateway Service) encodes it with IDNA
            "http.client", "encodings.idna")
_UID_RANGE = 1000  # uids a worker cycles through; each worker on a host needs a range of its own
_LOG_TAIL = 1500


@dataclass
class _Child:
    pid: int
    uid: int | None
    workdir: str
    job_fd: int  # write end; closed once the job is sent
    result_fd: int
    job_id: Any = None
    started: float = 0.0
    deadline: float = 0.0
    limit: int = 0  # output limit in bytes
    buffer: bytearray = field(default_factory=bytearray)
    reaped: bool = False


def _drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)  # from root to another uid: every capability goes too


class Supervisor:
    def __init__(self, conn_in: int, conn_out: int, spares: int, base_dir: str, uid_base: int) -> None:
        self._in = conn_in
        self._out = conn_out
        self._spare_target = spares
        self._base = base_dir
        self.uid_isolation = os.geteuid() == 0
        self._uids = itertools.cycle(range(uid_base, uid_base + _UID_RANGE))
        self._serial = itertools.count()
        self._spares: list[_Child] = []
        self._running: dict[int, _Child] = {}  # by pid, until reaped
        self._by_fd: dict[int, _Child] = {}
        self._inbuf = b""
        self._sel = selectors.DefaultSelector()
        self._wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd sees SIGCHLD
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._sel.register(self._in, selectors.EVENT_READ, "in")

    # -- children ------------------------------------------------------------------------------------------
    def _fork(self) -> _Child:
        uid = next(self._uids) if self.uid_isolation else None
        workdir = os.path.join(self._base, str(next(self._serial)))
        os.mkdir(workdir, 0o700)
        if uid is not None:
            os.chown(workdir, uid, uid)
        job_r, job_w = os.pipe2(os.O_CLOEXEC)
        result_r, result_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's side, exercised through the sandbox tests
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                confine.die_with_parent()
                keep = sorted((job_r, result_w))
                os.closerange(3, keep[0])
                os.closerange(keep[0] + 1, keep[1])
                os.closerange(keep[1] + 1, 1 << 20)
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                os.close(devnull)
                if uid is not None:
                    _drop_privileges(uid)
                confine.no_new_privileges()
                os.set_inheritable(result_w, False)
            except BaseException:
                os._exit(71)
            sample.serve_job(job_r, result_w, workdir, uid is not None)
        os.close(job_r)
        os.close(result_w)
        os.set_blocking(result_r, False)
        return _Child(pid, uid, workdir, job_w, result_r)

    def _start(self, job: dict[str, Any], limits: dict[str, Any]) -> None:
        child = self._spares.pop() if self._spares else self._fork()
        now = time.monotonic()
        job_limits = {**limits, **job.get("limits", {})}
        child.job_id, child.started = job.get("id"), now
        child.deadline = now + float(job_limits["timeout"])
        child.limit = int(job_limits["max_output_bytes"])
        data = json.dumps({"job": job, "limits": limits}).encode()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(child.job_fd, view):]
        except OSError:
            pass  # the child died before reading: its exit is reported like any other
        os.close(child.job_fd)
        child.job_fd = -1
        self._running[child.pid] = child
        self._by_fd[child.result_fd] = child
        self._sel.register(child.result_fd, selectors.EVENT_READ, "result")

    def _end(self, child: _Child, ok: bool, answer: Any = None, error: dict[str, Any] | None = None) -> None:
        """The sample is over: stop everything it started, then report it, so that nothing a sample started
        outlives its result (and its token, which the runner revokes on the result)."""
        if child.pid not in self._running:
            return
        del self._running[child.pid]
        self._unregister(child)
        if not child.reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, 0)
        if child.uid is not None:
            confine.kill_uid(child.uid)
        else:  # whatever was left orphaned below this subreaper
            known = {c.pid for c in self._spares} | set(self._running)
            for orphan in confine.children(os.getpid()):
                if orphan not in known:
                    confine.kill_tree(orphan)
        self._send({"op": "result", "id": child.job_id, "ok": ok, "answer": answer, "error": error,
                    "wall_s": round(time.monotonic() - child.started, 4)})
        shutil.rmtree(child.workdir, ignore_errors=True)

    def _fail(self, child: _Child, kind: str, message: str) -> None:
        self._end(child, False, error={"type": kind, "message": message, "traceback": ""})

    def _read_result(self, child: _Child) -> None:
        while child.result_fd >= 0:
            try:
                chunk = os.read(child.result_fd, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:  # the child closed it without a whole result: its exit status tells why
                self._unregister(child)
                return
            child.buffer += chunk
            if len(child.buffer) > child.limit + sample.FRAME.size:
                self._fail(child, "OutputLimit", f"the workflow's result is larger than the sandbox's output "
                                                 f"limit of {child.limit} bytes")
                return
            if len(child.buffer) >= sample.FRAME.size:
                (size,) = sample.FRAME.unpack_from(child.buffer)
                if len(child.buffer) >= sample.FRAME.size + size:
                    try:
                        result = json.loads(bytes(child.buffer[sample.FRAME.size:sample.FRAME.size + size]))
                        self._end(child, bool(result.get("ok")), result.get("answer"), result.get("error"))
                    except (ValueError, AttributeError):
                        self._fail(child, "ProtocolError", "the workflow process sent a malformed result")
                    return

    def _unregister(self, child: _Child) -> None:
        if child.result_fd >= 0:
            self._sel.unregister(child.result_fd)
            del self._by_fd[child.result_fd]
            os.close(child.result_fd)
            child.result_fd = -1

    def _log_tail(self, child: _Child) -> str:
        with contextlib.suppress(OSError), open(os.path.join(child.workdir, "output.log"), "rb") as log:
            return file_tail(log, _LOG_TAIL).strip()
        return ""

    def _exited(self, child: _Child, status: int) -> None:
        """The child was reaped before it was ended: take a result it sent just before, else report the exit."""
        child.reaped = True
        self._read_result(child)
        if child.pid in self._running:
            how = (f"was killed by signal {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status)
                   else f"exited with code {os.WEXITSTATUS(status)}")
            tail = self._log_tail(child)
            self._fail(child, "WorkflowCrashed", f"the workflow process {how} before returning a result"
                                                 + (f"; its last output:\n{tail}" if tail else ""))

    def _reap(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self._running.get(pid)
            if child is not None:
                self._exited(child, status)
                continue
            spare = next((c for c in self._spares if c.pid == pid), None)
            if spare is not None:  # should not happen; the next job gets a fresh one
                self._spares.remove(spare)
                os.close(spare.job_fd)
                os.close(spare.result_fd)
                shutil.rmtree(spare.workdir, ignore_errors=True)

    def _expire(self) -> None:
        now = time.monotonic()
        for child in list(self._running.values()):
            if now >= child.deadline:
                self._fail(child, "Timeout", f"the sample timed out after {child.deadline - child.started:g} s "
                                             "(sandbox.sampleTimeoutSeconds)")

    # -- protocol ------------------------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message, default=str) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self._out, view):]

    def _read_input(self) -> bool:
        """Read commands; False when the runner has gone."""
        try:
            chunk = os.read(self._in, 1 << 20)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            return False
        self._inbuf += chunk
        *lines, self._inbuf = self._inbuf.split(b"\n")
        for line in lines:
            if line.strip():
                message = json.loads(line)
                if message.get("op") == "run":
                    for job in message["jobs"]:
                        self._start(job, message["limits"])
        return True

    def serve(self) -> None:
        """Serve one runner until it closes the connection."""
        os.set_blocking(self._in, False)
        self._send({"op": "ready", "pid": os.getpid(), "uid_isolation": self.uid_isolation})
        while True:
            deadlines = [c.deadline for c in self._running.values()]
            # A fork stalls this loop for ~20 ms under gVisor, so spares are forked while no sample waits on it
            # for its result, unless none is left at all.
            idle_work = len(self._spares) < self._spare_target and (not self._running or not self._spares)
            timeout = 0.0 if idle_work else None
            if deadlines:
                wait = max(0.0, min(deadlines) - time.monotonic())
                timeout = wait if timeout is None else min(timeout, wait)
            events = self._sel.select(timeout)
            for key, _ in events:
                if key.data == "in":
                    if not self._read_input():
                        return
                elif key.data == "wake":
                    self._reap()
                else:
                    child = self._by_fd.get(key.fd)
                    if child is not None:  # not unregistered earlier in this batch
                        self._read_result(child)
            self._reap()
            self._expire()
            if not events and idle_work:
                self._spares.append(self._fork())

    def close(self) -> None:
        for child in [*self._running.values(), *self._spares]:
            confine.kill_tree(child.pid)
            if child.uid is not None:
                confine.kill_uid(child.uid)
        for fd in {c.result_fd for c in self._running.values()} | {c.result_fd for c in self._spares}:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        confine.reap_orphans()
        shutil.rmtree(self._base, ignore_errors=True)


def _base_dir() -> str:
    base = tempfile.mkdtemp(prefix="w4s-samples-")
    os.chmod(base, 0o711)  # children reach their own directory, but cannot list the others
    return base


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="w4s.workflow.worker")
    parser.add_argument("--listen", help="serve runners over TCP on HOST:PORT instead of stdin/stdout")
    parser.add_argument("--spares", type=int, default=4, help="children forked ahead of jobs")
    parser.add_argument("--uid-base", type=int, default=20000,
                        help=f"first of the {_UID_RANGE} uids handed to samples (distinct per worker on one host)")
    args = parser.parse_args(argv)
    for module in _PRELOAD:
        importlib.import_module(module)
    gc.freeze()  # keep the preloaded objects out of the children's collections (fewer copy-on-write faults)
    confine.become_subreaper()
    if args.listen:
        host, _, port = args.listen.rpartition(":")
        server = socket.create_server((host or "0.0.0.0", int(port)))
        while True:
            conn, _ = server.accept()
            supervisor = Supervisor(conn.fileno(), conn.fileno(), args.spares, _base_dir(), args.uid_base)
            try:
                supervisor.serve()
            finally:
                supervisor.close()
                conn.close()
    conn_in, conn_out = os.dup(0), os.dup(1)
    os.set_inheritable(conn_in, False)
    os.set_inheritable(conn_out, False)
    # fd 0 becomes an empty pipe of this (root) process: unlike /dev/null, a sample cannot reopen it through
    # /proc/1/fd/0, and nothing of the protocol is left on a low, guessable descriptor.
    empty, closed = os.pipe()
    os.dup2(empty, 0)
    os.close(empty)
    os.close(closed)
    os.dup2(2, 1)  # stray prints cannot corrupt the protocol
    supervisor = Supervisor(conn_in, conn_out, args.spares, _base_dir(), args.uid_base)
    try:
        supervisor.serve()
    finally:
        supervisor.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
