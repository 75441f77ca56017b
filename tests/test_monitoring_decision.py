"""Unit tests of mlplatform.stages.monitoring's retrain decision (cooldown, active runs) and alert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from mlplatform.adapters.lake import Lake
from mlplatform.core.records import BreachRecord, MonitoringRecord
from mlplatform.core.spec import load_spec
from mlplatform.stages import monitoring

USE_CASE = load_spec("taxi_trip_duration")


def test_retrain_decision_cooldown_and_active_runs(lake: Lake) -> None:
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    drifted = BreachRecord("drift_share", 0.6, 0.3, "drift", "60% of features drifted", True)
    breach = MonitoringRecord(USE_CASE.name, "2024-04", "breach", {"drift_share": 0.6}, (drifted,))
    errors = BreachRecord("error_rate", 0.2, 0.05, "serving", "x", False)
    serving_only = MonitoringRecord(USE_CASE.name, "2024-04", "breach", {"error_rate": 0.2}, (errors,))

    assert not monitoring.retrain_decision(lake, USE_CASE, serving_only, 0, now).retrain
    assert "already queued or running" in monitoring.retrain_decision(lake, USE_CASE, breach, 1, now).why_not
    assert monitoring.retrain_decision(lake, USE_CASE, breach, 0, now).retrain
    assert monitoring.retrain_reason(breach) == "2024-04: 60% of features drifted"

    monitoring.record_trigger(lake, USE_CASE.name, "2024-04", "drift", "run-1", "monitor-1", now)
    inside = now + timedelta(hours=USE_CASE.monitoring.retrain_cooldown_hours - 1)
    after = now + timedelta(hours=USE_CASE.monitoring.retrain_cooldown_hours + 1)
    assert "cooldown" in monitoring.retrain_decision(lake, USE_CASE, breach, 0, inside).why_not
    assert monitoring.retrain_decision(lake, USE_CASE, breach, 0, after).retrain
    state = monitoring.read_state(lake, USE_CASE.name)
    assert state["train_run_id"] == "run-1" and len(state["history"]) == 1
    assert lake.exists(monitoring.state_path(USE_CASE.name))


def test_alert_names_what_breached_and_links() -> None:
    record = MonitoringRecord(
        USE_CASE.name,
        "2024-04",
        "breach",
        {"rmse": 4.0, "drift_share": 0.5},
        (BreachRecord("rmse", 4.0, 3.3, "performance", "rmse 4 is 30% worse", True),),
        model={"version": "3", "url": "http://mlflow/#/models/m/versions/3"},
        report_url="file:///lake/monitoring/x/drift_report.html",
        airflow_run_url="http://airflow/dags/d/runs/r",
    )
    alert = monitoring.breach_alert(USE_CASE, record, monitoring.Decision(True, "2024-04: rmse"))
    text = json.dumps(alert.payload())
    assert "rmse 4 is 30% worse" in text and "triggered" in text
    for link in ("drift_report.html", "http://airflow/dags/d/runs/r", "versions/3"):
        assert link in text

    held = monitoring.breach_alert(USE_CASE, record, monitoring.Decision(False, "r", "cooldown: wait"))
    assert "not triggered (cooldown: wait)" in json.dumps(held.payload())
