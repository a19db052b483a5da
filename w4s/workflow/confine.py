"""Keeping a worker's processes contained, short of a real sandbox (the sandbox issue adds gVisor).

- A worker starts in a network namespace of its own (a user namespace too when not root), so it has no network
  at all, not even loopback: its only way to an LLM is the pipe to the runner, which checks and counts the call.
- A worker is a child subreaper: anything it starts, even with ``setsid`` and a double fork, stays below it in
  the process tree, so killing the tree from the top leaves nothing running. A process group kill would miss
  those.

Not covered here: a worker runs as the runner's user, so it can read other same-user processes' ``/proc`` files
(a runner started from a shell that exported a key: the shell's environment). Only a separate user or PID
namespace closes that, which is what the gVisor sandbox provides.

Standard library only: the worker imports this module too (and the model-server launcher its die_with_parent).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_LIBC = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg: int) -> None:
    if _LIBC.prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}, {arg}): {os.strerror(err)}")


def isolate_network() -> None:
    """Pre-exec hook: move the child into a new, empty network namespace. Best effort: where namespaces are not
    allowed the child keeps the host network, and ``shares_network`` lets the runner say so."""
    flags = _CLONE_NEWNET if os.geteuid() == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
    _LIBC.unshare(flags)


def shares_network(pid: int) -> bool:
    """Whether process ``pid`` is in this process's network namespace."""
    return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino


def die_with_parent() -> None:
    """Pre-exec hook: the child gets SIGKILL when the thread that started it dies, even by SIGKILL.

    Not SIGTERM: a model server has nothing to flush, and uvicorn's graceful SIGTERM shutdown waits for the
    generation in flight, which on a loaded CPU kept an orphaned server busy for minutes (measured).
    """
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def become_subreaper() -> None:
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def descendants(pid: int) -> list[int]:
    """All processes below ``pid`` in the process tree (from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):  # os, not pathlib: this runs in every worker and pathlib is slow to import
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(name))
    found, frontier = [], [pid]
    while frontier:
        nxt = [c for p in frontier for c in children.get(p, [])]
        found += nxt
        frontier = nxt
    return found


def _kill_descendants(pid: int) -> None:
    """SIGKILL everything below ``pid``. Repeats while new descendants appear, since a process may fork between
    the scan and the kill."""
    for _ in range(5):
        below = descendants(pid)
        if not below:
            return
        for child in below:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGKILL)


def kill_tree(pid: int) -> None:
    """SIGKILL everything below ``pid``, then ``pid`` itself."""
    _kill_descendants(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def reap_orphans() -> None:
    """Collect exited processes re-parented to this subreaper, so they do not linger as zombies."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def end_group(pgid: int, timeout: float = 2.0) -> None:
    """SIGKILL a process group and wait until it is gone, reaping members re-parented to this subreaper.

    SIGKILL is delivered asynchronously: without the wait, a member may still exist (or be an unreaped zombie)
    when the caller goes on.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap_orphans()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.002)


def _has_children() -> bool:
    """Cheap check before a full /proc scan: a subreaper with no children has no descendants at all."""
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                if f.read().strip():
                    return True
        except FileNotFoundError:  # the thread ended between the listing and the open
            continue
    return False


def kill_strays() -> None:
    """Kill and reap whatever this process still has running below it (called between samples)."""
    if not _has_children():
        return
    _kill_descendants(os.getpid())
    reap_orphans()
