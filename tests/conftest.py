"""Shared pytest fixtures: real servers started once per session (see tests/servers.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kube import kube_binaries, kube_cluster, kube_namespace, pytest_collection_finish  # noqa: F401  (fixtures, hook)
from servers import SeaweedFS, runner_tmpdir, start_seaweedfs

# Benchmark files that no package ships live next to the project (see ../shared/data/README.md); an explicit
# W4S_DATA_DIR wins. Tests that need them fail, not skip, when they are missing.
_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "W4S_DATA_DIR" not in os.environ and _SHARED_DATA.is_dir():
    os.environ["W4S_DATA_DIR"] = str(_SHARED_DATA)


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


@pytest.fixture
def runner_tmp() -> Iterator[Path]:
    """TMPDIR for a runner subprocess the test kills (see ``servers.runner_tmpdir``)."""
    with runner_tmpdir() as path:
        yield path
