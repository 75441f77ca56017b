"""Scale-out on Celery: the chain on two Celery workers, and a worker lost in the middle of a task.

The embedded platform with the CeleryExecutor in place of the LocalExecutor: Redis as the
broker, PostgreSQL as the metadata database and the Celery result backend, and two
``airflow celery worker`` processes on this machine. validate → train → promote → batch
score runs through the REST API, as a person drives the UI, and the task instances' hostnames
show that both workers ran tasks. Then the worker that is training is killed (SIGKILL, with
every process it started, as when its machine dies); the scheduler notices the missing
heartbeats, Airflow retries the task on the other worker and the chain completes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlplatform.dev.embedded import Platform, Service

from conftest import free_port, require_service, throwaway_postgres

pytestmark = [pytest.mark.celery, pytest.mark.services, pytest.mark.system, pytest.mark.slow]

USE_CASE = "taxi_trip_duration"
STAGES = ("validate", "train", "promote", "batch_score")
MONTHS = ("2024-01", "2024-02")  # the first model trains once two months are validated
ROWS = 20_000
WORKERS = ("worker-a", "worker-b")
REDIS_DB = 11
"""The Redis database this test's broker uses, emptied before and after (others use 0)."""
HEARTBEAT_TIMEOUT_S = 30
"""How long the scheduler waits for a task's heartbeat before it fails the try (default 300)."""
RUN_TIMEOUT_S = 420.0
WORKER_NAME_MODULE = '''"""Airflow's [core] hostname_callable for the test's Celery workers."""

import os


def hostname() -> str:
    return os.environ["MLPLATFORM_CELERY_WORKER"]
'''


@dataclass(frozen=True)
class CeleryPlatform(Platform):
    """The embedded platform on the CeleryExecutor with two local workers (no serving app:
    the deploy DAG stays paused)."""

    broker_url: str = ""
    result_backend: str = ""

    @property
    def worker_name_dir(self) -> Path:
        return self.home / "celery_worker_name"

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            # The test process runs in Airflow's unit-test mode (conftest), whose defaults
            # (DAGs unpaused at creation among them) the platform's processes would inherit.
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": self.result_backend,
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # The DAG files never change during the test: parsed once at start, not again every
            # 30 s (the default), which takes CPU from the workers' tasks on a small machine.
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
        }

    def services(self) -> list[Service]:
        kept = [s for s in super().services() if s.name != "serving"]
        return kept + [self.worker(name) for name in WORKERS]

    def worker(self, name: str) -> Service:
        # Two workers on one machine share its hostname, which Airflow records on each task
        # instance; each reports its own name instead, as workers on separate machines would.
        # No log server (`--skip-serve-logs`): both would bind the same port, and the
        # api-server reads the task logs from the shared log folder.
        include = super().env()["PYTHONPATH"]
        return Service(
            f"celery-{name}",
            ("env", f"PYTHONPATH={include}{os.pathsep}{self.worker_name_dir}",
             "AIRFLOW__CORE__HOSTNAME_CALLABLE=celery_worker_name.hostname",
             f"MLPLATFORM_CELERY_WORKER={name}",
             str(Path(sys.executable).with_name("airflow")), "celery", "worker",
             "--celery-hostname", f"{name}@%h", "--concurrency", "2", "--skip-serve-logs",
             "--without-mingle", "--without-gossip"),
            None,
        )  # fmt: skip

    def prepare(self) -> None:
        self.worker_name_dir.mkdir(parents=True, exist_ok=True)
        (self.worker_name_dir / "celery_worker_name.py").write_text(WORKER_NAME_MODULE)
        super().prepare()


