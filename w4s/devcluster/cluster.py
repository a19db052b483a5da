"""``LocalCluster``: etcd, kube-apiserver and kube-controller-manager on loopback, all state under one directory.

Layout of the directory: ``pki/`` (CA, certificates, service-account key), ``etcd/`` (data), ``logs/`` (one
file per process), ``kubeconfig`` (admin, client certificate in group system:masters), ``pids`` (what
``stop`` or ``w4s dev cluster down`` ends). Every connection is TLS with client certificates, etcd's
included, so another local user cannot reach around RBAC.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import Popen
from types import TracebackType
from typing import Any

import httpx

from w4s.devcluster import procs
from w4s.devcluster.binaries import ensure_binaries
from w4s.devcluster.kubeconfig import cert_user, read_server, write_kubeconfig
from w4s.devcluster.pki import Pki, ensure_pki
from w4s.errors import W4SError

SERVICE_CIDR = "10.96.0.0/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTROLLERS = (
    "garbage-collector-controller", "job-controller", "deployment-controller", "replicaset-controller",
    "namespace-controller", "serviceaccount-controller", "serviceaccount-token-controller",
    "ttl-after-finished-controller", "root-ca-certificate-publisher-controller",
)


def _free_port() -> int:
    """A loopback TCP port that was free a moment ago (the OS picks it, so parallel clusters differ)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tls(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<{path} unreadable: {exc}>"


class LocalCluster:
    """A Kubernetes control plane without nodes: the API, its storage and the controllers that act on it.

    ``start()`` blocks until the API is ready and the controllers work (the ``default`` ServiceAccount
    exists); ``stop()`` ends exactly the processes it started. With ``detach`` the processes outlive this
    Python process (``w4s dev cluster up``), and ``LocalCluster(dir).stop()`` from another one ends them.
    """

    def __init__(self, dir: Path | str, *, log: Callable[[str], None] = lambda _: None, detach: bool = False,
                 timeout_s: float = 120.0) -> None:
        self.dir = Path(dir).resolve()
        self.pki = Pki(self.dir / "pki")
        self.kubeconfig = self.dir / "kubeconfig"
        self.pids_file = self.dir / "pids"
        self.logs = self.dir / "logs"
        self._log = log
        self._detach = detach
        self._timeout_s = timeout_s
        self._children: list[Popen[bytes]] = []
        self._records: list[procs.Recorded] = []
        self._server: str | None = None
        self._etcd_url = ""

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_cert

    @property
    def admin_cert(self) -> Path:
        return self.pki.cert("admin")

    @property
    def admin_key(self) -> Path:
        return self.pki.key("admin")

    @property
    def server(self) -> str:
        """The API's https URL; for a cluster another process started, read from its kubeconfig."""
        if self._server is None:
            if not self.kubeconfig.exists():
                raise W4SError(f"no cluster in {self.dir} (no kubeconfig); start one with `w4s dev cluster up`")
            self._server = read_server(self.kubeconfig)
        return self._server

    def client(self, *, token: str | None = None, anonymous: bool = False, **kw: Any) -> httpx.Client:
        """An HTTP client for the API: as admin by default, or with a bearer ``token``, or ``anonymous``."""
        tls = _tls(self.ca_file) if token is not None or anonymous else _tls(self.ca_file, self.admin_cert,
                                                                              self.admin_key)
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(base_url=self.server, verify=tls, headers=headers, **kw)

    def write_token_kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig for this cluster that authenticates with a bearer token (e.g. a ServiceAccount's)."""
        write_kubeconfig(path, self.server, self.ca_file, {"token": token})
        return path

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> LocalCluster:
        """Start etcd, the API server and the controller manager, each once the previous one is ready."""
        if any(r.alive() for r in procs.read_pids(self.pids_file)):
            raise W4SError(f"a cluster is already running in {self.dir}; `w4s dev cluster down --dir {self.dir}` "
                           f"stops it")
        bin_dir = ensure_binaries(self._log)
        etcd = shutil.which("etcd")
        if etcd is None:
            raise W4SError("the `etcd` command is missing; install etcd (Debian/Ubuntu: apt-get install etcd-server)")
        ensure_pki(self.pki.dir)
        started = time.monotonic()
        try:
            with httpx.Client(verify=_tls(self.ca_file, self.admin_cert, self.admin_key), timeout=5) as admin:
                self._start_etcd(etcd)
                self._start_apiserver(bin_dir / "kube-apiserver", admin)
                self._start_controller_manager(bin_dir / "kube-controller-manager", admin)
        except BaseException:
            self.stop()
            raise
        self._log(f"cluster up in {time.monotonic() - started:.1f}s at {self.server}; kubeconfig {self.kubeconfig}")
        return self

    def stop(self) -> None:
        """End every process this cluster started (SIGTERM, then SIGKILL), newest first; none other."""
        records = self._records or procs.read_pids(self.pids_file)
        procs.stop(records)
        for child in self._children:
            child.wait()  # reap, so no zombie stays behind in a long test session
        left = [r for r in records if r.alive()]
        if left:
            raise W4SError(f"could not stop {', '.join(f'{r.name} (pid {r.pid})' for r in left)}")
        self._children.clear()
        self._records.clear()
        self.pids_file.unlink(missing_ok=True)

    def _spawn(self, name: str, argv: list[str]) -> None:
        child, record = procs.spawn(name, argv, self.logs / f"{name}.log", self._detach)
        self._children.append(child)
        self._records.append(record)
        procs.write_pids(self.pids_file, self._records)

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        """Poll ``ready`` until it holds; fail at once, with the log's end, if a started process exits."""
        deadline = time.monotonic() + self._timeout_s
        while True:
            try:
                if ready():
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            for child, record in zip(self._children, self._records, strict=True):
                if child.poll() is not None:
                    log = self.logs / f"{record.name}.log"
                    raise W4SError(f"{record.name} exited (code {child.returncode}) while waiting for {what}; "
                                   f"end of {log}:\n{_log_tail(log)}")
            if time.monotonic() > deadline:
                raise W4SError(f"{what}: not ready after {self._timeout_s:.0f}s; logs in {self.logs}")
            time.sleep(0.1)

    def _start_etcd(self, etcd: str) -> None:
        client, peer = (f"https://127.0.0.1:{_free_port()}" for _ in range(2))
        cert, key, ca = str(self.pki.cert("etcd")), str(self.pki.key("etcd")), str(self.ca_file)
        self._spawn("etcd", [
            etcd, "--name", "w4s-dev", "--data-dir", str(self.dir / "etcd"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"w4s-dev={peer}",
            "--client-cert-auth", "--trusted-ca-file", ca, "--cert-file", cert, "--key-file", key,
            "--peer-client-cert-auth", "--peer-trusted-ca-file", ca, "--peer-cert-file", cert, "--peer-key-file", key,
            "--snapshot-count", "10000", "--logger", "zap", "--log-level", "warn",
        ])
        self._etcd_url = client
        tls = _tls(self.ca_file, self.pki.cert("apiserver-etcd-client"), self.pki.key("apiserver-etcd-client"))
        with httpx.Client(verify=tls, timeout=5) as probe:
            self._wait(lambda: probe.get(f"{client}/health").json().get("health") == "true", "etcd")

    def _start_apiserver(self, binary: Path, admin: httpx.Client) -> None:
        port = _free_port()
        sa_key = str(self.pki.sa_key)
        self._spawn("kube-apiserver", [
            str(binary), "--bind-address=127.0.0.1", f"--secure-port={port}", "--advertise-address=127.0.0.1",
            f"--etcd-servers={self._etcd_url}", f"--etcd-cafile={self.ca_file}",
            f"--etcd-certfile={self.pki.cert('apiserver-etcd-client')}",
            f"--etcd-keyfile={self.pki.key('apiserver-etcd-client')}",
            f"--tls-cert-file={self.pki.cert('apiserver')}", f"--tls-private-key-file={self.pki.key('apiserver')}",
            f"--client-ca-file={self.ca_file}", "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={SA_ISSUER}", f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}", f"--service-cluster-ip-range={SERVICE_CIDR}",
            # The `kubernetes` Service's endpoint would be 127.0.0.1, which Endpoints reject; no pod runs anyway.
            "--endpoint-reconciler-type=none", "--profiling=false",
            # Debian's etcd 3.4.23 lacks reliable watch-progress requests (the API server needs >= 3.4.31 and
            # logs "RequestWatchProgress feature is not supported"), without which the watch cache answers a
            # watch without resourceVersion, after a 3 s wait, with "Too large resource version" once it lags
            # etcd. Serving lists and watches from etcd directly has exact semantics at this scale.
            "--watch-cache=false",
        ])
        self._server = f"https://127.0.0.1:{port}"
        self._wait(lambda: admin.get(f"{self._server}/readyz").status_code == 200, "kube-apiserver /readyz")
        write_kubeconfig(self.kubeconfig, self._server, self.ca_file, cert_user(self.admin_cert, self.admin_key))

    def _start_controller_manager(self, binary: Path, admin: httpx.Client) -> None:
        kubeconfig = self.dir / "controller-manager.kubeconfig"
        write_kubeconfig(kubeconfig, self.server, self.ca_file,
                         cert_user(self.pki.cert("controller-manager"), self.pki.key("controller-manager")))
        self._spawn("kube-controller-manager", [
            str(binary), f"--kubeconfig={kubeconfig}", "--leader-elect=false", "--use-service-account-credentials",
            f"--service-account-private-key-file={self.pki.sa_key}", f"--root-ca-file={self.ca_file}",
            f"--controllers={','.join(CONTROLLERS)}", "--secure-port=0", "--profiling=false",
        ])
        url = f"{self.server}/api/v1/namespaces/default/serviceaccounts/default"
        self._wait(lambda: admin.get(url).status_code == 200, "the default ServiceAccount (controller manager)")
