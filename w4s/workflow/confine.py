"""Process-level containment used by sandbox workers, inside gVisor and in the plain-process backend alike.

- A plain-process worker starts in a network namespace of its own (a user namespace too when not root), so its
  only way out is the gateway's unix socket.
- A worker is a child subreaper: anything it starts, even with ``setsid`` and a double fork, stays below it in
  the process tree, so killing the tree from the top leaves nothing running. A process group kill would miss
  those.
- Each sample runs under a uid of its own where the worker is root, so "everything that sample started" is
  simply every process of that uid.

Standard library only: the worker imports this module too (and the model-server launcher its die_with_parent).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
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


def no_new_privileges() -> None:
    """No exec can gain privileges again (setuid binaries, file capabilities)."""
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _live_uid(pid: int) -> int | None:
    """The real uid of a live process; None for a zombie (killing it again changes nothing) or a gone one."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("State:") and line.split()[1] == "Z":
                    return None
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _kill_all(find: Callable[[], list[int]]) -> None:
    """SIGKILL every process ``find`` lists, again while it lists any: one may fork between the scan and the
    kill."""
    for _ in range(10):
        victims = find()
        if not victims:
            return
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid``."""
    _kill_all(lambda: [pid for pid in _pids() if _live_uid(pid) == uid])


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (all its threads')."""
    found: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(c) for c in f.read().split()]
        except FileNotFoundError:  # the thread ended between the listing and the open
            continue
    return found


def descendants(pid: int) -> list[int]:
    """All processes below ``pid`` in the process tree (from /proc), deepest last."""
    tree: dict[int, list[int]] = {}
    for pid_ in _pids():  # os, not pathlib: this runs in every worker and pathlib is slow to import
        try:
            with open(f"/proc/{pid_}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(pid_)
    found, frontier = [], [pid]
    while frontier:
        nxt = [c for p in frontier for c in tree.get(p, [])]
        found += nxt
        frontier = nxt
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL everything below ``pid``, then ``pid`` itself."""
    _kill_all(lambda: descendants(pid))
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
