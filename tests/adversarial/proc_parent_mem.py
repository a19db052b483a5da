"""Open /proc/<ppid>/mem of the parent and read its memory (looking for the canary in its heap).

Containment: opening the parent's mem (and maps) is refused, since it belongs to another uid and this process has
no CAP_SYS_PTRACE. Merely opening it is already an escape.
"""
import json
import os

EXPECT = {"outcome": "answer", "answer": r"^blocked:"}


def workflow(agent, task):
    canary = json.loads(task)["canary"].encode()
    ppid = os.getppid()
    try:
        mem = open(f"/proc/{ppid}/mem", "rb", buffering=0)  # noqa: SIM115 (closed by the with below)
    except OSError as err:
        return {"answer": f"blocked: {type(err).__name__}: {err}"[:2000]}
    found, read = False, 0
    with mem:
        try:
            with open(f"/proc/{ppid}/maps") as f:
                maps = f.read().splitlines()
        except OSError as err:
            return {"answer": f"ESCAPED: opened /proc/{ppid}/mem (maps refused: {type(err).__name__})"}
        for line in maps:
            span, perms = line.split()[:2]
            if not perms.startswith("r"):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(start)
                chunk = mem.read(min(end - start, 16 * 2**20))
            except (OSError, OverflowError, ValueError):
                continue
            read += len(chunk)
            if canary in chunk:
                found = True
                break
    return {"answer": f"ESCAPED: opened /proc/{ppid}/mem, read {read} bytes, canary found={found}"}
