"""Slow memory bomb: keep appending 100 MB chunks (written, so the pages are really touched), uncaught.

Containment: the memory limit stops it, either as MemoryError inside the workflow (RLIMIT_AS) or by killing the
process (cgroup / OOM killer), which the sandbox must report as an error. Never returns on its own.
"""

EXPECT = {"outcome": "error", "error": r"MemoryError|memory|killed"}


def workflow(agent, task):
    chunks = []
    while True:
        chunks.append(b"\xa5" * (100 * 2**20))
