"""The MLOps page in the Airflow UI: an Airflow 3 plugin (a FastAPI app plus a nav entry).

The page lives at ``/mlops/`` on the api-server and appears in the UI's navigation as
"MLOps" (an embedded view). It requires the same login as the rest of the UI. What it shows
is built by ``mlplatform.airflow.mlops_page``; this file only wires it into Airflow and reads the
two facts only Airflow knows: pending approvals and the DAG bundle version of the runs.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse


def _airflow_facts(use_case: str) -> tuple[list[dict[str, Any]], str | None]:
    """Pending approvals of the use case's DAGs and the bundle version of its latest run."""
    from airflow.models.dagrun import DagRun
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    prefix = f"{use_case}_"
    with create_session() as session:
        pending = session.execute(
            select(HITLDetail.subject, TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id)
            .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
            .where(HITLDetail.responded_at.is_(None), TaskInstance.dag_id.startswith(prefix))
        ).all()
        version = session.scalar(
            select(DagRun.bundle_version)
            .where(DagRun.dag_id.startswith(prefix))
            .order_by(DagRun.run_after.desc())
            .limit(1)
        )
    approvals = [
        {"subject": subject, "url": f"../dags/{dag_id}/runs/{run_id}/tasks/{task_id}/required_actions"}
        for subject, dag_id, run_id, task_id in pending
    ]
    return approvals, version


def _page(as_json: bool = False) -> Any:
    from mlplatform.adapters import settings
    from mlplatform.adapters.lake import Lake
    from mlplatform.airflow import mlops_page
    from mlplatform.core import spec

    lake = Lake()
    tracking = settings.tracking_uri()
    statuses, versions = [], []
    for use_case in spec.load_all():
        status = mlops_page.collect(use_case, lake, tracking)
        try:
            status.approvals, version = _airflow_facts(use_case.name)
            versions.append(version)
        except Exception as exc:
            status.errors.append(f"Airflow metadata unreachable: {exc}")
        statuses.append(status)
    if as_json:
        return [s.__dict__ for s in statuses]
    alerts = settings.get("MLPLATFORM_SLACK_WEBHOOK_URL").rsplit("/hooks", 1)[0] + "/messages"
    links = {"mlflow": tracking, "alerts": alerts}
    bundle_version = next((v for v in versions if v), None)
    return mlops_page.render(statuses, links, bundle_version)


def _authenticated() -> Any:
    from airflow.api_fastapi.core_api.security import requires_authenticated

    return Depends(requires_authenticated())


app = FastAPI(title="MLOps", dependencies=[_authenticated()])


@app.get("/", response_class=HTMLResponse)
def mlops_page() -> str:
    """The MLOps page."""
    return _page()


@app.get("/status.json")
def mlops_status() -> list[dict[str, Any]]:
    """The same facts as JSON, for scripts and tests."""
    return _page(as_json=True)


class MLOpsPlugin(AirflowPlugin):
    name = "mlops"
    fastapi_apps = [{"app": app, "url_prefix": "/mlops", "name": "MLOps"}]
    external_views = [
        {"name": "MLOps", "href": "mlops/", "url_route": "mlops", "destination": "nav", "category": "browse"}
    ]
