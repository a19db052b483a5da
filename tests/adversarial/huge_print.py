"""Print 200 MB to stdout, uncaught.

The sample's stdout and stderr go to a log file in its workdir, bounded by RLIMIT_FSIZE with SIGXFSZ ignored, so
the write fails with OSError EFBIG ("File too large", which the sandbox annotates with its output limit). The
regex also takes an "output ... limit/too large" message in case the cap is enforced by the reader instead. It
leaves out "timed out": 200 MB is written in well under a second, so a timeout would mean the writer was left
blocked on a full pipe, which is not the intended containment.
"""
import sys

EXPECT = {"outcome": "error", "error": r"File too large|EFBIG|output"}


def workflow(agent, task):
    line = "x" * (2**20 - 1)
    for _ in range(200):
        print(line)
    sys.stdout.flush()
    return {"answer": "ESCAPED: printed 200 MB without being stopped"}
