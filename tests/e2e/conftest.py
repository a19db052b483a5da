"""The e2e suite runs the operator scenarios of tests/test_operator_cluster.py on a kind cluster. It needs a
Docker engine and is skipped, saying why, where there is none (this project's CI machines have only the Docker
client); the same scenarios always run against the local control plane."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kind import KindCluster, docker_works, kind_binary


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KindCluster]:
    why = docker_works()
    if why:
        pytest.skip(f"kind e2e needs a Docker engine ({why})")
    cluster = KindCluster(tmp_path_factory.mktemp("kind"),
                          kind_binary(Path.home() / ".cache" / "w4s")).start()
    try:
        yield cluster
    finally:
        cluster.stop()
