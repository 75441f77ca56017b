"""The MLOps page: facts gathered from the lake and registry, rendered as one HTML page."""

from __future__ import annotations

import pyarrow as pa

from mlplatform.adapters import snapshots
from mlplatform.airflow import mlops_page
from mlplatform.core import spec


def test_collect_reads_contract_and_monitoring_from_the_lake(lake) -> None:
    use_case = spec.load_spec("taxi_trip_duration")
    manifest = {
        "contract": {"success": True, "bad_row_share": 0.01, "data_docs_url": "file:///docs/index.html"}
    }
    snapshots.write_snapshot(lake, use_case.name, "2024-02", pa.table({"a": [1]}), manifest)
    for window, rmse in (("2024-03", 3.2), ("2024-04", 3.9)):
        lake.write_json(
            f"monitoring/{use_case.name}/history/window={window}/metrics.json",
            {
                "window": window,
                "metrics": {"rmse": rmse, "drift_share": 0.5},
                "breaches": ["rmse"] * (rmse > 3.5),
            },
        )
    status = mlops_page.collect(use_case, lake, tracking_uri=None)
    assert status.contract["month"] == "2024-02" and status.contract["success"] is True
    assert [r["window"] for r in status.monitoring] == ["2024-03", "2024-04"]
    assert status.errors == []


def test_render_shows_every_part() -> None:
    status = mlops_page.UseCaseStatus("taxi_trip_duration", "regression", 4)
    status.models["champion"] = {
        "version": "3",
        "created": 0,
        "run_id": "r",
        "tags": {"promotion.reason": "beat champion by 4%", "promotion.at": "2024-05-01"},
        "metrics": {"val_rmse": 3.21, "val_rmse.pu_borough.Queens": 4.0, "fit_seconds": 9.0},
    }
    status.contract = {"month": "2024-04", "success": False, "bad_row_share": 0.2}
    status.monitoring = [
        {"window": "2024-03", "metrics": {"rmse": 3.2, "drift_share": 0.1}, "breaches": []},
        {"window": "2024-04", "metrics": {"rmse": 4.1, "drift_share": 0.6}, "breaches": ["drift_share"]},
    ]
    status.approvals = [{"subject": "Promote version 4?", "url": "../dags/x/runs/y/tasks/z/required_actions"}]
    page = mlops_page.render([status], {"mlflow": "http://mlflow"}, bundle_version="abc123")
    assert "version 3" in page and "beat champion by 4%" in page
    assert "val_rmse 3.21" in page and "Queens" not in page and "fit_seconds" not in page
    assert "breached" in page and "drift detected" in page
    assert "<svg" in page and "rmse: 3.200 → 4.100" in page
    assert "Promote version 4?" in page
    assert "bundle version abc123" in page
    assert "http://mlflow/#/models/taxi_trip_duration/versions/3" in page


def test_render_escapes_what_it_shows() -> None:
    status = mlops_page.UseCaseStatus("x", "regression", 2, errors=["<script>alert(1)</script>"])
    assert "<script>alert(1)" not in mlops_page.render([status], {})
