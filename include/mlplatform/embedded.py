"""The embedded default: the whole platform on one machine, no cloud and no Docker.

``make run`` starts the same components as the docker-compose stack, as local processes:
the Slack webhook sink, an MLflow tracking server (SQLite, or the database named by
``MLPLATFORM_MLFLOW_BACKEND_URI``), Airflow's api-server, scheduler, dag-processor and
triggerer (SQLite, or ``MLPLATFORM_AIRFLOW_DB_URI``, with the LocalExecutor) and the
serving app. Everything lives under ``.local/`` (``MLPLATFORM_HOME``); each process is
recorded as a pid file in ``.local/run`` so that ``make stop`` ends exactly those, and a
second ``make run`` reuses what is already up.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlplatform import settings

HOME = settings.LOCAL_HOME
RUN_DIR = HOME / "run"
AIRFLOW_PORT = int(os.getenv("MLPLATFORM_AIRFLOW_PORT", "8080"))
MLFLOW_PORT = int(os.getenv("MLPLATFORM_MLFLOW_PORT", "5000"))
SINK_PORT = int(os.getenv("MLPLATFORM_SINK_PORT", "8765"))
SERVING_PORT = int(os.getenv("MLPLATFORM_SERVING_PORT", "8000"))


@dataclass(frozen=True)
class Service:
    """A process of the embedded platform and how to tell it is up."""

    name: str
    argv: tuple[str, ...]
    health_url: str | None
    timeout_s: float = 120.0


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def secret(name: str) -> str:
    """A random secret generated once per installation and kept in ``.local``."""
    path = HOME / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def platform_env(home: Path = HOME, airflow_db_uri: str | None = None) -> dict[str, str]:
    """The environment every process of the embedded platform runs with."""
    repo = settings.REPO_ROOT
    airflow_home = home / "airflow"
    db_uri = (
        airflow_db_uri or os.getenv("MLPLATFORM_AIRFLOW_DB_URI") or f"sqlite:///{airflow_home / 'airflow.db'}"
    )
    sink_url = f"http://127.0.0.1:{SINK_PORT}/hooks/alerts"
    env = {
        "PYTHONPATH": str(repo / "include"),
        "MLPLATFORM_HOME": str(home),
        "MLPLATFORM_ENV": "local",
        "MLPLATFORM_LAKE_URI": os.getenv("MLPLATFORM_LAKE_URI", (home / "lake").as_uri()),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{MLFLOW_PORT}",
        "MLPLATFORM_SLACK_WEBHOOK_URL": sink_url,
        "MLPLATFORM_SLACK_CONN_ID": "slack_alerts",
        "AIRFLOW_CONN_SLACK_ALERTS": json.dumps({"conn_type": "slackwebhook", "password": sink_url}),
        "MLPLATFORM_SERVING_URL": f"http://127.0.0.1:{SERVING_PORT}",
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(repo / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{AIRFLOW_PORT}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_uri,
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{AIRFLOW_PORT}",
        "AIRFLOW__API__PORT": str(AIRFLOW_PORT),
        "AIRFLOW__API_AUTH__JWT_SECRET": secret("jwt"),
        "AIRFLOW__API__SECRET_KEY": secret("api"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(airflow_home / "passwords.json"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
            [
                {
                    "name": "mlplatform",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(repo / "dags")},
                }
            ]
        ),
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
    }
    return env


def services(home: Path = HOME) -> list[Service]:
    """The processes ``make run`` starts, in start order."""
    mlflow_db = os.getenv("MLPLATFORM_MLFLOW_BACKEND_URI") or f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    artifacts = settings.get("MLPLATFORM_MLFLOW_ARTIFACT_URI")
    airflow = _bin("airflow")
    return [
        Service(
            "webhook-sink",
            (sys.executable, "-m", "mlplatform.webhook_sink", "--port", str(SINK_PORT),
             "--store", str(home / "alerts" / "messages.jsonl")),
            f"http://127.0.0.1:{SINK_PORT}/messages",
        ),
        Service(
            "mlflow",
            (_bin("mlflow"), "server", "--host", "127.0.0.1", "--port", str(MLFLOW_PORT),
             "--backend-store-uri", mlflow_db, "--artifacts-destination", artifacts, "--workers", "1"),
            f"http://127.0.0.1:{MLFLOW_PORT}/health",
        ),
        Service("airflow-api-server", (airflow, "api-server", "--port", str(AIRFLOW_PORT)),
                f"http://127.0.0.1:{AIRFLOW_PORT}/api/v2/monitor/health"),
        Service("airflow-scheduler", (airflow, "scheduler"), None),
        Service("airflow-dag-processor", (airflow, "dag-processor"), None),
        Service("airflow-triggerer", (airflow, "triggerer"), None),
        Service(
            "serving",
            (sys.executable, "-m", "uvicorn", "mlplatform.serving:app", "--host", "127.0.0.1",
             "--port", str(SERVING_PORT)),
            f"http://127.0.0.1:{SERVING_PORT}/health",
        ),
    ]  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _pid(name: str) -> int | None:
    path = RUN_DIR / f"{name}.pid"
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status < 500
    except (urllib.error.URLError, OSError):
        return False


def start(service: Service, env: Mapping[str, str]) -> int:
    """Start ``service`` unless it already runs; returns its pid."""
    if (pid := _pid(service.name)) is not None:
        return pid
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    log = open(RUN_DIR / f"{service.name}.log", "ab")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(
        service.argv,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so stop() ends its workers too
        cwd=settings.REPO_ROOT,
    )
    (RUN_DIR / f"{service.name}.pid").write_text(str(process.pid))
    return process.pid


def wait_healthy(service: Service) -> None:
    if service.health_url is None:
        return
    deadline = time.monotonic() + service.timeout_s
    while time.monotonic() < deadline:
        if _healthy(service.health_url):
            return
        if _pid(service.name) is None:
            break
        time.sleep(1)
    log = RUN_DIR / f"{service.name}.log"
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"{service.name} did not become healthy at {service.health_url}; log {log}:\n{tail}")


def prepare_airflow(env: Mapping[str, str]) -> None:
    """Create or upgrade the Airflow metadata database (idempotent)."""
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [_bin("airflow"), "db", "migrate"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=600,
    )


def up(only: tuple[str, ...] | None = None) -> dict[str, str]:
    """Start (or reuse) the platform's processes and wait until they answer."""
    env = platform_env()
    (HOME / "mlflow").mkdir(parents=True, exist_ok=True)
    prepare_airflow(env)
    chosen = [s for s in services() if only is None or s.name in only]
    for service in chosen:
        start(service, env)
    for service in chosen:
        wait_healthy(service)
    return env


