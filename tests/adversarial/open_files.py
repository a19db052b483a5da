"""Open files until something refuses (descriptor exhaustion).

Containment: RLIMIT_NOFILE makes open fail with OSError EMFILE ("Too many open files") after a bounded number;
the workflow closes what it opened and reports the error.
"""
import os

EXPECT = {"outcome": "answer", "answer": r"^blocked: OSError.*Too many open files"}


def workflow(agent, task):
    fds = []
    try:
        while True:
            fds.append(os.open(os.devnull, os.O_RDONLY))
    except OSError as err:
        message = f"blocked: {type(err).__name__}: {err} after {len(fds)} files"
    finally:
        for fd in fds:
            os.close(fd)
    return {"answer": message[:2000]}
