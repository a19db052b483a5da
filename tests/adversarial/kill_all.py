"""os.kill(-1, SIGKILL): SIGKILL every process this one may signal.

Linux (and gVisor) never deliver kill(-1) to the caller itself, so the workflow survives to report. With a uid of
its own and no children yet, the sample can signal nothing else, and the call fails with ProcessLookupError
(ESRCH: no process was signalled). A kill that returns means it reached some other process (a neighbour sample or
the supervisor): an escape, which the harness also sees as the benign samples failing.
"""
import os
import signal

EXPECT = {"outcome": "answer", "answer": r"^blocked: (ProcessLookupError|PermissionError)"}


def workflow(agent, task):
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError as err:
        return {"answer": f"blocked: {type(err).__name__}: {err}"[:2000]}
    return {"answer": "ESCAPED: kill(-1, SIGKILL) reached at least one other process"}
