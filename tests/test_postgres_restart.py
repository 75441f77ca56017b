"""Airflow's metadata database restarts under a running scheduler, and the run completes.

A PostgreSQL cluster of the test's own (``initdb`` and ``pg_ctl`` into a temporary folder, on a
free port: the machine's shared PostgreSQL is never touched) holds Airflow's metadata; the
platform's api-server, scheduler and dag-processor run on it with the LocalExecutor. A validate
run of one small month is triggered, and while it is in progress the cluster is restarted in
``fast`` mode, which ends every connection: the api-server and the task get through with fresh
ones; the scheduler and the dag-processor exit when their loop loses the database in the middle
of a query (Airflow's own behaviour; whether it happens depends on what the loop was doing at
that instant) and are started again as a supervisor would; the run must end in success.

Skips with the reason when PostgreSQL's server binaries are absent; with
``MLPLATFORM_REQUIRE_SERVICES=1`` it fails instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REQUIRE_SERVICES, free_port

pytestmark = [pytest.mark.system, pytest.mark.slow]

USE_CASE = "taxi_trip_duration"
MONTH = "2024-01"
DEADLINE_S = 900.0
"""Generous: the run takes well under a minute on an idle machine; only a hang reaches this."""


def _server_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (Debian's layout first, then the PATH)."""
    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        folder = Path(initdb).parent
        if (folder / "pg_ctl").exists():
            return folder
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    return None


class Cluster:
    """A PostgreSQL cluster in a folder of its own, run as ``postgres`` when the test is root
    (PostgreSQL refuses to run as root)."""

    def __init__(self, binaries: Path) -> None:
        self.binaries, self.port = binaries, free_port()
        self.home = Path(tempfile.mkdtemp(prefix="mlplatform-pg-"))
        self.data, self.log = self.home / "data", self.home / "server.log"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.home, "postgres", "postgres")

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.binaries / tool), *args]
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=self.home)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}\n{log}")

    def _ctl(self, action: str) -> None:
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl", action, "-D", str(self.data), "-l", str(self.log), "-o", options, "-m", "fast", "-w"
        )

    def create(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self._ctl("start")

    def restart(self) -> None:
        self._ctl("restart")  # fast: every connection is ended, as a failover or a crash does

    def started_at(self) -> Any:
        """When the cluster's server process started (a restart changes it)."""
        import psycopg2

        db = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        try:
            with db.cursor() as cur:
                cur.execute("SELECT pg_postmaster_start_time()")
                return cur.fetchone()[0]
        finally:
            db.close()

    def uri(self, database: str) -> str:
        import psycopg2

        admin = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{database}"')
        admin.close()
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        if self.data.exists():
            with contextlib.suppress(RuntimeError):  # not running
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    binaries = _server_binaries()
    if binaries is None:
        why = "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        if REQUIRE_SERVICES:
            pytest.fail(f"{why} (MLPLATFORM_REQUIRE_SERVICES=1)")
        pytest.skip(why)
    cluster = Cluster(binaries)
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.remove()


def _exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited (reaped here, so it leaves no zombie behind)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: ask the system
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return done == pid


def _poll(read: Any) -> Any:
    """``read()``, or ``None`` while the api-server cannot answer (its database is restarting)."""
    from mlplatform.dev.airflow_api import AirflowError

    try:
        return read()
    except (AirflowError, OSError, ValueError, KeyError):
        return None
    except Exception as exc:  # httpx's errors: the server is away for a moment
        if type(exc).__module__.startswith("httpx"):
            return None
        raise


def test_a_run_completes_across_a_restart_of_airflows_database(cluster: Cluster, tmp_path: Path) -> None:
    from mlplatform.adapters.lake import Lake
    from mlplatform.core import spec
    from mlplatform.dev.airflow_api import AirflowClient
    from mlplatform.dev.embedded import Platform
    from mlplatform.stages import ingest

    platform = Platform(
        home=tmp_path / "platform",
        airflow_port=free_port(),
        mlflow_port=free_port(),
        sink_port=free_port(),
        serving_port=free_port(),
        airflow_db_uri=cluster.uri("airflow"),
    )
    dag_id = f"{USE_CASE}_validate"
    use_case = spec.load_spec(USE_CASE)
    lake = Lake(platform.env()["MLPLATFORM_LAKE_URI"])
    ingest.land_generated(lake, use_case.data.dataset, use_case.data.taxi_type, MONTH, 2_000, seed=1)
    try:
        platform.up(only=("airflow-api-server", "airflow-scheduler", "airflow-dag-processor"))
        airflow = AirflowClient(platform.airflow_url, "admin", platform.airflow_password())
        airflow.wait_for_dags([dag_id], timeout_s=600)
        airflow.set_paused(dag_id, False)
        run_id = airflow.trigger(dag_id, {"month": MONTH})

        # Restart while the run is in progress: once a task of it is queued or running.
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            tasks = airflow.task_instances(dag_id, run_id)
            if any(t.state in ("queued", "running", "success") for t in tasks):
                break
            time.sleep(0.5)
        assert airflow.run(dag_id, run_id).state in ("queued", "running"), "the run ended before the restart"
        before = cluster.started_at()
        cluster.restart()
        assert cluster.started_at() > before  # a new server: every old connection is gone

        # Airflow's scheduler and DAG processor exit when their database goes away in the middle
        # of a loop (whether it does depends on what the loop was doing at that instant); in
        # production a supervisor starts them again (compose's restart policy, systemd, MWAA).
        # The test is that supervisor: each starts again on the same database and the run must
        # complete without any other repair. The API server answers per request and stays up.
        loops = ("airflow-scheduler", "airflow-dag-processor")
        supervised = [s for s in platform.services() if s.name in loops]
        pids = {s.name: platform.pid(s.name) for s in supervised}
        restarts = {s.name: 0 for s in supervised}
        state = None
        while time.monotonic() < deadline:
            for service in supervised:
                pid = pids[service.name]
                if pid is None or _exited(pid):
                    if pid is not None:
                        with contextlib.suppress(ProcessLookupError):  # what it left of its group
                            os.killpg(pid, signal.SIGKILL)
                    (platform.run_dir / f"{service.name}.pid").unlink(missing_ok=True)
                    pids[service.name] = platform.start(service)
                    restarts[service.name] += 1
            found = _poll(lambda: airflow.run(dag_id, run_id))
            state = found and found.state
            if state in ("success", "failed"):
                break
            time.sleep(2)
        tasks = _poll(lambda: {t.task_id: t.state for t in airflow.task_instances(dag_id, run_id)})
        assert state == "success", f"run ended {state}; tasks {tasks}"
        assert platform.pid("airflow-api-server") is not None, "the API server died with its database"
        print(f"started again by the test's supervisor: {restarts}")
        assert tasks and set(tasks.values()) == {"success"}
        airflow.close()
    finally:
        platform.stop()
