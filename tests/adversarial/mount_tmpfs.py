"""mount(2) through ctypes: mount a tmpfs on a directory in the workdir (needs CAP_SYS_ADMIN).

Containment: EPERM. A mount that succeeds is unmounted and reported.
"""
import ctypes
import errno
import os

EXPECT = {"outcome": "answer", "answer": r"^blocked:"}


def workflow(agent, task):
    target = os.path.abspath("mnt")
    os.makedirs(target, exist_ok=True)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"none", target.encode(), b"tmpfs", ctypes.c_ulong(0), None) != 0:
        code = ctypes.get_errno()
        return {"answer": f"blocked: {errno.errorcode.get(code, code)}: {os.strerror(code)}"}
    libc.umount2(target.encode(), 2)
    return {"answer": f"ESCAPED: mounted tmpfs on {target}"}
