"""What every bench table prints about the machine it ran on: the numbers mean little without it."""

from __future__ import annotations

import os
import platform


def machine_lines(extra: tuple[str, ...] = ()) -> list[str]:
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [f"machine: {cores} cores ({usable} usable by this process), load average {load} (shared machine: "
            "other processes may use the cores)", *extra,
            f"python {platform.python_version()}, {platform.system()} {platform.release()}"]
