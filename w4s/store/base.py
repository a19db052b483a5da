"""The artifact store interface shared by the local-directory and S3 backends.

Runs keep everything they need to resume (manifest, JSONL records, workflow code, checkpoints) in a store, so
the contract every backend honours is small and strict: whole-object writes that a reader sees either entirely
or not at all, and keys that can never escape the store root.
"""

from __future__ import annotations

import abc
import json
from typing import Any

from w4s.errors import StoreError

# Prefix of the temporary files the local backend writes before renaming them into place. Keys may not use it,
# so a listing never confuses a half-written temp file with an artifact.
TEMP_PREFIX = ".w4s-tmp."


def _check_segments(value: str, segments: list[str], what: str) -> None:
    if "\\" in value:
        raise StoreError(f"invalid store {what} {value!r}: backslashes are not allowed, use '/'")
    if "\x00" in value:
        raise StoreError(f"invalid store {what} {value!r}: NUL characters are not allowed")
    if value.startswith("/"):
        raise StoreError(f"invalid store {what} {value!r}: must be relative to the store root")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise StoreError(f"invalid store {what} {value!r}: empty, '.' and '..' segments are not allowed")
        if segment.startswith(TEMP_PREFIX):
            raise StoreError(f"invalid store {what} {value!r}: names starting {TEMP_PREFIX!r} are reserved")


def validate_key(key: str) -> str:
    """Return ``key`` if it is a clean '/'-separated relative path, else raise StoreError naming it.

    The same rules hold for every backend so that a run written to a local directory can be copied to S3 (and
    back) unchanged, and so that no key can reach outside the local store root.
    """
    if not isinstance(key, str) or not key:
        raise StoreError(f"invalid store key {key!r}: must be a non-empty string")
    _check_segments(key, key.split("/"), "key")
    return key


def validate_prefix(prefix: str) -> str:
    """Return a listing prefix if it is valid: '' or a key, optionally with a trailing '/'."""
    if not isinstance(prefix, str):
        raise StoreError(f"invalid store prefix {prefix!r}: must be a string")
    if prefix:
        _check_segments(prefix, prefix.removesuffix("/").split("/"), "prefix")
    return prefix


class Store(abc.ABC):
    """A flat namespace of byte objects under one root, addressed by '/'-separated relative keys."""

    uri: str
    """Canonical URI of the root (``file:///abs/dir``, ``s3://bucket/prefix``); ``open_store`` accepts it."""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Create or replace ``key`` atomically: readers see the old object or the new one, never a mix."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Return the object at ``key``; raise ``KeyError(key)`` when there is none."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored at exactly ``key`` (a key that only prefixes others does not count)."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """All keys starting with ``prefix`` (a plain string prefix, as in S3), sorted."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error, so cleanup can be retried."""

    def put_text(self, key: str, text: str) -> None:
        """Store ``text`` as UTF-8."""
        self.put_bytes(key, text.encode("utf-8"))

    def get_text(self, key: str) -> str:
        """Read an object written by ``put_text`` (or any UTF-8 object)."""
        data = self.get_bytes(key)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StoreError(f"store object {key!r} in {self.uri} is not valid UTF-8: {exc}") from exc

    def put_json(self, key: str, value: Any) -> None:
        """Store ``value`` as indented JSON with sorted keys, so that the same value always gives the same
        bytes (stable diffs, and content comparisons in resume checks)."""
        self.put_text(key, json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n")

    def get_json(self, key: str) -> Any:
        """Read a JSON object; a corrupt one is a StoreError naming it rather than a bare decode error."""
        text = self.get_text(key)
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise StoreError(f"store object {key!r} in {self.uri} is not valid JSON: {exc}") from exc

    def child(self, prefix: str) -> Store:
        """A view of this store rooted at ``prefix`` (e.g. ``runs/<id>``); its keys are relative to it."""
        return _SubStore(self, validate_key(prefix))


class _SubStore(Store):
    """A store view that prefixes every key, written once on top of any backend's public methods."""

    def __init__(self, parent: Store, prefix: str) -> None:
        self._parent = parent
        self._prefix = prefix + "/"
        self.uri = f"{parent.uri.rstrip('/')}/{prefix}"

    def put_bytes(self, key: str, data: bytes) -> None:
        self._parent.put_bytes(self._prefix + validate_key(key), data)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._parent.get_bytes(self._prefix + validate_key(key))
        except KeyError:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        return self._parent.exists(self._prefix + validate_key(key))

    def list(self, prefix: str = "") -> list[str]:
        keys = self._parent.list(self._prefix + validate_prefix(prefix))
        return [key.removeprefix(self._prefix) for key in keys]

    def delete(self, key: str) -> None:
        self._parent.delete(self._prefix + validate_key(key))
