"""kube-apiserver and kube-controller-manager, built once from the published Go module into the user's cache.

Kubernetes ships no apt or pip package for its control plane, and downloading release binaries would need a
site of its own; `go build` of the pinned module (``kube/go.mod``; ``go.sum`` fixes every dependency's hash)
needs only Go and its module proxy, and gives the same commands. The build goes to
``~/.cache/w4s/kube/<version>-<hash>/bin`` (the hash is of go.mod, go.sum and the link flags), so a change of
the pins builds afresh and two checkouts with the same pins share one build.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

from w4s.errors import W4SError

COMMANDS = ("kube-apiserver", "kube-controller-manager")
MIN_GO = "1.24"
# Measured: both commands, modules already downloaded, 2 cores: 5.7 min.
COLD_BUILD_MINUTES = 6
_MODULE_FILES = ("go.mod", "go.sum", "tools.go")


def _module_dir() -> Path:
    """The wrapper module's files: in the source tree or the installed package (package data, a real dir)."""
    return Path(str(files("w4s.devcluster").joinpath("kube")))


def kube_version() -> str:
    """The k8s.io/kubernetes version that go.mod requires (the one place it is pinned)."""
    found = re.search(r"^require k8s\.io/kubernetes (v[0-9.]+)$", (_module_dir() / "go.mod").read_text(), re.M)
    if found is None:
        raise W4SError(f"{_module_dir() / 'go.mod'} does not require k8s.io/kubernetes on one line")
    return found.group(1)


def ldflags(version: str) -> str:
    """Strip debug info, and stamp the version as a release build does (hack/lib/version.sh): a plain
    `go build` reports v0.0.0-master, which clients print and the servers' compatibility logic reads."""
    major, minor, _ = version.removeprefix("v").split(".")
    stamps = (("gitVersion", version), ("gitMajor", major), ("gitMinor", minor), ("gitTreeState", "clean"))
    return " ".join(["-s", "-w", *(f"-X k8s.io/{package}/version.{var}={value}"
                                   for package in ("component-base", "client-go/pkg") for var, value in stamps)])


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/w4s/kube`` (default ``~/.cache/w4s/kube``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "w4s" / "kube"


def build_dir() -> Path:
    """Where the binaries of the current pins live: the version plus a hash of go.mod, go.sum and the link
    flags (a change of any of them builds afresh)."""
    version = kube_version()
    digest = hashlib.sha256(ldflags(version).encode())
    for name in ("go.mod", "go.sum"):
        digest.update((_module_dir() / name).read_bytes())
    return cache_root() / f"{version}-{digest.hexdigest()[:12]}"


def find_go() -> str:
    """The ``go`` command: on PATH, or the official tarball's usual place."""
    found = shutil.which("go") or shutil.which("/usr/local/go/bin/go")
    if found is None:
        raise W4SError(f"building the local Kubernetes control plane needs Go >= {MIN_GO} (the `go` command), "
                       f"which is not on PATH: install it (the official Go tarball into /usr/local/go, with "
                       f"/usr/local/go/bin on PATH)")
    return found


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Serialize builds between processes: two test sessions starting at once should not both compile."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(go: str, version: str, final: Path, log: Callable[[str], None]) -> None:
    """Build into a temporary directory next to ``final`` and rename it, so a half-built one is never used.

    The module files are copied out first: an installed package may be read-only, and the build must not
    touch a checkout's go.mod or go.sum (``-mod=readonly`` fails instead of editing them).
    """
    build_log = final.parent / f"{final.name}.build.log"
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent))
    try:
        src = work / "src"
        src.mkdir()
        for name in _MODULE_FILES:
            shutil.copyfile(_module_dir() / name, src / name)
        env = os.environ | {"CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
        cmd = [go, "build", "-trimpath", f"-ldflags={ldflags(version)}", "-o", str(work / "bin") + "/",
               *(f"k8s.io/kubernetes/cmd/{name}" for name in COMMANDS)]
        started = time.monotonic()
        with build_log.open("wb") as out:
            result = subprocess.run(cmd, cwd=src, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            raise W4SError(f"building kube {version} failed (exit {result.returncode}; log {build_log}):\n"
                           + "\n".join(build_log.read_text(errors="replace").splitlines()[-30:]))
        shutil.rmtree(src)
        shutil.rmtree(final, ignore_errors=True)  # an incomplete earlier result (a binary deleted by hand)
        work.rename(final)
        log(f"built kube {version} in {time.monotonic() - started:.0f}s into {final / 'bin'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_binaries(log: Callable[[str], None]) -> Path:
    """The ``bin`` directory holding ``COMMANDS``, building them first when this version is not cached.

    ``log`` gets progress lines (a cold build takes minutes). A failed build raises W4SError with the end of
    its log; the whole log stays next to the build directory.
    """
    final = build_dir()
    if all((final / "bin" / name).is_file() for name in COMMANDS):
        return final / "bin"
    go = find_go()
    with _locked(final.parent):
        if not all((final / "bin" / name).is_file() for name in COMMANDS):  # another process may have built it
            version = kube_version()
            log(f"building {' and '.join(COMMANDS)} {version} from the Go module "
                f"(first time only, ~{COLD_BUILD_MINUTES} min on 2 cores)")
            _build(go, version, final, log)
    return final / "bin"
