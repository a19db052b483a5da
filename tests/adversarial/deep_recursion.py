"""sys.setrecursionlimit(10**9) and recurse without end, uncaught.

With the guard lifted, the recursion runs until the C stack overflows (SIGSEGV, reported as a crash/signal) or,
on Python 3.11+ where Python-to-Python calls do not use the C stack, until the frames exhaust memory
(MemoryError under RLIMIT_AS) or a newer interpreter's own C-stack guard raises RecursionError. Any of these,
reported as the sample's error, is containment; so is the sample wall clock, which under gVisor can come first
(formatting millions of frames for the error is slow). The regex lists them.
"""
import sys

EXPECT = {"outcome": "error",
          "error": r"RecursionError|MemoryError|memory|segmentation|signal|killed|crash|timed out"}


def _down(n):
    return _down(n + 1) + 1


def workflow(agent, task):
    sys.setrecursionlimit(10**9)
    return {"answer": f"ESCAPED: recursion returned {_down(0)}"}
