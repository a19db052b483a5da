"""Artifact store: where runs keep manifests, JSONL records, workflow code and checkpoints.

``open_store(uri)`` picks the backend from the URI; everything else talks to the ``Store`` interface, so the
runner, trainer and CLI work the same against a local directory (embedded mode) and S3 (in a cluster).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from w4s.errors import StoreError
from w4s.store.base import Store, validate_key, validate_prefix
from w4s.store.local import LocalStore

__all__ = ["LocalStore", "Store", "open_store", "validate_key", "validate_prefix"]

SUPPORTED_SCHEMES = ("a plain directory path", "file://", "s3://")


def open_store(uri: str) -> Store:
    """Open the store at ``uri``: a directory path or ``file:///abs/dir`` (created if missing) or
    ``s3://bucket[/prefix]`` (endpoint, region and credentials from the standard AWS environment)."""
    if "://" not in uri:
        return LocalStore(Path(uri).expanduser())
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(f"store URI {uri!r} names host {parsed.netloc!r}; file URIs must be local "
                             f"(file:///abs/dir)")
        return LocalStore(unquote(parsed.path))
    if parsed.scheme == "s3":
        # Imported here so that local-only uses (embedded mode, tests) do not pay for importing boto3.
        from w4s.store.s3 import S3Store

        if not parsed.netloc:
            raise StoreError(f"store URI {uri!r} has no bucket: expected s3://bucket[/prefix]")
        return S3Store(parsed.netloc, parsed.path)
    raise StoreError(f"unsupported store URI {uri!r}: use {', '.join(SUPPORTED_SCHEMES)}")
