"""Shared fixtures: a temporary lake, S3 through moto's server over real HTTP, services."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIRE_SERVICES = os.getenv("MLPLATFORM_REQUIRE_SERVICES") == "1"

# Tests never talk to real AWS: dummy credentials and region for every boto client.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("MLPLATFORM_ENV", "local")

# Airflow reads its configuration on first import: give every test process (each xdist
# worker too) its own home and SQLite database before anything imports it.
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="mlplatform-airflow-"))
os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO_ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ.setdefault("PYTHONPATH", str(REPO_ROOT / "include"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a localhost service is absent; fail instead where CI requires services."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError:
        message = f"{name} is not reachable on {host}:{port}"
        if REQUIRE_SERVICES:
            pytest.fail(f"{message}, and MLPLATFORM_REQUIRE_SERVICES=1 requires it")
        pytest.skip(f"{message}; start it to run this test")


@pytest.fixture
def lake(tmp_path: Path):
    from mlplatform.lake import Lake

    return Lake((tmp_path / "lake").as_uri())


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """An S3/SSM/SageMaker stand-in: moto's server mode, reached over real HTTP."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server, with every client pointed at it."""
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    name = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database (SQLite) for ``dag.test()`` runs."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, timeout=600
    )
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def webhook_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The local Slack webhook sink on a free port, in a thread; alerts are pointed at it.

    No Slack connection is configured, so alerts go to ``MLPLATFORM_SLACK_WEBHOOK_URL``.
    One sink serves the session: call ``clear()`` first, then read what arrived over HTTP
    at ``f"{webhook_sink.url}/messages"``.
    """
    from mlplatform.webhook_sink import WebhookSink

    sink = WebhookSink(port=0, store=tmp_path_factory.mktemp("alerts") / "messages.jsonl").start()
    patch = pytest.MonkeyPatch()
    patch.setenv("MLPLATFORM_SLACK_WEBHOOK_URL", sink.hook_url)
    patch.setenv("MLPLATFORM_SLACK_CONN_ID", "")
    try:
        yield sink
    finally:
        patch.undo()
        sink.stop()
