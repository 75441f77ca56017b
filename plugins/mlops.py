"""The MLOps page in the Airflow UI: an Airflow 3 plugin (a FastAPI app plus a nav entry).

The page lives at ``/mlops/`` on the api-server and appears in the UI's navigation as
"MLOps" (an embedded view). It requires the same login as the rest of the UI. What it shows
is gathered by ``mlplatform.airflow.use_case_status`` and rendered by
``mlplatform.airflow.mlops_page`` (breaches and open incidents first, then the
latest month of every stage and the latest live decision, the models, the charts and the
alias timeline); this file only wires it into Airflow, reads the two facts only Airflow
knows (the approval queue and the DAG bundle version of the runs) and serves what the page
links to: drift reports and Data Docs in the lake (``/mlops/lake/...``) and the local Data
Docs site (``/mlops/datadocs/...``), so the links work in every environment.
"""

from __future__ import annotations

import math
import mimetypes
from dataclasses import asdict
from pathlib import Path
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response


def _airflow_facts(use_case: str) -> tuple[list[Any], str | None]:
    """Pending approvals of the use case's DAGs and the bundle version of its latest run."""
    from airflow.models.dagrun import DagRun
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from mlplatform.airflow.use_case_status import PendingApproval

    prefix = f"{use_case}_"
    with create_session() as session:
        pending = session.execute(
            select(
                HITLDetail.subject,
                HITLDetail.body,
                TaskInstance.dag_id,
                TaskInstance.run_id,
                TaskInstance.task_id,
            )
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
        PendingApproval(
            subject=subject,
            url=f"../dags/{dag_id}/runs/{run_id}/tasks/{task_id}/required_actions",
            body_md=body or "",
        )
        for subject, body, dag_id, run_id, task_id in pending
    ]
    return approvals, version


def _docs_root() -> Path:
    from mlplatform.stages.contracts import data_docs_index

    return data_docs_index().parent


def _page(as_json: bool = False) -> Any:
    from mlplatform.adapters import settings
    from mlplatform.adapters.lake import Lake
    from mlplatform.airflow import mlops_page, use_case_status
    from mlplatform.core import spec

    lake = Lake()
    tracking = settings.tracking_uri()
    statuses, versions = [], []
    for use_case in spec.load_all():
        status = use_case_status.collect(use_case, lake, tracking)
        try:
            status.approvals, version = _airflow_facts(use_case.name)
            versions.append(version)
        except Exception as exc:
            status.errors.append(f"Airflow metadata unreachable: {exc}")
        statuses.append(status)
    if as_json:  # each use case's facts, and the incidents the page leads with
        return _finite(
            [{**asdict(s), "incidents": [asdict(i) for i in use_case_status.incidents(s)]} for s in statuses]
        )
    alerts = mlops_page.alerts_link(
        settings.get("MLPLATFORM_ALERTS_URL") or None, settings.get("MLPLATFORM_SLACK_WEBHOOK_URL")
    )
    links = {"mlflow": tracking, "alerts": alerts or ""}
    bundle_version = next((v for v in versions if v), None)
    return mlops_page.render(statuses, links, bundle_version, lake.root_uri, _docs_root())


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None``: JSON has no such numbers, and an interval
    measured on no trips yet (a live decision waiting for labels) holds NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


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
    """The same facts as JSON, for scripts and tests: per use case its records and ``incidents``."""
    return _page(as_json=True)


def _file(name: str, data: bytes) -> Response:
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response(content=data, media_type=kind)


@app.get("/lake/{path:path}")
def lake_object(path: str) -> Response:
    """A drift report or a Data Docs page kept in the lake (never the data itself)."""
    from mlplatform.adapters.lake import Lake
    from mlplatform.airflow.mlops_page import SERVED_LAKE_PREFIXES

    if not path.startswith(SERVED_LAKE_PREFIXES) or ".." in path.split("/"):
        raise HTTPException(404, f"only {', '.join(SERVED_LAKE_PREFIXES)} of the lake are served here")
    lake = Lake()
    if not lake.exists(path):
        raise HTTPException(404, f"{path} is not in the lake")
    return _file(path, lake.read_bytes(path))


@app.get("/datadocs/{path:path}")
def data_docs(path: str) -> Response:
    """A page of the local Great Expectations Data Docs site."""
    root = _docs_root().resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(404, f"no Data Docs page {path}")
    return _file(target.name, target.read_bytes())


class MLOpsPlugin(AirflowPlugin):
    name = "mlops"
    fastapi_apps = [{"app": app, "url_prefix": "/mlops", "name": "MLOps"}]
    external_views = [
        {"name": "MLOps", "href": "mlops/", "url_route": "mlops", "destination": "nav", "category": "browse"}
    ]
