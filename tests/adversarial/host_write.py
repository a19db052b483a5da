"""Create task["host_write_path"], a path in a host temp directory that must never come into existence.

Containment: the host directory does not exist in the sandbox (FileNotFoundError) or is read-only. The harness
checks on the host that the file was not created, whatever this workflow reports.
"""
import json
import os

EXPECT = {"outcome": "answer", "answer": r"^blocked:"}


def workflow(agent, task):
    path = json.loads(task)["host_write_path"]
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as err:
        return {"answer": f"blocked: {type(err).__name__}: {err}"[:2000]}
    os.write(fd, b"ESCAPED: written from a sandboxed workflow\n")
    os.close(fd)
    return {"answer": f"ESCAPED: created {path}"}
