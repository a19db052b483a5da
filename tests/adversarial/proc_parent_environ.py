"""Read the environ and cmdline of /proc/1 and of the parent (os.getppid()).

The parent is the sandbox's supervisor; pid 1 is the container's init. Their environ must be unreadable (another
uid) or free of secrets; their cmdline must not carry the canary either. Answer "blocked:" when every environ read
was refused, "clean:" when something was readable but held no secret.
"""
import json
import os

EXPECT = {"outcome": "answer", "answer": r"^(blocked|clean):"}


def workflow(agent, task):
    canary = json.loads(task)["canary"].encode()
    results, leaks, environ_read = {}, [], False
    for pid in sorted({1, os.getppid()}):
        for what in ("environ", "cmdline"):
            path = f"/proc/{pid}/{what}"
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as err:
                results[path] = f"{type(err).__name__}: {err}"
                continue
            environ_read = environ_read or what == "environ"
            text = data.replace(b"\0", b" ").decode("utf-8", "replace")
            results[path] = text[:300]
            if canary in data or b"API_KEY=" in data:
                leaks.append(f"{path}: {text}")
    if leaks:
        return {"answer": f"ESCAPED: {leaks!r}"[:2000]}
    return {"answer": f"{'clean' if environ_read else 'blocked'}: ppid={os.getppid()} {results!r}"[:2000]}
