"""Busy infinite loop (while True: pass) in the workflow itself.

Containment: the per-sample wall clock kills the sample and reports a timeout.
"""

EXPECT = {"outcome": "error", "error": r"timed out"}


def workflow(agent, task):
    while True:
        pass
