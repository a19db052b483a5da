"""The artifact store interface shared by the local-directory and S3 backends.

Runs keep everything they need to resume (manifest, JSONL records, workflow code, checkpoints) in a store, so
the contract every backend honours is small and strict: whole-object writes that a reader sees either entirely
or not at all, and keys that can never escape the store root.
"""

from __future__ import annotations

import abc
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from w4s.errors import StoreError

Progress = Callable[[int], None]
"""Called with the number of bytes moved since the previous call (boto3's convention), from any thread."""

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

    def put_file(self, key: str, path: str | os.PathLike[str], progress: Progress | None = None) -> None:
        """Store the local file ``path`` at ``key``, with the same all-or-nothing visibility as ``put_bytes``.

        This default reads the file into memory; backends override it to stream (S3 uploads big files in
        parts), which is what checkpoints of model weights need.
        """
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read local file {os.fspath(path)!r} to store it at {key!r}: {exc}") from exc
        self.put_bytes(key, data)
        if progress is not None:
            progress(len(data))

    def get_file(self, key: str, path: str | os.PathLike[str], progress: Progress | None = None) -> None:
        """Write the object at ``key`` to the local file ``path`` (parents created); raise ``KeyError(key)``
        when there is none. The file appears complete or not at all: it is written beside ``path`` first and
        renamed into place, so a crash never leaves a truncated checkpoint that looks whole."""
        data = self.get_bytes(key)
        write_atomically(Path(path), lambda f: f.write(data), f"{key!r} to the local file {os.fspath(path)!r}")
        if progress is not None:
            progress(len(data))

    def put_dir(self, prefix: str, local_dir: str | os.PathLike[str]) -> list[str]:
        """Upload every file under ``local_dir`` (a checkpoint folder) to ``prefix/<relative path>``.

        Returns the relative paths stored, sorted (leftover ``.w4s-tmp.`` files are skipped). Files go up in
        that order, one ``put_file`` each, so a crash part-way leaves some files stored and the rest missing,
        never a half-written one; a reader that must know the folder is complete should look for a marker
        the writer stores last.
        """
        root = Path(local_dir)
        if not root.is_dir():
            raise StoreError(f"cannot upload {os.fspath(local_dir)!r} to {self.uri}: not a directory")
        prefix = validate_key(prefix)
        names = []
        # os.walk does not follow symlinked directories, so a link in the folder cannot pull in the disk.
        for dirpath, _dirnames, filenames in os.walk(root):
            rel_dir = Path(dirpath).relative_to(root).as_posix()
            names += [name if rel_dir == "." else f"{rel_dir}/{name}" for name in filenames
                      if not name.startswith(TEMP_PREFIX) and os.path.isfile(os.path.join(dirpath, name))]
        names.sort()
        for name in names:
            self.put_file(f"{prefix}/{name}", root / name)
        return names

    def get_dir(self, prefix: str, local_dir: str | os.PathLike[str]) -> list[str]:
        """Download every object under ``prefix/`` into ``local_dir``, mirroring the key layout.

        Returns the relative paths written, sorted; an empty list when nothing is stored under the prefix.
        Each relative path is validated like a key before it touches the disk, so an object named by another
        tool (``../x``) cannot write outside ``local_dir``.
        """
        prefix = validate_key(prefix) + "/"
        root = Path(local_dir)
        names = [validate_key(key.removeprefix(prefix)) for key in self.list(prefix)]
        for name in names:
            self.get_file(prefix + name, root / name)
        return names

    def child(self, prefix: str) -> Store:
        """A view of this store rooted at ``prefix`` (e.g. ``runs/<id>``); its keys are relative to it."""
        return _SubStore(self, validate_key(prefix))


def copy_stream(source: BinaryIO, target: BinaryIO, progress: Progress | None = None,
                chunk: int = 1 << 20) -> None:
    """Copy in 1 MiB chunks, reporting bytes moved: big files never sit in memory whole."""
    while block := source.read(chunk):
        target.write(block)
        if progress is not None:
            progress(len(block))


def write_atomically(path: Path, fill: Callable[[BinaryIO], None], what: str) -> None:
    """Write through ``fill`` to a temporary file beside ``path``, sync it, and rename it into place: a reader
    (or a resumed run) sees the old file or the whole new one, never a truncated one. ``what`` names the write
    in errors."""
    tmp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}.{path.name}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: never write through a file someone else created; mode 0o666 lets the umask decide.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                fill(f)
                f.flush()
                # On disk before the rename, so a power loss cannot leave an empty file under the name.
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise StoreError(f"cannot write {what}: {exc}") from exc


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

    # Delegated rather than inherited so that the parent's streaming versions are used.
    def put_file(self, key: str, path: str | os.PathLike[str], progress: Progress | None = None) -> None:
        self._parent.put_file(self._prefix + validate_key(key), path, progress)

    def get_file(self, key: str, path: str | os.PathLike[str], progress: Progress | None = None) -> None:
        try:
            self._parent.get_file(self._prefix + validate_key(key), path, progress)
        except KeyError:
            raise KeyError(key) from None
