"""Fixtures for the reliability tests: a faulty proxy in front of moto's S3 server and an
MLflow tracking server process (see faults.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from faults import FaultyProxy, MlflowServer


@pytest.fixture
def s3_proxy(s3_endpoint: str) -> Iterator[FaultyProxy]:
    """A faulty proxy in front of moto's S3 server."""
    proxy = FaultyProxy(s3_endpoint)
    yield proxy
    proxy.close()


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    folder = tmp_path / "mlflow-server"
    folder.mkdir()
    server = MlflowServer(folder)
    server.start()
    yield server
    server.kill()
