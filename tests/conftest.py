"""Shared fixtures: a temporary lake, S3 through moto's server over real HTTP, services."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIRE_SERVICES = os.getenv("MLPLATFORM_REQUIRE_SERVICES") == "1"

# Tests never talk to real AWS: dummy credentials and region for every boto client.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("MLPLATFORM_ENV", "local")
# OpenMP threads that spin while waiting slow scikit-learn's gradient boosting several-fold
# on shared cores; read once when OpenMP loads, so set before anything imports sklearn.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
# A lake of the process's own unless a test names one: alerts queue in the lake's outbox, and
# one test's undelivered alert must not reach the next test's Slack.
os.environ.setdefault("MLPLATFORM_LAKE_URI", Path(tempfile.mkdtemp(prefix="mlplatform-lake-")).as_uri())


# The files that take minutes, longest first. `make test` runs the suite in two processes
# (pytest-xdist, one file per process at a time): the long files start first, each in a
# process of its own, and the short ones fill in around them, so neither process is left
# with a long file at the end. Every other file keeps its place, after these.
LONGEST_FIRST = (
    "test_system.py",
    "test_celery.py",
    "test_aws_rehearsal.py",
    "test_neighbours.py",
    "test_train_promote_dags.py",
    "test_monitor_live.py",
    "test_promotion_evidence.py",
    "test_live_chain.py",
    "test_postgres_restart.py",
    "test_serving_resilience.py",
    "test_faults.py",
    "test_sagemaker_jobs.py",
    "test_infra.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's order kept


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop a server started in a session of its own, with every process it started."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def load_dag_module(stage: str) -> Any:
    """A DAG file of the bundle imported as a module: its ``build`` makes the DAG for any spec
    (another maturity level, thresholds, timeouts)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bundle_{stage}", REPO_ROOT / "dags" / f"{stage}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def asset_event_extras(uri: str) -> list[dict]:
    """The extras of every event of the Asset ``uri`` in the metadata DB, oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == uri)
            .order_by(AssetEvent.id)
        )
        return [dict(e.extra) for e in events]


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
    from mlplatform.adapters.lake import Lake

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


class MlflowServer:
    """A real MLflow tracking server and registry (SQLite unless given another database, local
    artifacts) on a free port, in a folder of its own; it can be stopped and started again on
    the same port and database, as a registry that goes away mid-run and comes back."""

    def __init__(self, home: Path, backend_store_uri: str | None = None) -> None:
        self.home, self.port = home, free_port()
        self.backend_store_uri = backend_store_uri or f"sqlite:///{home / 'mlflow.db'}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> MlflowServer:
        import time
        import urllib.request

        command = [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            self.backend_store_uri,
            "--artifacts-destination",
            str(self.home / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        # No server-side job runner: tests need none, and it costs three more processes.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with (self.home / "server.log").open("ab") as log:
            # A session of its own: the server runs its workers as child processes, stopped together.
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + 300  # a busy CI machine needs minutes for the migrations
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.home / "server.log").read_text()[-2000:]
                raise RuntimeError(f"mlflow server did not start on {self.url}:\n{tail}")
            time.sleep(0.5)

    @property
    def running(self) -> bool:
        return self.process is not None

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)
            self.process = None


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's MLflow server (:class:`MlflowServer`).

    Sets ``MLFLOW_TRACKING_URI`` for the session, so the code under test finds it.
    """
    server = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = server.url
    try:
        yield server.url
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
        server.stop()


@pytest.fixture(scope="session")
def webhook_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The local Slack webhook sink on a free port, in a thread; alerts are pointed at it.

    No Slack connection is configured, so alerts go to ``MLPLATFORM_SLACK_WEBHOOK_URL``.
    One sink serves the session: call ``clear()`` first, then read what arrived over HTTP
    at ``f"{webhook_sink.url}/messages"``.
    """
    from mlplatform.dev.webhook_sink import WebhookSink

    sink = WebhookSink(port=0, store=tmp_path_factory.mktemp("alerts") / "messages.jsonl").start()
    patch = pytest.MonkeyPatch()
    patch.setenv("MLPLATFORM_SLACK_WEBHOOK_URL", sink.hook_url)
    patch.setenv("MLPLATFORM_SLACK_CONN_ID", "")
    try:
        yield sink
    finally:
        patch.undo()
        sink.stop()


@contextmanager
def throwaway_postgres(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database on localhost named ``<prefix>_<random>``, dropped afterwards
    (its connections closed first); skips, or fails with ``MLPLATFORM_REQUIRE_SERVICES=1``,
    when PostgreSQL is not there."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


def headless_chromium():
    """Debian's Chromium under selenium, headless, with no background networking (this
    machine has no internet); skips with the reason when it is not installed (fails under
    ``MLPLATFORM_REQUIRE_SERVICES=1``)."""
    import shutil

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        message = "chromium and chromedriver are not installed (Debian packages; `make system-deps`)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)
