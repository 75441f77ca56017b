"""Production truth decides, on the real services: a challenger scored in shadow on labelled
windows is promoted by a whole monitor DAG run at level 4, only reported by one at level 2
(nobody asked, nothing moved), and retired when worse; a window without labels gets an
estimated RMSE, kept beside the measured one once its labels arrive."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from test_monitor_dag import (  # the monitor DAG's services, months and runs
    TRAIN_MONTHS,
    USE_CASE,
    VALIDATION_MONTH,
    add_month,
    alert_sink,  # noqa: F401  (fixture)
    platform,  # noqa: F401  (fixture)
    run_monitor,
    score_month,
    world,  # noqa: F401  (fixture)
)

from mlplatform.adapters import registry
from mlplatform.adapters.lake import Lake
from mlplatform.core.records import MonitoringRecord
from mlplatform.stages import monitoring
from mlplatform.stages.monitoring import measures

from conftest import load_dag_module

pytestmark = pytest.mark.slow


def register(lake: Lake, tracking: str, max_iter: int, rows_scale: int = 1, bias: float = 1.0) -> str:
    """A model fitted on the first ``rows_scale`` months (``max_iter`` boosting rounds) to the
    durations times ``bias`` (above 1: a model that is worse on purpose), registered as a new
    version without an alias."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from mlplatform.adapters import snapshots
    from mlplatform.adapters.pyfunc import TripPyfunc
    from mlplatform.core.modelling import TripModel, input_columns, trip_features
    from mlplatform.use_cases.taxi_trip_duration import build_estimator

    months = (*TRAIN_MONTHS, VALIDATION_MONTH)[:rows_scale]
    tables = [snapshots.read_table(lake, snapshots.current_snapshot(lake, USE_CASE.name, m)) for m in months]
    train = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    features = USE_CASE.features.all
    estimator = build_estimator(
        "hist_gradient_boosting", {"max_iter": max_iter, "learning_rate": 0.1}, USE_CASE.features
    )
    estimator.fit(trip_features(train)[list(features)], train[USE_CASE.target.column] * bias)
    model = TripModel(estimator, features, "regression")
    inputs = train[input_columns(features)].head(50)
    mlflow.set_tracking_uri(tracking)
    mlflow.set_experiment(USE_CASE.name)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=TripPyfunc(model),
            signature=infer_signature(inputs, model.predict(inputs)),
            registered_model_name=USE_CASE.model_name,
        )
    return str(info.registered_model_version)


@pytest.fixture
def aliases(world: dict[str, Any], mlflow_server: str) -> Iterator[Any]:  # noqa: F811
    """The registry's client; the champion and no challenger or previous champion are restored after."""
    client = registry.client()
    yield client
    client.set_registered_model_alias(USE_CASE.model_name, registry.CHAMPION, world["version"])
    for alias in (registry.CHALLENGER, registry.PREVIOUS):
        if registry.alias_version(client, USE_CASE.model_name, alias) is not None:
            client.delete_registered_model_alias(USE_CASE.model_name, alias)


# A labelled window large enough for the live comparison to reach a decision on a challenger
# a few percent better (the confidence sequence needs about 12,000 paired trips for +3.6%).
LIVE_WINDOW_ROWS = 30_000


def _labelled_window(lake: Lake, month: str, seed: int) -> None:
    add_month(lake, month, seed=seed, rows=LIVE_WINDOW_ROWS)
    score_month(lake, month)


def test_a_better_challenger_is_promoted_by_the_monitor_dag_at_level_4(
    world: dict[str, Any],  # noqa: F811
    mlflow_server: str,
    aliases: Any,
) -> None:
    lake = world["lake"]
    better = register(lake, mlflow_server, max_iter=300, rows_scale=3)
    aliases.set_registered_model_alias(USE_CASE.model_name, registry.CHALLENGER, better)
    _labelled_window(lake, "2024-04", seed=21)

    states = run_monitor("2024-04")

    assert states["evaluate"] == "success"
    record = monitoring.read_record(lake, USE_CASE.name, "2024-04")
    assert record is not None
    decided = record.details["live"]["challenger"]
    assert decided["outcome"] == "promote", decided["reason"]
    assert decided["acted"] is True and decided["trips"] >= 1000
    assert decided["interval"]["low"] >= USE_CASE.promotion.min_relative_improvement
    assert registry.alias_version(aliases, USE_CASE.model_name, registry.CHAMPION) == better
    assert registry.alias_version(aliases, USE_CASE.model_name, registry.CHALLENGER) is None
    assert registry.alias_version(aliases, USE_CASE.model_name, registry.PREVIOUS) == world["version"]
    events = registry.alias_events(USE_CASE.model_name, lake)
    assert any(e.action == "promote" and e.version == better and "live" in e.evidence for e in events)