def _descendants(pid: int) -> list[Any]:
    """The process and every process it started (psutil handles), or none if it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _kill(processes: list[Any]) -> None:
    import psutil

    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(processes, timeout=15)  # reaps the ones this process started


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    """Redis as the Celery broker, on a database of its own that is emptied afterwards."""
    require_service("Redis", "127.0.0.1", 6379)
    import redis

    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    connection = redis.Redis.from_url(url)
    connection.flushdb()  # nothing queued by an earlier, interrupted run
    try:
        yield url
    finally:
        connection.flushdb()
        connection.close()


@pytest.fixture(scope="module")
def postgres_uri() -> Iterator[str]:
    """A throwaway PostgreSQL database for Airflow's metadata and Celery's results."""
    with throwaway_postgres("mlplatform_celery") as uri:
        yield uri


def _wait_for_workers(broker_url: str, timeout_s: float = 180) -> None:
    """Wait until both workers answer a Celery ping over the broker."""
    from celery import Celery

    app = Celery(broker=broker_url)
    try:
        deadline = time.monotonic() + timeout_s
        answered: set[str] = set()
        while time.monotonic() < deadline:
            answered = {node.split("@")[0] for reply in app.control.ping(timeout=2) for node in reply}
            if answered >= set(WORKERS):
                return
            time.sleep(1)
        raise RuntimeError(f"Celery workers {sorted(set(WORKERS) - answered)} did not answer within "
                           f"{timeout_s:.0f}s; see the celery-worker-*.log files")  # fmt: skip
    finally:
        app.close()


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, postgres_uri: str, broker_url: str
) -> Iterator[CeleryPlatform]:
    """The embedded platform on the CeleryExecutor, in a temporary home on free ports."""
    platform = CeleryPlatform(
        home=tmp_path_factory.mktemp("celery-platform"),
        airflow_port=free_port(),
        mlflow_port=free_port(),
        sink_port=free_port(),
        serving_port=free_port(),
        airflow_db_uri=postgres_uri,
        broker_url=broker_url,
        result_backend=f"db+{postgres_uri}",
    )
    try:
        platform.up()
        _wait_for_workers(broker_url)
        yield platform
    finally:
        _stop(platform)


def _stop(platform: CeleryPlatform) -> None:
    """Stop every process of the platform, and every task process its workers started.

    This process started the services, so it reaps them as they exit (unreaped, they would
    count as running until the grace period of ``platform.stop()`` ends); task processes run
    in process groups of their own, so each tree is collected before anything is stopped.
    """
    import psutil

    leaders = [pid for service in platform.services() if (pid := platform.pid(service.name))]
    trees = [process for pid in leaders for process in _descendants(pid)]
    for pid in leaders:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    psutil.wait_procs(trees, timeout=30)
    platform.stop()  # whatever is left, and the pid files
    _kill(trees)


@pytest.fixture(scope="module")
def client(platform: CeleryPlatform) -> Iterator[Any]:
    from mlplatform.dev.airflow_api import AirflowClient

    client = AirflowClient(platform.airflow_url, "admin", platform.airflow_password())
    client.wait_for_dags([_dag(stage) for stage in STAGES], timeout_s=600)
    for stage in STAGES:  # deploy (no serving app here) and monitor stay paused
        client.set_paused(_dag(stage), False)
    yield client
    client.close()


def _dag(stage: str) -> str:
    return f"{USE_CASE}_{stage}"


def _runs(client: Any, stage: str) -> list[Any]:
    return client.runs(_dag(stage))


def _task_instances(client: Any, stage: str) -> list[Any]:
    return [t for run in _runs(client, stage) for t in client.task_instances(_dag(stage), run.dag_run_id)]


def _succeeds(client: Any, stage: str, run_id: str) -> None:
    state = client.wait(_dag(stage), run_id, RUN_TIMEOUT_S)
    tasks = {t.task_id: t.state for t in client.task_instances(_dag(stage), run_id)}
    assert state == "success", f"{_dag(stage)} run {run_id} ended {state}: {tasks}"


def _wait_until(condition: Any, what: str, timeout_s: float = RUN_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f}s"
        time.sleep(0.5)
    return value


def _champion(platform: CeleryPlatform) -> str | None:
    from mlflow import MlflowClient

    from mlplatform.adapters import registry
    from mlplatform.core import spec

    registry_client = MlflowClient(platform.mlflow_url, platform.mlflow_url)
    return registry.alias_version(registry_client, spec.load_spec(USE_CASE).model_name, "champion")


def test_chain_runs_on_both_workers_and_survives_losing_one(platform: CeleryPlatform, client: Any) -> None:
    """validate → train → promote → batch score on the CeleryExecutor, with tasks on both
    workers. The worker that trains the first model is killed mid-task: the try fails for want
    of heartbeats, the retry runs on the other worker, and the chain completes."""
    from mlplatform.adapters.lake import Lake
    from mlplatform.core import spec
    from mlplatform.stages import ingest

    use_case = spec.load_spec(USE_CASE)
    lake = Lake(platform.env()["MLPLATFORM_LAKE_URI"])
    for seed, month in enumerate(MONTHS):
        ingest.land_generated(lake, use_case.data.dataset, use_case.data.taxi_type, month, ROWS, seed=seed)
    validations = [client.trigger(_dag("validate"), {"month": month}) for month in MONTHS]
    for run_id in validations:
        _succeeds(client, "validate", run_id)

    # The validated Asset starts training: the first model, once both months are validated.
    fitting = _wait_until(
        lambda: next(
            (t for t in _task_instances(client, "train")
             if t.task_id == "fit_and_log" and t.state == "running" and t.hostname),
            None,
        ),
        "fit_and_log running on a worker",
    )  # fmt: skip
    victim, train_run = fitting.hostname, fitting.dag_run_id
    (survivor,) = set(WORKERS) - {victim}
    processes = _descendants(platform.pid(f"celery-{victim}"))
    assert len(processes) >= 4, processes  # the worker, its pool, the task's supervisor and process
    _kill(processes)
    assert not any(p.is_running() for p in processes)

    assert _wait_until(lambda: _champion(platform), "a champion", RUN_TIMEOUT_S + 300) == "1"
    for stage in ("train", "promote"):
        for run in _runs(client, stage):
            _succeeds(client, stage, run.dag_run_id)
    scoring = client.trigger(_dag("batch_score"), {"month": MONTHS[-1]})
    _succeeds(client, "batch_score", scoring)

    fit = next(t for t in client.task_instances(_dag("train"), train_run) if t.task_id == "fit_and_log")
    assert (fit.state, fit.try_number, fit.hostname) == ("success", 2, survivor), fit
    ran = [t for stage in STAGES for t in _task_instances(client, stage)]
    assert {t.state for t in ran} <= {"success", "skipped"}, ran
    assert {t.hostname for t in ran if t.state == "success"} == set(WORKERS)
    scored = client.task_instances(_dag("batch_score"), scoring)
    assert {t.hostname for t in scored if t.state == "success"} == {survivor}
