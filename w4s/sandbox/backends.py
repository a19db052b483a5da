"""Where sandbox workers run: a gVisor container (``runsc``) or, where gVisor is missing, a plain process.

Both start the same worker (``w4s.workflow.worker``) and talk to it over its stdin and stdout; they differ in
what the worker can see of the host. The plain process is reported as unsandboxed everywhere it shows (log,
run manifest, ``w4s sandbox exec``), and refused when the spec says ``sandbox.required``.
"""

from __future__ import annotations

import abc
import asyncio
import itertools
import logging
import os
import shutil
import tempfile
from pathlib import Path

import w4s
from w4s.errors import SpecError
from w4s.sandbox import gvisor
from w4s.spec import SandboxSpec
from w4s.workflow import confine

logger = logging.getLogger("w4s.sandbox")
_STREAM_LIMIT = 64 * 1024 * 1024
_TMP_MB = 1024


class Backend(abc.ABC):
    """Starts worker processes; ``socket_dir`` is the host directory holding the gateway's unix socket."""

    name: str

    def __init__(self, socket_dir: Path, spares: int) -> None:
        self.socket_dir = socket_dir
        self.spares = spares

    @abc.abstractmethod
    def gateway_address(self, socket_name: str) -> str:
        """The gateway's address as the worker sees it."""

    @abc.abstractmethod
    async def spawn(self) -> asyncio.subprocess.Process:
        """Start one worker with piped stdin, stdout and stderr."""

    @abc.abstractmethod
    def close(self) -> None:
        """Remove whatever the backend set up on the host."""

    @property
    def description(self) -> str:
        return describe_backend(self.name)


class ProcessBackend(Backend):
    """Workers as plain processes: no credentials in their environment, no network (a namespace of their own),
    a uid per sample where the runner is root. Not a sandbox: the host's world-readable files are readable."""

    name = "process"
    _serial = itertools.count()  # across pools: every worker on the host needs uids no other worker hands out

    def __init__(self, socket_dir: Path, spares: int) -> None:
        super().__init__(socket_dir, spares)
        # The workers' temporary directories go here: a worker killed with SIGKILL cannot remove its own.
        self._dir = Path(tempfile.mkdtemp(prefix="w4s-workers-"))
        self._dir.chmod(0o711)  # sample uids reach their own directories below, but cannot list them

    def gateway_address(self, socket_name: str) -> str:
        return f"unix:{self.socket_dir / socket_name}"

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    async def spawn(self) -> asyncio.subprocess.Process:
        def prepare() -> None:
            confine.isolate_network()
            confine.die_with_parent()

        package_root = str(Path(w4s.__file__).resolve().parent.parent)
        # Worker uids: 100000 + 1000 * slot, the slot from this runner's pid and a per-process serial, so that
        # neither two workers of this runner nor (short of a pid collision mod 4096) of two runners share a uid.
        slot = (os.getpid() % 4096) * 256 + next(self._serial) % 256
        return await asyncio.create_subprocess_exec(
            *gvisor.worker_command(package_root, self.spares, 100000 + 1000 * slot),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd="/", env={"PATH": os.defpath, "LANG": "C.UTF-8", "TMPDIR": str(self._dir)},
            start_new_session=True, preexec_fn=prepare,
            limit=_STREAM_LIMIT)


class GVisorBackend(Backend):
    """Each worker is one gVisor container started with ``runsc run``; the bundle is built once per pool."""

    name = "gvisor"
    _ids = itertools.count()

    def __init__(self, socket_dir: Path, spares: int, runsc: str, platform: str) -> None:
        super().__init__(socket_dir, spares)
        self.runsc = runsc
        self.platform = platform
        self._dir = Path(tempfile.mkdtemp(prefix="w4s-gvisor-"))
        self._state = self._dir / "state"
        self._bundle = gvisor.build_bundle(self._dir / "bundle", socket_dir, spares=spares, tmp_mb=_TMP_MB)

    def gateway_address(self, socket_name: str) -> str:
        return f"unix:{gvisor.SOCKET_DIR}/{socket_name}"

    async def spawn(self) -> asyncio.subprocess.Process:
        container = f"w4s-{os.getpid()}-{next(self._ids)}"
        command = gvisor.runsc_command(self.runsc, self._state, self._bundle, container, self.platform)
        return await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=str(self._dir), start_new_session=True,
            preexec_fn=confine.die_with_parent, limit=_STREAM_LIMIT)

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def describe_backend(name: str) -> str:
    """How a backend is reported (log, run manifest, ``w4s sandbox exec``): plain processes never pass for a
    sandbox."""
    return name if name == GVisorBackend.name else f"{name} (UNSANDBOXED: workflow code can read the host's files)"


def backend_name(spec: SandboxSpec) -> str:
    """'gvisor' or 'process' for this spec on this machine, or a refusal naming the field; no side effects, so
    callers check it before writing anything."""
    if spec.backend == "gvisor" and shutil.which("runsc") is None:
        raise SpecError("sandbox.backend: 'gvisor' needs the runsc binary on PATH (Debian package runsc)")
    if spec.backend == "gvisor" or (spec.backend == "auto" and shutil.which("runsc") is not None):
        return "gvisor"
    if spec.required:
        why = "sandbox.backend is 'process'" if spec.backend == "process" else "runsc (gVisor) is not installed"
        raise SpecError(f"sandbox.required: workflows must run in gVisor, but {why}; install runsc (Debian "
                        "package runsc) or set sandbox.required: false to accept unsandboxed workers")
    return "process"


def choose_backend(spec: SandboxSpec, socket_dir: Path) -> Backend:
    spares = min(spec.samples_per_worker, 4)
    if backend_name(spec) == "process":
        if spec.backend == "auto":
            logger.warning("runsc (gVisor) not found: workflow code runs in plain worker processes, UNSANDBOXED")
        return ProcessBackend(socket_dir, spares)
    return GVisorBackend(socket_dir, spares, str(shutil.which("runsc")), spec.platform)