def airflow_password(env: Mapping[str, str]) -> str:
    """The generated password of the ``admin`` user (SimpleAuthManager writes it on start)."""
    path = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    return json.loads(path.read_text())["admin"]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop(grace_s: float = 30.0) -> int:
    """Stop every process recorded in ``.local/run/*.pid`` (SIGTERM, then SIGKILL)."""
    groups = {}
    for pid_file in sorted(Path(RUN_DIR).glob("*.pid")):
        try:
            pid = int(pid_file.read_text().strip())
            os.killpg(pid, signal.SIGTERM)
            groups[pid_file.stem] = pid
        except (ValueError, ProcessLookupError, PermissionError):
            pass
        pid_file.unlink(missing_ok=True)
    deadline = time.monotonic() + grace_s
    while any(_group_alive(p) for p in groups.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    for name, pid in groups.items():
        if _group_alive(pid):
            os.killpg(pid, signal.SIGKILL)
        print(f"stopped {name} (pid {pid})")
    if not groups:
        print("nothing to stop")
    return 0


def run(months: int = 4, rows: int = 50_000, start: str = "2024-01") -> int:
    """Land ``months`` months from ``start`` for every use case, then show the lake."""
    from mlplatform import ingest, spec
    from mlplatform.cli import _months
    from mlplatform.lake import Lake, inventory

    lake = Lake()
    print(f"lake: {lake.root_uri}")
    datasets = {(u.data.dataset, u.data.taxi_type) for u in spec.load_all()}
    for dataset, taxi_type in sorted(datasets):
        for i, month in enumerate(_months(start, months)):
            landed, made = ingest.land_generated(lake, dataset, taxi_type, month, rows, seed=i)
            state = "landed" if landed.changed else "present"
            print(
                f"  {state:<8} {landed.path}  {made.table.num_rows:,} rows  "
                f"noise floor RMSE {made.noise_floor_rmse:.3f} min"
            )
    print()
    for zone, entries in inventory(lake).items():
        print(f"  {zone:<12} {len(entries):>4} objects  {sum(e.size for e in entries) / 1e6:8.1f} MB")
    return 0
