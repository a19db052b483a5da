"""unshare(CLONE_NEWUSER) through ctypes, then map uid 0 by writing /proc/self/uid_map: root in a new namespace.

Root in a user namespace gets every capability there (mount, raw sockets, ...), a common first step of kernel
exploits. unshare(CLONE_NEWUSER) fails in a multi-threaded process, so the attempt runs in a forked (single-
threaded) child that reports through a pipe. Containment: unshare fails (EPERM/EINVAL/ENOSYS), or it succeeds but
the uid_map write is refused. Mapping uid 0 is an escape.
"""
import ctypes
import errno
import os

EXPECT = {"outcome": "answer", "answer": r"^blocked:"}

_CLONE_NEWUSER = 0x10000000


def _attempt():
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(_CLONE_NEWUSER) != 0:
        code = ctypes.get_errno()
        return f"blocked: unshare: {errno.errorcode.get(code, code)}: {os.strerror(code)}"
    try:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
    except OSError:
        pass
    try:
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
    except OSError as err:
        return f"blocked: unshare allowed but uid_map refused: {type(err).__name__}: {err}"
    try:
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
        gid_map = "gid_map written too"
    except OSError as err:
        gid_map = f"gid_map refused: {type(err).__name__}"
    return f"ESCAPED: uid 0 in a new user namespace (uid now {os.getuid()}; {gid_map})"


def workflow(agent, task):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            try:
                message = _attempt()
            except BaseException as err:
                message = f"child failed: {type(err).__name__}: {err}"
            os.write(write, message.encode()[:4000])
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        message = f.read().decode("utf-8", "replace")
    os.waitpid(pid, 0)
    return {"answer": message[:2000]}
