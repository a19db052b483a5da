"""Thread bomb: start sleeping threads (small stacks) until something refuses.

Threads count against RLIMIT_NPROC like processes, and their stacks against RLIMIT_AS. Containment: starting a
thread fails (RuntimeError "can't start new thread", or MemoryError/OSError) and the workflow reports it; the
threads die with the sample's process.
"""
import threading
import time

EXPECT = {"outcome": "answer", "answer": r"^blocked: (RuntimeError|MemoryError|OSError|BlockingIOError)"}


def workflow(agent, task):
    threading.stack_size(128 * 1024)
    count = 0
    try:
        while True:
            threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
            count += 1
    except (RuntimeError, MemoryError, OSError) as err:
        return {"answer": f"blocked: {type(err).__name__}: {err} after {count} threads"[:2000]}
