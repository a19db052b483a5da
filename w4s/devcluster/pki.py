"""Certificates and keys of the local control plane, made with the ``openssl`` command.

The ``openssl`` CLI is on every machine that has etcd, so no Python crypto package is needed. Keys are ECDSA
P-256 (fast to make; Kubernetes and etcd accept them for TLS and for signing service-account tokens). Files
are made once per cluster directory and reused, so a kubeconfig stays valid across ``down`` and ``up``.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from w4s.errors import W4SError

# Ten years: a dev cluster directory should not silently expire.
_DAYS = "3650"
_LOOPBACK_SAN = "IP:127.0.0.1,DNS:localhost"

# Extension profiles for `openssl x509 -extfile ... -extensions NAME`.
_EXTENSIONS = f"""
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {_LOOPBACK_SAN}
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
[peer]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = {_LOOPBACK_SAN}
"""

_CA_CONFIG = """
[req]
distinguished_name = dn
x509_extensions = ca
prompt = no
[dn]
CN = w4s-devcluster-ca
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""


@dataclass(frozen=True)
class Pki:
    """Paths of every credential the control plane uses, all under one directory."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def sa_key(self) -> Path:
        """Signs (apiserver, token controller) and verifies service-account tokens."""
        return self.dir / "sa.key"

    def cert(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise W4SError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")


def _new_key(path: Path) -> None:
    # SEC1 ("EC PRIVATE KEY"), not genpkey's PKCS#8: --service-account-key-file reads only SEC1 for EC keys.
    _openssl("ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", str(path))
    path.chmod(0o600)


def _issue(pki: Pki, name: str, subject: str, profile: str, work: Path) -> None:
    """A key and a certificate for ``subject`` (e.g. ``/O=system:masters/CN=admin``) signed by the CA."""
    extfile = work / "extensions.cnf"
    extfile.write_text(_EXTENSIONS)
    csr = work / f"{name}.csr"
    _new_key(pki.key(name))
    _openssl("req", "-new", "-key", str(pki.key(name)), "-subj", subject, "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(pki.ca_cert), "-CAkey", str(pki.ca_key),
             "-set_serial", "0x" + secrets.token_hex(16), "-days", _DAYS, "-sha256",
             "-extfile", str(extfile), "-extensions", profile, "-out", str(pki.cert(name)))


# name -> (subject, extension profile). Kubernetes takes the user from CN and the groups from O.
CERTIFICATES: dict[str, tuple[str, str]] = {
    "etcd": ("/CN=etcd", "peer"),  # etcd's serving cert doubles as its peer cert (server and client auth)
    "apiserver-etcd-client": ("/CN=kube-apiserver-etcd-client", "client"),
    "apiserver": ("/CN=kube-apiserver", "server"),
    "admin": ("/O=system:masters/CN=w4s-admin", "client"),
    "controller-manager": ("/CN=system:kube-controller-manager", "client"),
}


def ensure_pki(dir: Path) -> Pki:
    """Make the CA, the service-account key and every certificate of ``CERTIFICATES`` that ``dir`` lacks
    (all of them again when the CA is new: old ones would not verify)."""
    if shutil.which("openssl") is None:
        raise W4SError("the `openssl` command is missing; install it (Debian: apt-get install openssl)")
    pki = Pki(dir)
    dir.mkdir(parents=True, exist_ok=True)
    dir.chmod(0o700)
    with tempfile.TemporaryDirectory(dir=dir) as tmp:
        work = Path(tmp)
        new_ca = not (pki.ca_cert.exists() and pki.ca_key.exists())
        if new_ca:
            config = work / "ca.cnf"
            config.write_text(_CA_CONFIG)
            _new_key(pki.ca_key)
            _openssl("req", "-x509", "-new", "-key", str(pki.ca_key), "-config", str(config), "-days", _DAYS,
                     "-sha256", "-out", str(pki.ca_cert))
        if not pki.sa_key.exists():
            _new_key(pki.sa_key)
        for name, (subject, profile) in CERTIFICATES.items():
            if new_ca or not (pki.cert(name).exists() and pki.key(name).exists()):
                _issue(pki, name, subject, profile, work)
    return pki
