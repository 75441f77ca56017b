"""The MLOps page: facts gathered from the lake and registry, rendered as one HTML page."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

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
    assert status.quarantine == [("2024-02", 0.01)]
    assert status.limits.metric == "rmse" and status.limits.unit == "minutes"
    assert status.limits.max_bad_row_share == use_case.contract.max_bad_row_share
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
    status.contract = {
        "month": "2024-04",
        "success": False,
        "bad_row_share": 0.2,
        "data_docs_url": "file:///gx/uncommitted/data_docs/local_site/validations/x.html",
    }
    status.quarantine = [("2024-03", 0.04), ("2024-04", 0.2)]
    status.limits = mlops_page.Limits("rmse", "minutes", 0.07, 0.3, 0.1)
    variants = {"batch": {"rmse": 3.1}, "champion": {"rmse": 3.3}, "challenger": {"rmse": 3.0}}
    status.monitoring = [
        {
            "window": "2024-03",
            "metrics": {"rmse": 3.2, "rmse_reference": 3.0, "drift_share": 0.1},
            "details": {"variants": variants},
            "breaches": [],
        },
        {
            "window": "2024-04",
            "metrics": {"rmse": 4.1, "rmse_reference": 3.0, "drift_share": 0.6},
            "details": {"variants": {"batch": {"rmse": 4.0}}},
            "breaches": ["drift_share"],
            "report_url": "s3://lake/monitoring/taxi_trip_duration/reports/window=2024-04/drift_report.html",
        },
    ]
    status.approvals = [
        mlops_page.PendingApproval(
            "Promote version 4?",
            "../dags/x/runs/y/tasks/z/required_actions",
            "**version 4**\n\n| gate | passed | detail |\n|---|---|---|\n| slices | NO | night +9% |",
        )
    ]
    links = {"mlflow": "http://mlflow", "alerts": "https://slack.example/archives/C1"}
    page = mlops_page.render(
        [status],
        links,
        "abc123",
        lake_root="s3://lake",
        docs_root=Path("/gx/uncommitted/data_docs/local_site"),
    )
    assert "version 3" in page and "beat champion by 4%" in page
    assert "val_rmse 3.21" in page and "Queens" not in page and "fit_seconds" not in page
    assert "breached" in page and "drift detected" in page
    assert "bundle version abc123" in page
    assert "http://mlflow/#/models/taxi_trip_duration/versions/3" in page
    # The approval queue shows what is decided: the gate table.
    assert "Promote version 4?" in page
    assert "<th>gate</th>" in page and "<td>NO</td>" in page and "<strong>version 4</strong>" in page
    # Links the browser can open, in every environment: served next to the page.
    assert 'href="datadocs/validations/x.html"' in page
    assert 'href="lake/monitoring/taxi_trip_duration/reports/window=2024-04/drift_report.html"' in page
    assert "file://" not in page and "s3://" not in page
    assert 'href="https://slack.example/archives/C1"' in page


def test_charts_have_axes_units_thresholds_and_a_line_per_variant() -> None:
    status = mlops_page.UseCaseStatus("taxi_trip_duration", "regression", 4)
    status.limits = mlops_page.Limits("rmse", "minutes", 0.1, 0.3, 0.1)
    status.monitoring = [
        {
            "window": f"2024-0{m}",
            "metrics": {"rmse": 3 + m / 10, "rmse_reference": 3.0, "drift_share": m / 10},
            "details": {"variants": {"batch": {"rmse": 3 + m / 10}, "champion": {"rmse": 3.5}}},
        }
        for m in (3, 4, 5)
    ]
    status.quarantine = [("2024-03", 0.04), ("2024-04", 0.05)]
    rmse, drift = mlops_page.monitoring_charts(status.monitoring, status.limits)
    assert list(rmse.series) == ["overall", "batch", "champion"]
    assert rmse.threshold == pytest.approx([3.3] * 3)
    assert drift.threshold == [0.3, 0.3, 0.3]

    page = mlops_page.render([status], {})
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert len(svgs) == 3
    titles = [re.search(r'aria-label="([^"]+)"', svg)[1] for svg in svgs]
    assert titles == [
        "rmse per variant (rmse (minutes))",
        "drifted features (share of features)",
        "quarantined rows (share of rows)",
    ]
    rmse_svg = svgs[0]
    for label in ("2024-03", "2024-05", "month", "rmse (minutes)", "breach level", "batch", "champion"):
        assert f">{label}</text>" in rmse_svg, label
    assert 'class="threshold"' in rmse_svg and "stroke-dasharray" in rmse_svg
    assert rmse_svg.count("<polyline") == 4  # overall, batch, champion and the threshold


def test_alerts_link_and_served_links_per_environment() -> None:
    local = "http://127.0.0.1:8765/hooks/alerts"
    assert mlops_page.alerts_link(None, local) == "http://127.0.0.1:8765/messages"
    assert mlops_page.alerts_link(None, "https://hooks.slack.com/services/T/B/X") is None
    assert mlops_page.alerts_link("https://slack.example/c", local) == "https://slack.example/c"
    assert mlops_page.served_link("file:///data/lake/monitoring/a.html", "file:///data/lake") == (
        "lake/monitoring/a.html"
    )
    assert mlops_page.served_link("s3://other/x.html", "s3://lake") is None
    assert mlops_page.served_link("https://mlflow/x", "s3://lake") == "https://mlflow/x"


def test_render_escapes_what_it_shows() -> None:
    status = mlops_page.UseCaseStatus("x", "regression", 2, errors=["<script>alert(1)</script>"])
    assert "<script>alert(1)" not in mlops_page.render([status], {})