def test_level_2_reports_and_a_worse_challenger_is_retired(
    world: dict[str, Any],  # noqa: F811
    mlflow_server: str,
    aliases: Any,
) -> None:
    lake = world["lake"]
    better = register(lake, mlflow_server, max_iter=300, rows_scale=3)
    aliases.set_registered_model_alias(USE_CASE.model_name, registry.CHALLENGER, better)
    _labelled_window(lake, "2024-04", seed=21)

    from airflow.models.dagrun import DagRun

    # A whole monitor run at level 2: reports, asks nobody, moves nothing.
    dag = load_dag_module("monitor").build(USE_CASE.model_copy(update={"maturity_level": 2}))
    run = dag.test(
        logical_date=datetime.fromisoformat("2033-01-01T00:00:00+00:00"), run_conf={"window": "2024-04"}
    )
    assert str(run.state) == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}

    reported = monitoring.read_record(lake, USE_CASE.name, "2024-04")
    assert reported is not None
    assert reported.details["live"]["challenger"]["outcome"] == "promote"
    assert reported.details["live"]["challenger"]["acted"] is False
    assert reported.details["live"]["challenger"].get("ask") is None
    assert DagRun.find(dag_id="taxi_trip_duration_promote", run_id=f"live__promote__v{better}") == []
    assert registry.alias_version(aliases, USE_CASE.model_name, registry.CHAMPION) == world["version"]
    assert registry.alias_version(aliases, USE_CASE.model_name, registry.CHALLENGER) == better

    worse = register(lake, mlflow_server, max_iter=300, rows_scale=3, bias=1.6)
    aliases.set_registered_model_alias(USE_CASE.model_name, registry.CHALLENGER, worse)
    retired = monitoring.monitor(lake, USE_CASE, "2024-04")
    decided = retired.details["live"]["challenger"]
    assert decided["outcome"] == "retire" and decided["interval"]["high"] < 0, decided["reason"]
    assert registry.alias_version(aliases, USE_CASE.model_name, registry.CHALLENGER) is None


def test_level_3_asks_the_promote_dag_with_the_live_evidence_once(
    world: dict[str, Any],  # noqa: F811
    mlflow_server: str,
    aliases: Any,
) -> None:
    """At level 3 a window whose live decision says promote moves nothing: the monitor DAG
    triggers `<use case>_promote` with the action, the version and the evidence, and a
    re-run of the window asks nothing new (the run id is keyed on version and action)."""
    from airflow.models.dagrun import DagRun

    lake = world["lake"]
    better = register(lake, mlflow_server, max_iter=300, rows_scale=3)
    aliases.set_registered_model_alias(USE_CASE.model_name, registry.CHALLENGER, better)
    _labelled_window(lake, "2024-04", seed=21)
    dag = load_dag_module("monitor").build(USE_CASE.model_copy(update={"maturity_level": 3}))

    def asked() -> list[Any]:
        return DagRun.find(dag_id="taxi_trip_duration_promote", run_id=f"live__promote__v{better}")

    for date in ("2032-01-01", "2032-01-02"):  # the window, then a re-run of it
        run = dag.test(
            logical_date=datetime.fromisoformat(f"{date}T00:00:00+00:00"), run_conf={"window": "2024-04"}
        )
        assert str(run.state) == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
        [promote_run] = asked()

    conf = promote_run.conf
    assert (conf["action"], conf["version"], conf["triggered_by"]) == ("promote", int(better), "monitor")
    assert conf["evidence"]["trips"] >= 1000 and conf["evidence"]["windows"] == ["2024-04"]
    assert conf["evidence"]["interval"]["low"] >= USE_CASE.promotion.min_relative_improvement
    assert conf["reason"]
    record = monitoring.read_record(lake, USE_CASE.name, "2024-04")
    assert record is not None and record.details["live"]["challenger"]["ask"] == "promote"
    assert record.details["live"]["challenger"]["acted"] is False
    assert registry.alias_version(aliases, USE_CASE.model_name, registry.CHAMPION) == world["version"]
    assert registry.alias_version(aliases, USE_CASE.model_name, registry.CHALLENGER) == better


