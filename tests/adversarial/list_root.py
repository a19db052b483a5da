"""List / and check whether the host's temp directory (the one holding task["canary_file"]) is visible.

Containment: the sandbox has its own root filesystem, so neither the canary file's directory nor the directory of
task["host_write_path"] exists in it. The answer carries the listing of / for the record.
"""
import json
import os

EXPECT = {"outcome": "answer", "answer": r"^blocked:"}

# Directories every root filesystem has: their presence says nothing about the host (the file itself is checked).
_COMMON = {"/", "/tmp", "/var/tmp", "/dev/shm", "/root", "/home", "/run"}


def workflow(agent, task):
    t = json.loads(task)
    try:
        root = sorted(os.listdir("/"))
    except OSError as err:
        root = [f"({type(err).__name__})"]
    dirs = {os.path.dirname(t["canary_file"]), os.path.dirname(t["host_write_path"])} - _COMMON
    visible = [d for d in sorted(dirs) if os.path.exists(d)]
    if visible or os.path.exists(t["canary_file"]):
        listing = {}
        for d in visible:
            try:
                listing[d] = sorted(os.listdir(d))[:50]
            except OSError as err:
                listing[d] = type(err).__name__
        return {"answer": f"ESCAPED: host dirs visible: {listing!r}; / = {root}"[:2000]}
    return {"answer": f"blocked: host dirs not visible; / = {root}"[:2000]}
