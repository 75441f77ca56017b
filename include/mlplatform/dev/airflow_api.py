"""A small client for Airflow 3's REST API (``/api/v2``), as the UI and operators use it.

The embedded default's closed loop and the system test drive the platform through this
API exactly as a person would from the UI: unpause a DAG, trigger a run with a conf,
watch it finish.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

TERMINAL = {"success", "failed"}


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
            time.sleep(2)
        raise AirflowError(f"DAGs not parsed within {timeout_s:.0f}s: {sorted(missing)}")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None
    ) -> str:
        body = {"conf": conf or {}, "logical_date": logical_date}
        return str(self._call("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        return found

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        query = {"limit": 100, "order_by": "-run_after"}
        found: list[dict[str, Any]] = self._call("GET", f"/dags/{dag_id}/dagRuns", params=query)["dag_runs"]
        return found

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        found: list[dict[str, Any]] = self._call("GET", path)["task_instances"]
        return found

    def wait(self, dag_id: str, run_id: str, timeout_s: float = 600) -> str:
        """Wait for a run to end; returns its final state."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = str(self.run(dag_id, run_id)["state"])
            if state in TERMINAL:
                return state
            time.sleep(2)
        raise AirflowError(f"{dag_id} run {run_id} did not finish within {timeout_s:.0f}s")

    def trigger_and_wait(
        self, dag_id: str, conf: dict[str, Any] | None = None, timeout_s: float = 600, expect: str = "success"
    ) -> str:
        run_id = self.trigger(dag_id, conf)
        state = self.wait(dag_id, run_id, timeout_s)
        if expect and state != expect:
            failed = [t["task_id"] for t in self.task_instances(dag_id, run_id) if t["state"] == "failed"]
            raise AirflowError(f"{dag_id} run {run_id} ended {state} (failed tasks: {failed or 'none'})")
        return run_id
