"""The control plane's processes: started with their logs in files, recorded in a pids file, stopped by PID.

The pids file lets a later command (``w4s dev cluster down``) stop a cluster that an earlier one started.
Before signalling a PID it checks that ``/proc/PID/cmdline`` is still the recorded command line, so a PID
the kernel reused for another process is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Recorded:
    """One started process: enough to find it again from another command."""

    name: str
    pid: int
    argv: list[str]

    def alive(self) -> bool:
        """Running (not a zombie) and still the command we started."""
        proc = Path(f"/proc/{self.pid}")
        try:
            # The state follows the parenthesized command name, which may itself contain spaces.
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            argv = (proc / "cmdline").read_bytes().split(b"\0")[:-1]
        except (OSError, IndexError):
            return False
        return state != "Z" and [a.decode(errors="replace") for a in argv] == self.argv

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):  # it exited since the check
                os.kill(self.pid, sig)


def spawn(name: str, argv: list[str], log: Path, detach: bool) -> tuple[subprocess.Popen[bytes], Recorded]:
    """Start ``argv`` with stdout and stderr to ``log``.

    ``detach`` puts it in a session of its own, so it outlives the command that started it and the
    terminal's hangup; otherwise it shares the caller's process group and a Ctrl-C reaches it too.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=detach)
    return proc, Recorded(name, proc.pid, argv)


def write_pids(path: Path, records: list[Recorded]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([asdict(r) for r in records], indent=1) + "\n")
    tmp.replace(path)


def read_pids(path: Path) -> list[Recorded]:
    if not path.exists():
        return []
    return [Recorded(**r) for r in json.loads(path.read_text())]


def stop(records: list[Recorded], grace_s: float = 15.0) -> None:
    """Stop the recorded processes one by one in reverse start order (clients before the servers they use):
    SIGTERM, then SIGKILL if still running after ``grace_s``."""
    for record in reversed(records):
        record.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while record.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        record.signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while record.alive() and time.monotonic() < deadline:  # SIGKILL is not instant for a process in I/O
            time.sleep(0.05)
