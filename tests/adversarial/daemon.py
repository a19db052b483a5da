"""Start a daemon: double fork + setsid, ignore SIGHUP/SIGTERM, keep the inherited descriptors, sleep forever.

The workflow returns as soon as the intermediate child has exited. Containment: the answer comes back promptly
(the daemon holding descriptors must not stall the result), and the sandbox kills the daemon when the sample ends;
the harness checks separately that no process of the sample outlives it.
"""
import os
import signal
import time

EXPECT = {"outcome": "answer", "answer": r"^daemon started"}


def workflow(agent, task):
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                while True:
                    time.sleep(3600)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return {"answer": "daemon started"}
