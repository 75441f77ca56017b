"""Unit tests of mlplatform.stages.monitoring's retrain decision (cooldown, active runs) and alert."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

from mlplatform.adapters.lake import Lake
from mlplatform.core import retrain
from mlplatform.core.records import Breach, MonitoringRecord
from mlplatform.core.retrain import RetrainDecision
from mlplatform.core.spec import load_spec
from mlplatform.stages import monitoring
from mlplatform.stages.monitoring import decision

USE_CASE = load_spec("taxi_trip_duration")


def test_retrain_decision_cooldown_and_active_runs(lake: Lake) -> None:
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    drifted = Breach("drift_share", 0.6, 0.3, "drift", "60% of features drifted")
    breach = MonitoringRecord(USE_CASE.name, "2024-04", "breach", {"drift_share": 0.6}, (drifted,))
    errors = Breach("error_rate", 0.2, 0.05, "serving", "x")
    serving_only = MonitoringRecord(USE_CASE.name, "2024-04", "breach", {"error_rate": 0.2}, (errors,))

    assert not monitoring.retrain_decision(lake, USE_CASE, serving_only, 0, now).retrain
    assert "already queued or running" in monitoring.retrain_decision(lake, USE_CASE, breach, 1, now).why_not
    assert monitoring.retrain_decision(lake, USE_CASE, breach, 0, now).retrain
    assert retrain.breach_reason(breach) == "2024-04: 60% of features drifted"

    monitoring.record_trigger(lake, USE_CASE.name, "2024-04", "drift", "run-1", "monitor-1", now)
    inside = now + timedelta(hours=USE_CASE.monitoring.retrain_cooldown_hours - 1)
    after = now + timedelta(hours=USE_CASE.monitoring.retrain_cooldown_hours + 1)
    assert "cooldown" in monitoring.retrain_decision(lake, USE_CASE, breach, 0, inside).why_not
    assert monitoring.retrain_decision(lake, USE_CASE, breach, 0, after).retrain
    state = decision.read_state(lake, USE_CASE.name)
    assert state is not None and state.train_run_id == "run-1" and len(state.history) == 1
    stored = lake.read_json(decision.state_path(USE_CASE.name))
    assert set(stored) == {
        "last_triggered_at",
        "window",
        "reason",
        "train_run_id",
        "monitor_run_id",
        "history",
    }
    assert stored["history"][0] == {
        "triggered_at": now.isoformat(),
        "window": "2024-04",
        "reason": "drift",
        "train_run_id": "run-1",
        "monitor_run_id": "monitor-1",
    }
    assert lake.exists(decision.state_path(USE_CASE.name))


def test_alert_names_what_breached_and_links() -> None:
    record = MonitoringRecord(
        USE_CASE.name,
        "2024-04",
        "breach",
        {"rmse": 4.0, "drift_share": 0.5},
        (Breach("rmse", 4.0, 3.3, "performance", "rmse 4 is 30% worse"),),
        model={"version": "3", "url": "http://mlflow/#/models/m/versions/3"},
        report_url="file:///lake/monitoring/x/drift_report.html",
        airflow_run_url="http://airflow/dags/d/runs/r",
    )
    alert = decision.breach_alert(USE_CASE, record, RetrainDecision(True, "2024-04: rmse"))
    text = json.dumps(alert.payload())
    assert "rmse 4 is 30% worse" in text and "triggered" in text
    for link in ("drift_report.html", "http://airflow/dags/d/runs/r", "versions/3"):
        assert link in text

    held = decision.breach_alert(USE_CASE, record, RetrainDecision(False, "r", "cooldown: wait"))
    assert "not triggered (cooldown: wait)" in json.dumps(held.payload())


# A window's record as monitoring wrote it before the model and serving verdicts were split:
# one `status`, set to `breach` by p99 latency alone (the machine was busy).
OLD_LATENCY_ONLY_RECORD = {
    "use_case": "taxi_trip_duration",
    "window": "2024-04",
    "status": "breach",
    "metrics": {"rmse": 3.41, "rmse_reference": 3.38, "drift_share": 0.0, "p99_latency_ms": 812.0},
    "breaches": ["p99_latency_ms"],
    "breach_details": [
        {
            "metric": "p99_latency_ms",
            "value": 812.0,
            "threshold": 500.0,
            "kind": "serving",
            "message": "serving p99 latency 812 ms (limit 500 ms)",
            "retrain": False,
        }
    ],
    "pending": [],
    "sources": {"batch": "", "serving": ""},
    "details": {},
    "reference": {"months": ["2024-02", "2024-03"], "rows": 20000},
    "model": {"name": "taxi_trip_duration", "version": "2", "run_id": "abc", "url": None},
    "thresholds": {},
    "computed_at": "2026-11-30T10:00:00+00:00",
    "report_url": None,
    "airflow_run_url": None,
    "mlflow_run_id": None,
    "mlflow_run_url": None,
}


def test_an_old_metrics_json_loads_with_both_verdicts(lake: Lake) -> None:
    path = monitoring.record_path(USE_CASE.name, "2024-04")
    lake.write_json(path, OLD_LATENCY_ONLY_RECORD)
    old = monitoring.read_record(lake, USE_CASE.name, "2024-04")
    assert old is not None
    assert (old.model_status, old.serving_status, old.status) == ("ok", "breach", "ok")
    assert old.model_breaches == [] and [b.metric for b in old.serving_breaches] == ["p99_latency_ms"]
    assert old.model_version == "2" and old.record_uri == lake.uri(path)
    # An old model breach stays a model breach; an old window without traffic is unmeasured.
    drifted = {
        **OLD_LATENCY_ONLY_RECORD,
        "metrics": {"drift_share": 0.6},
        "breach_details": [
            {
                "metric": "drift_share",
                "value": 0.6,
                "threshold": 0.3,
                "kind": "drift",
                "message": "m",
                "retrain": True,
            }
        ],
    }
    again = MonitoringRecord.from_dict(drifted)
    assert (again.model_status, again.serving_status) == ("breach", "unmeasured")
    pending = MonitoringRecord.from_dict(
        {**OLD_LATENCY_ONLY_RECORD, "status": "pending", "breach_details": []}
    )
    assert (pending.model_status, pending.serving_status) == ("pending", "ok")
    # Written again, the record keeps the single status older readers know (the model's).
    stored = old.to_dict()
    assert stored["status"] == stored["model_status"] == "ok" and stored["serving_status"] == "breach"
    assert MonitoringRecord.from_dict(stored) == dataclasses.replace(old, record_uri=old.record_uri)


def test_latency_breaches_the_endpoint_not_the_model() -> None:
    metrics = {"rmse": 3.4, "rmse_reference": 3.38, "rmse_degradation": 0.006, "drift_share": 0.0}
    slow = {**metrics, "p99_latency_ms": USE_CASE.monitoring.max_p99_latency_ms * 3, "error_rate": 0.0}
    found = decision.breaches(USE_CASE, slow)
    assert [b.metric for b in found] == ["p99_latency_ms"] and found[0].serving and not found[0].retrain
    assert decision.model_status(found, [], "rmse") == "ok"
    assert decision.serving_status(found, slow) == "breach"
    assert decision.serving_status([], metrics) == "unmeasured"
    assert decision.serving_status([], {**metrics, "error_rate": 0.0}) == "ok"
    # Ground truth not yet there: the model is pending whatever the endpoint did.
    assert decision.model_status(found, ["rmse"], "rmse") == "pending"


def test_a_serving_breach_alerts_operations_and_never_retrains(lake: Lake) -> None:
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    slow = Breach("p99_latency_ms", 812.0, 500.0, "serving", "serving p99 latency 812 ms")
    errors = Breach("error_rate", 0.2, 0.05, "serving", "serving error rate 20.00%")
    record = MonitoringRecord(
        USE_CASE.name,
        "2024-04",
        "ok",
        {"rmse": 3.4, "p99_latency_ms": 812.0, "error_rate": 0.2, "requests": 300.0},
        (slow, errors),
        serving_status="breach",
        airflow_run_url="http://airflow/dags/d/runs/r",
    )
    verdict = monitoring.retrain_decision(lake, USE_CASE, record, 0, now)
    assert not verdict.retrain and verdict.why_not == "no performance or drift breach"
    alert = decision.operations_alert(USE_CASE, record)
    text = json.dumps(alert.payload())
    assert alert.title == "taxi_trip_duration serving endpoint out of bounds in 2024-04"
    assert alert.severity == "warning" and "breach" not in alert.title
    assert "812 ms" in text and "20.00%" in text and "/predict" in text and "No retrain" in text
    assert "The model's status is ok" in text