def test_an_estimate_before_labels_then_its_error_once_they_arrive(world: dict[str, Any]) -> None:  # noqa: F811
    """2024-04 is labelled (the estimator's reference); 2024-05's predictions wait for their
    labels: the snapshot they scored is set aside, as if its durations were not published yet."""
    lake = world["lake"]
    _labelled_window(lake, "2024-04", seed=21)
    _labelled_window(lake, "2024-05", seed=22)
    measured = monitoring.monitor(lake, USE_CASE, "2024-05")
    scored = measured.metrics["rmse"]
    # The labels of 2024-05 "not yet published": the stored record is what an earlier run wrote.
    pending = MonitoringRecord(use_case=USE_CASE.name, window="2024-05", model_status="pending", metrics={})
    found, shown = measures.estimate(lake, USE_CASE, pending, {})
    assert shown["status"] == "estimated" and shown["reference_window"] == "2024-04"
    value = found["estimated_rmse"]
    assert abs(value / scored - 1) <= 0.10, (value, scored)

    # The record the pending run wrote; the run once the labels are there keeps the estimate.
    monitoring.write_history(lake, dataclasses.replace(pending, metrics=found, details={"estimate": shown}))
    labelled = monitoring.monitor(lake, USE_CASE, "2024-05")
    assert labelled.metrics["estimated_rmse"] == pytest.approx(value)
    assert labelled.metrics["estimate_error"] == pytest.approx(value / labelled.metrics["rmse"] - 1)
    assert labelled.details["estimate"]["status"] == "measured"


def test_a_champion_worse_than_the_previous_one_on_live_labels_is_rolled_back_once(
    world: dict[str, Any],  # noqa: F811
    mlflow_server: str,
    aliases: Any,
) -> None:
    """A worse model became champion; on the next labelled window the previous champion,
    scored in shadow, is better with confidence: rolled back, with the evidence in the alias
    history; the cooldown refuses a second rollback on the next window (alerted, not done)."""
    lake = world["lake"]
    worse = register(lake, mlflow_server, max_iter=300, rows_scale=3, bias=1.6)
    registry.promote(USE_CASE.model_name, worse, {"by": "test", "reason": "a bad promotion"}, aliases, lake)
    _labelled_window(lake, "2024-04", seed=21)  # scored by the (worse) champion

    first = monitoring.monitor(lake, USE_CASE, "2024-04")

    decided = first.details["live"]["rollback"]
    assert decided["outcome"] == "promote" and decided["acted"] is True, decided["reason"]
    assert decided["interval"]["low"] > 0 and decided["trips"] >= 1000
    assert registry.alias_version(aliases, USE_CASE.model_name, registry.CHAMPION) == world["version"]
    events = registry.alias_events(USE_CASE.model_name, lake)
    [event] = [e for e in events if e.action == "rollback" and e.alias == registry.CHAMPION]
    assert event.from_version == worse and "live" in event.evidence and event.cooldown_until

    # The worse version is promoted again by hand; the cooldown of the rollback still runs.
    registry.promote(USE_CASE.model_name, worse, {"by": "test", "reason": "again"}, aliases, lake)
    _labelled_window(lake, "2024-05", seed=22)
    second = monitoring.monitor(lake, USE_CASE, "2024-05")
    assert second.details["live"]["rollback"]["acted"] is False
    assert registry.alias_version(aliases, USE_CASE.model_name, registry.CHAMPION) == worse
