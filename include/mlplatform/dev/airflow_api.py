"""A small client for Airflow 3's REST API (``/api/v2``), as the UI and operators use it.

The embedded default's closed loop and the system test drive the platform through this
API exactly as a person would from the UI: unpause a DAG, trigger a run with a conf,
watch it finish.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

TERMINAL = {"success", "failed"}
POLL_S = 0.5
"""How often a wait asks again: a GET the API server answers in milliseconds."""


@dataclass(frozen=True)
class DagRun:
    """A DAG run as the API reports it."""

    dag_run_id: str
    state: str
    """``queued``, ``running``, ``success`` or ``failed``."""


@dataclass(frozen=True)
class TaskInstance:
    """A task instance (one try of a task in a run) as the API reports it."""

    task_id: str
    dag_run_id: str
    state: str | None
    """``None`` until the scheduler has looked at it."""
    try_number: int
    hostname: str
    """The worker that ran it (empty until one has)."""


def _dag_run(found: Any) -> DagRun:
    return DagRun(dag_run_id=str(found["dag_run_id"]), state=str(found["state"]))


def _task_instance(found: Any) -> TaskInstance:
    return TaskInstance(
        task_id=str(found["task_id"]),
        dag_run_id=str(found["dag_run_id"]),
        state=found.get("state"),
        try_number=int(found.get("try_number") or 0),
        hostname=str(found.get("hostname") or ""),
    )


class AirflowError(RuntimeError):
    """The Airflow API refused a request or a run did not end as expected."""


class AirflowClient:
    def __init__(self, base_url: str, username: str, password: str, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)
        response = self._http.post("/auth/token", json={"username": username, "password": password})
        if response.status_code >= 400:
            raise AirflowError(f"login to {self.base_url} as {username!r} failed: {response.status_code}")
        self._http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, f"/api/v2{path}", **kwargs)
        if response.status_code >= 400:
            raise AirflowError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def dag_ids(self) -> list[str]:
        return [d["dag_id"] for d in self._call("GET", "/dags", params={"limit": 1000})["dags"]]

    def wait_for_dags(self, dag_ids: list[str], timeout_s: float = 300) -> None:
        """Wait until the dag-processor has parsed every one of ``dag_ids``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            missing = set(dag_ids) - set(self.dag_ids())
            if not missing:
                return
            time.sleep(POLL_S)
        raise AirflowError(f"DAGs not parsed within {timeout_s:.0f}s: {sorted(missing)}")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def trigger(
        self, dag_id: str, conf: Mapping[str, str] | None = None, logical_date: str | None = None
    ) -> str:
        """Trigger a run with ``conf`` (the DAG's params, e.g. ``{"month": "2024-03"}``); its run id."""
        body = {"conf": dict(conf or {}), "logical_date": logical_date}
        return str(self._call("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> DagRun:
        return _dag_run(self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def runs(self, dag_id: str) -> list[DagRun]:
        """The DAG's latest runs (up to 100), newest first."""
        query = {"limit": 100, "order_by": "-run_after"}
        return [_dag_run(r) for r in self._call("GET", f"/dags/{dag_id}/dagRuns", params=query)["dag_runs"]]

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstance]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return [_task_instance(t) for t in self._call("GET", path)["task_instances"]]

    def wait(self, dag_id: str, run_id: str, timeout_s: float = 600) -> str:
        """Wait for a run to end; returns its final state."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.run(dag_id, run_id).state
            if state in TERMINAL:
                return state
            time.sleep(POLL_S)
        raise AirflowError(f"{dag_id} run {run_id} did not finish within {timeout_s:.0f}s")
