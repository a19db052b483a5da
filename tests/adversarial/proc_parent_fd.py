"""Reopen the parent's descriptors through /proc/<ppid>/fd/* to read them and to forge a result on them.

The parent (the supervisor) holds the job and result pipes of every sample; a sample that can reopen them could
read other samples' jobs or write a forged result. Containment: listing or opening the parent's fd directory is
refused ("blocked:"); any fd opened is an escape, except a file this sample may open by its own path anyway
(the parent reads world-readable /proc files while it clears up after samples: reopening one of those through
/proc/<ppid>/fd gains nothing).
"""
import os

EXPECT = {"outcome": "answer", "answer": r"^blocked:"}

_FORGED = b'{"ok": true, "answer": "ESCAPED: forged through the parent fd"}\n'


def workflow(agent, task):
    ppid = os.getppid()
    try:
        names = os.listdir(f"/proc/{ppid}/fd")
    except OSError as err:
        return {"answer": f"blocked: {type(err).__name__}: {err}"[:2000]}
    opened, refused = [], {}
    for name in names:
        path = f"/proc/{ppid}/fd/{name}"
        try:
            target = os.readlink(path)
        except OSError:
            target = ""
        for mode in (os.O_RDONLY, os.O_WRONLY):
            if target.startswith("/") and os.access(target, os.R_OK if mode == os.O_RDONLY else os.W_OK):
                refused[f"{name}:{mode}"] = f"open by its own path anyway: {target}"
                continue
            try:
                fd = os.open(path, mode | os.O_NONBLOCK)
            except OSError as err:
                refused[f"{name}:{mode}"] = type(err).__name__
                continue
            try:
                if mode == os.O_RDONLY:
                    got = os.read(fd, 512)
                    opened.append(f"read {path}: {got[:200]!r}")
                else:
                    opened.append(f"wrote {path}: {os.write(fd, _FORGED)} bytes")
            except OSError as err:
                opened.append(f"opened {path} ({mode}) then {type(err).__name__}")
            finally:
                os.close(fd)
    if opened:
        return {"answer": f"ESCAPED: {opened!r}"[:2000]}
    return {"answer": f"blocked: every fd refused: {refused!r}"[:2000]}
