"""Shared pytest fixtures: real servers started once per session (see tests/servers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers import SeaweedFS, start_seaweedfs


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A real S3 gateway (SeaweedFS) for the whole session; call ``create_bucket()`` for a fresh bucket.

    A missing ``weed`` binary is an error, not a skip: CI installs it with the dev dependencies, and a skipped
    S3 suite would let the S3 backend rot unnoticed.
    """
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()
