"""The embedded default: the whole platform on one machine, no cloud and no Docker.

``make run`` starts the same components as the docker-compose stack, as local processes:
the Slack webhook sink, an MLflow tracking server (SQLite, or the database named by
``MLPLATFORM_MLFLOW_BACKEND_URI``), Airflow's api-server, scheduler, dag-processor and
triggerer (SQLite, or ``MLPLATFORM_AIRFLOW_DB_URI``, with the LocalExecutor) and the
serving app. Everything lives under ``.local/`` (``MLPLATFORM_HOME``); each process is
recorded as a pid file in ``.local/run`` so that ``make stop`` ends exactly those, and a
second ``make run`` reuses what is already up.

Safe by default: every process listens on ``127.0.0.1`` (``MLPLATFORM_BIND_HOST`` says
otherwise); every secret is generated per installation and written mode 0600 under
``.local/secrets`` (created with that mode, never readable by others even for an instant):
Airflow's JWT and API keys, the ``admin`` password and the serving app's admin token
(:attr:`Platform.serving_admin_token`), which the serving app and Airflow's processes get
as ``MLPLATFORM_SERVING_ADMIN_TOKEN`` (the deploy stage sends it as a bearer token).
MLflow runs without authentication here, on purpose: it listens on the loopback interface
only and the embedded platform has one user (see this folder's README); docker-compose
turns MLflow's basic auth on.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets as random_secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from mlplatform.adapters import settings

HOME = settings.LOCAL_HOME


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file readable by its owner only (mode 0600 from creation: ``os.open``
    with the mode, not a ``chmod`` afterwards, so no other user can read it even for an instant).

    An existing file is left alone: ``FileExistsError``. Missing folders are created mode 0700.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


@dataclass(frozen=True)
class Service:
    """A process of the embedded platform and how to tell it is up."""

    name: str
    argv: tuple[str, ...]
    health_url: str | None
    timeout_s: float = 180.0


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _env_port(name: str) -> int:
    value = settings.get(name)
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be a port number, got {value!r}") from None


@dataclass(frozen=True)
class Platform:
    """One installation of the embedded platform: a home folder, ports and databases.

    ``make run`` uses the default (``.local/``, the usual ports, SQLite); the system test
    makes its own with a temporary home, free ports and PostgreSQL.
    """

    home: Path = HOME
    airflow_port: int = field(default_factory=lambda: _env_port("MLPLATFORM_AIRFLOW_PORT"))
    mlflow_port: int = field(default_factory=lambda: _env_port("MLPLATFORM_MLFLOW_PORT"))
    sink_port: int = field(default_factory=lambda: _env_port("MLPLATFORM_SINK_PORT"))
    serving_port: int = field(default_factory=lambda: _env_port("MLPLATFORM_SERVING_PORT"))
    airflow_db_uri: str | None = field(
        default_factory=lambda: settings.get("MLPLATFORM_AIRFLOW_DB_URI") or None
    )
    mlflow_db_uri: str | None = field(
        default_factory=lambda: settings.get("MLPLATFORM_MLFLOW_BACKEND_URI") or None
    )
    lake_uri: str | None = None
    bind_host: str = field(default_factory=lambda: settings.get("MLPLATFORM_BIND_HOST"))

    @property
    def reach_host(self) -> str:
        """The address clients use: the bind address, or loopback when bound to every interface."""
        return "127.0.0.1" if self.bind_host in ("0.0.0.0", "::", "") else self.bind_host

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def airflow_url(self) -> str:
        return f"http://{self.reach_host}:{self.airflow_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.reach_host}:{self.mlflow_port}"

    @property
    def sink_url(self) -> str:
        return f"http://{self.reach_host}:{self.sink_port}"

    @property
    def serving_url(self) -> str:
        return f"http://{self.reach_host}:{self.serving_port}"

    def secret(self, name: str) -> str:
        """A random secret generated once per installation, kept mode 0600 in its home."""
        path = self.home / "secrets" / name
        if not path.exists():
            # A concurrent start may have written it meanwhile: then that one is used.
            with contextlib.suppress(FileExistsError):
                write_private(path, random_secrets.token_urlsafe(32))
        return path.read_text().strip()

    @property
    def serving_admin_token(self) -> str:
        """The bearer token of the serving app's admin routes (``make run`` prints it)."""
        return self.secret("serving-admin-token")

    @property
    def passwords_file(self) -> Path:
        """Airflow's password file for the ``admin`` user (written 0600 by :meth:`prepare`)."""
        return self.home / "airflow" / "passwords.json"

    def env(self) -> dict[str, str]:
        """The environment every process of the platform runs with."""
        repo = settings.REPO_ROOT
        airflow_home = self.home / "airflow"
        hook = f"{self.sink_url}/hooks/alerts"
        return {
            "PYTHONPATH": str(repo / "include"),
            "MLPLATFORM_HOME": str(self.home),
            "MLPLATFORM_ENV": "local",
            "MLPLATFORM_SCHEDULES": settings.explicit("MLPLATFORM_SCHEDULES") or "off",
            "MLPLATFORM_LAKE_URI": self.lake_uri or (self.home / "lake").as_uri(),
            "MLPLATFORM_MLFLOW_ARTIFACT_URI": (self.home / "mlflow" / "artifacts").as_uri(),
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            # The MLflow server's job runner (three more processes) serves features unused here.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            # MLflow's usage telemetry would post to the internet, and its thread edits the
            # environment while a task's code may be iterating it.
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLPLATFORM_SLACK_WEBHOOK_URL": hook,
            "MLPLATFORM_SLACK_CONN_ID": "slack_alerts",
            "AIRFLOW_CONN_SLACK_ALERTS": json.dumps({"conn_type": "slackwebhook", "password": hook}),
            "MLPLATFORM_SERVING_URL": self.serving_url,
            "MLPLATFORM_SERVING_ADMIN_TOKEN": self.serving_admin_token,
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(repo / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.airflow_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.airflow_db_uri
            or f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__API__BASE_URL": self.airflow_url,
            "AIRFLOW__API__PORT": str(self.airflow_port),
            "AIRFLOW__API__HOST": self.bind_host,
            "AIRFLOW__API_AUTH__JWT_SECRET": self.secret("jwt"),
            "AIRFLOW__API__SECRET_KEY": self.secret("api"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
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
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
        }

    def services(self) -> list[Service]:
        """The processes of the platform, in start order."""
        mlflow_db = self.mlflow_db_uri or f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"
        airflow = _bin("airflow")
        return [
            Service(
                "webhook-sink",
                (sys.executable, "-m", "mlplatform.dev.webhook_sink", "--host", self.bind_host,
                 "--port", str(self.sink_port),
                 "--store", str(self.home / "alerts" / "messages.jsonl")),
                f"{self.sink_url}/messages",
            ),
            Service(
                "mlflow",
                (_bin("mlflow"), "server", "--host", self.bind_host, "--port", str(self.mlflow_port),
                 "--backend-store-uri", mlflow_db,
                 "--artifacts-destination", (self.home / "mlflow" / "artifacts").as_uri(), "--workers", "1"),
                f"{self.mlflow_url}/health",
            ),
            Service("airflow-api-server",
                    (airflow, "api-server", "--host", self.bind_host, "--port", str(self.airflow_port)),
                    f"{self.airflow_url}/api/v2/monitor/health"),
            Service("airflow-scheduler", (airflow, "scheduler"), None),
            Service("airflow-dag-processor", (airflow, "dag-processor"), None),
            Service("airflow-triggerer", (airflow, "triggerer"), None),
            Service(
                "serving",
                (sys.executable, "-m", "uvicorn", "mlplatform.serving:app", "--host", self.bind_host,
                 "--port", str(self.serving_port)),
                f"{self.serving_url}/health",
            ),
        ]  # fmt: skip

    # -- processes ----------------------------------------------------------------------------
    def pid(self, name: str) -> int | None:
        """The pid of a running service, or ``None``."""
        try:
            pid = int((self.run_dir / f"{name}.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _group_alive(pid) else None

    def start(self, service: Service) -> int:
        """Start ``service`` unless it already runs; returns its pid."""
        if (pid := self.pid(service.name)) is not None:
            return pid
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.run_dir / f"{service.name}.log", "ab")  # noqa: SIM115 - handed to the child
        process = subprocess.Popen(
            service.argv,
            env={**os.environ, **self.env()},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so stop() ends its workers too
            cwd=settings.REPO_ROOT,
        )
        (self.run_dir / f"{service.name}.pid").write_text(str(process.pid))
        return process.pid

    def wait_healthy(self, service: Service) -> None:
        if service.health_url is None:
            return
        deadline = time.monotonic() + service.timeout_s
        while time.monotonic() < deadline:
            if _healthy(service.health_url):
                return
            if self.pid(service.name) is None:
                break
            time.sleep(1)
        log = self.run_dir / f"{service.name}.log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(
            f"{service.name} did not become healthy at {service.health_url}; log {log}:\n{tail}"
        )

    def write_passwords_file(self) -> None:
        """Airflow's password file with a generated ``admin`` password, mode 0600.

        Written before the api-server starts: left to Airflow, the file it generates is
        readable by every user of the machine.
        """
        if not self.passwords_file.exists():
            admin = {"admin": self.secret("airflow-admin-password")}
            with contextlib.suppress(FileExistsError):
                write_private(self.passwords_file, json.dumps(admin))

    def prepare(self) -> None:
        """Create or upgrade the Airflow metadata database (idempotent)."""
        env = self.env()
        Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        (self.home / "mlflow" / "artifacts").mkdir(parents=True, exist_ok=True)
        self.write_passwords_file()
        result = subprocess.run(
            [_bin("airflow"), "db", "migrate"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )

    def up(self, only: tuple[str, ...] | None = None) -> None:
        """Start (or reuse) the platform's processes and wait until they answer."""
        self.prepare()
        chosen = [s for s in self.services() if only is None or s.name in only]
        for service in chosen:
            self.start(service)
        for service in chosen:
            self.wait_healthy(service)

    def access(self) -> str:
        """Where a person finds each part of the running platform."""
        from mlplatform.stages.contracts import data_docs_index

        return (
            f"Airflow UI:  {self.airflow_url}  (user admin, password {self.airflow_password()})\n"
            f"MLOps page:  {self.airflow_url}/mlops/\n"
            f"MLflow UI:   {self.mlflow_url}\n"
            f"Serving app: {self.serving_url}/docs  (admin token {self.serving_admin_token})\n"
            f"Alerts:      {self.sink_url}/messages  (the local Slack webhook sink)\n"
            f"Data Docs:   {data_docs_index().as_uri()}\n"
            f"Lake:        {self.env()['MLPLATFORM_LAKE_URI']}\n"
            f"Logs:        {self.run_dir}\n"
            "The platform keeps running for you to explore; `make stop` stops it."
        )

    def airflow_password(self) -> str:
        """The generated password of the ``admin`` user (the api-server writes it on start)."""
        return str(json.loads(self.passwords_file.read_text())["admin"])

    def stop(self, grace_s: float = 30.0) -> list[str]:
        """Stop every process this platform started (SIGTERM, then SIGKILL); returns their names."""
        groups = {}
        for pid_file in sorted(self.run_dir.glob("*.pid")):
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
        for pid in groups.values():
            if _group_alive(pid):
                os.killpg(pid, signal.SIGKILL)
        return sorted(groups)


def _group_alive(pgid: int) -> bool:
    # A leader this process started stays a zombie, still a member of its group, until it is
    # reaped: reap it once it has exited, or the stop would wait out its grace every time.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status < 500)
    except (urllib.error.URLError, OSError):
        return False


def stop() -> int:
    """``make stop``: stop every process the default platform started."""
    stopped = Platform().stop()
    print("\n".join(f"stopped {name}" for name in stopped) or "nothing to stop")
    return 0
