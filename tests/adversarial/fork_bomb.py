"""Fork bomb: os.fork() forever; every child sleeps an hour (the worst case: nothing exits on its own).

Containment: RLIMIT_NPROC (the sample's uid is its own) makes fork fail with BlockingIOError (EAGAIN) after a
bounded number of children; the workflow reports that. The sandbox must then kill the sleeping children when the
sample ends (the harness checks nothing outlives it).
"""
import os
import time

EXPECT = {"outcome": "answer", "answer": r"^blocked: (BlockingIOError|OSError|MemoryError)"}


def workflow(agent, task):
    count = 0
    try:
        while True:
            pid = os.fork()
            if pid == 0:
                try:
                    time.sleep(3600)
                finally:
                    os._exit(0)
            count += 1
    except (OSError, MemoryError) as err:
        return {"answer": f"blocked: {type(err).__name__}: {err} after {count} children"[:2000]}
