"""A local gVisor container for sandbox workers: the OCI bundle and the ``runsc`` command line.

The root filesystem is built from nothing and mounted read-only: the host's ``/usr`` (programs and libraries),
the Python installation, the ``w4s.workflow`` package (standard library only) and the directory holding the
gateway's unix socket, all read-only, plus an in-memory ``/tmp``. Nothing else of the host is visible: no home
directory, no repository, no credentials file, no host ``/proc``. ``--network=none`` leaves only the sandbox's
own loopback, and ``--host-uds=open`` lets the worker connect to the one host socket mounted in, the gateway's.

Inside, the worker runs as the sandbox's root (which is gVisor's, not the host's) with just the capabilities it
needs to hand each sample a uid of its own; the samples run with none.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import w4s.workflow

SOCKET_DIR = "/run/w4s"
PACKAGE_ROOT = "/opt/w4s"
_CAPABILITIES = ["CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE"]
_PASSWD = "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"


def _bind(source: str | Path, destination: str | Path) -> dict[str, Any]:
    return {"destination": str(destination), "type": "bind", "source": str(source), "options": ["rbind", "ro"]}


def worker_command(package_root: str, spares: int, uid_base: int = 20000) -> list[str]:
    """The worker's command line, importing ``w4s.workflow`` from ``package_root`` only (``-I``: no site
    packages, no environment variables, no current directory)."""
    boot = f"import sys; sys.path.insert(0, {package_root!r}); from w4s.workflow.worker import main; main()"
    return [os.path.realpath(sys.executable), "-I", "-c", boot, "--spares", str(spares), "--uid-base", str(uid_base)]


def build_bundle(bundle: Path, socket_dir: Path, *, spares: int, tmp_mb: int) -> Path:
    """Write an OCI bundle under ``bundle`` and return it. ``socket_dir`` holds the gateway's socket."""
    rootfs = bundle / "rootfs"
    prefix = Path(sys.base_prefix).resolve()
    package = Path(w4s.workflow.__file__).resolve().parent
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": [f"size={tmp_mb}m", "mode=755"]},
        _bind("/usr", "/usr"),
        _bind(prefix, prefix),
        _bind(package, f"{PACKAGE_ROOT}/w4s/workflow"),
        _bind(socket_dir, SOCKET_DIR),
    ]
    for name in ("proc", "dev", "tmp", "usr", "etc", SOCKET_DIR[1:], f"{PACKAGE_ROOT[1:]}/w4s/workflow",
                 str(prefix)[1:]):
        (rootfs / name).mkdir(parents=True, exist_ok=True, mode=0o755)
    for name in ("bin", "sbin", "lib", "lib64"):  # merged-/usr hosts link these; older ones get them mounted
        host = Path("/") / name
        if host.is_symlink():
            (rootfs / name).symlink_to(os.readlink(host))
        elif host.is_dir():
            (rootfs / name).mkdir(mode=0o755)
            mounts.append(_bind(host, f"/{name}"))
    (rootfs / PACKAGE_ROOT[1:] / "w4s" / "__init__.py").write_text('"""Only w4s.workflow is mounted here."""\n')
    (rootfs / "etc" / "passwd").write_text(_PASSWD)
    (rootfs / "etc" / "group").write_text(_GROUP)
    if Path("/etc/ld.so.cache").is_file():
        shutil.copyfile("/etc/ld.so.cache", rootfs / "etc" / "ld.so.cache")
    for path in [rootfs, *rootfs.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    config = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False, "user": {"uid": 0, "gid": 0}, "cwd": "/tmp",
            "args": worker_command(PACKAGE_ROOT, spares),
            "env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/tmp"],
            "capabilities": {kind: _CAPABILITIES for kind in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096},
                        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "w4s-sandbox",
        "mounts": mounts,
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]},
    }
    (bundle / "config.json").write_text(json.dumps(config, indent=1))
    return bundle


def runsc_command(runsc: str, state_dir: Path, bundle: Path, container_id: str, platform: str) -> list[str]:
    """``runsc run`` in the foreground: the worker's stdin and stdout are the protocol; killing this process
    takes the sandbox down with it (it is attached)."""
    return [runsc, "--root", str(state_dir), "--platform", platform, "--network", "none", "--host-uds", "open",
            "--ignore-cgroups", "run", "--bundle", str(bundle), container_id]
