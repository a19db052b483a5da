"""subprocess.run(["sh", "-c", "cat /proc/1/environ; env"]): what a shell sees of pid 1's and its own environment.

Starting a shell is allowed (execute_code does the same); what it prints must hold no secret. The output goes into
the answer (NULs turned into newlines) so the harness's canary check sees it. "blocked:" if no shell can start.
"""
import json
import subprocess

EXPECT = {"outcome": "answer", "answer": r"^(blocked|clean):"}


def workflow(agent, task):
    canary = json.loads(task)["canary"]
    try:
        proc = subprocess.run(["sh", "-c", "cat /proc/1/environ; env"], capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as err:
        return {"answer": f"blocked: {type(err).__name__}: {err}"[:2000]}
    text = (proc.stdout + b"\n" + proc.stderr).replace(b"\0", b"\n").decode("utf-8", "replace")
    if canary in text or "API_KEY=" in text:
        return {"answer": f"ESCAPED: {text}"[:2000]}
    return {"answer": f"clean: rc={proc.returncode} {text}"[:2000]}
