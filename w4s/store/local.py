"""Local-directory store, used in embedded mode and by tests.

Writes go to a temporary file in the destination directory and are renamed into place with ``os.replace``,
which is atomic on POSIX within one file system: a runner that crashes mid-write leaves at most a stray
temporary file (ignored by ``list``), never a truncated manifest that a resumed run would trust.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from w4s.errors import StoreError
from w4s.store.base import (
    TEMP_PREFIX,
    Progress,
    Store,
    copy_stream,
    validate_key,
    validate_prefix,
    write_atomically,
)


class LocalStore(Store):
    """Objects are plain files under ``root``; a key ``a/b`` is the file ``root/a/b``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        try:
            Path(root).mkdir(parents=True, exist_ok=True)
            self.root = Path(os.path.realpath(root))
        except OSError as exc:
            raise StoreError(f"cannot create the store directory {os.fspath(root)!r}: {exc}") from exc
        self.uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        """Map a key to its file, refusing any path that resolves outside the root.

        Key validation already rules out '..'; the realpath check also stops a symlink planted inside the
        store from redirecting reads or writes elsewhere.
        """
        path = self.root / validate_key(key)
        if not self._inside(path):
            raise StoreError(f"store key {key!r} resolves outside the store root {self.root}")
        return path

    def _inside(self, path: Path) -> bool:
        return os.path.realpath(path).startswith(os.path.join(self.root, ""))

    def _write(self, key: str, fill: Callable[[BinaryIO], None]) -> None:
        path = self._path(key)
        write_atomically(path, fill, f"store key {key!r} at {path}")

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write(key, lambda f: f.write(data))

    def put_file(self, key: str, path: str | os.PathLike[str], progress: Progress | None = None) -> None:
        """Streamed: a checkpoint of model weights is never held in memory whole."""
        try:
            source = open(path, "rb")  # noqa: SIM115 (closed below, after the copy)
        except OSError as exc:
            raise StoreError(f"cannot read local file {os.fspath(path)!r} to store it at {key!r}: {exc}") from exc
        with source:
            self._write(key, lambda f: copy_stream(source, f, progress))

    def get_file(self, key: str, path: str | os.PathLike[str], progress: Progress | None = None) -> None:
        try:
            source = open(self._path(key), "rb")  # noqa: SIM115 (closed below, after the copy)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyError(key) from None
        except OSError as exc:
            raise StoreError(f"cannot read store key {key!r}: {exc}") from exc
        with source:
            write_atomically(Path(path), lambda f: copy_stream(source, f, progress),
                             f"{key!r} to the local file {os.fspath(path)!r}")

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyError(key) from None
        except OSError as exc:
            raise StoreError(f"cannot read store key {key!r} at {path}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        prefix = validate_prefix(prefix)
        # Walk only the deepest directory that the prefix names, not the whole store.
        start = self.root / prefix.rpartition("/")[0]
        if start != self.root and not self._inside(start):
            return []
        keys = []
        for dirpath, _dirnames, filenames in os.walk(start, onerror=self._walk_error):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(TEMP_PREFIX):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def _walk_error(self, exc: OSError) -> None:
        """A directory that is missing or is a file holds no keys; anything else (permissions) must not pass
        silently, or a resumed run would believe its records are gone."""
        if not isinstance(exc, FileNotFoundError | NotADirectoryError):
            raise StoreError(f"cannot list the store directory {exc.filename}: {exc}") from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except (NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise StoreError(f"cannot delete store key {key!r} at {path}: {exc}") from exc
