"""Whole-DAG runs of `<use case>_monitor` with dag.test(): a real MLflow server, a real lake,
a real webhook over HTTP, and the real trigger of `<use case>_train` in the metadata DB."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlplatform.adapters import registry, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.airflow import dagkit
from mlplatform.core import generator, tlc
from mlplatform.core.spec import load_spec
from mlplatform.stages import monitoring, scoring
from mlplatform.stages.monitoring import decision, history

from conftest import asset_event_extras, free_port

pytestmark = pytest.mark.slow

DAGS_FOLDER = Path(__file__).resolve().parents[1] / "dags"
USE_CASE = load_spec("taxi_trip_duration")
ROWS = 5_000
TRAIN_MONTHS = ("2024-01", "2024-02")
VALIDATION_MONTH = "2024-03"
COVARIATE_DRIFT = generator.Drift(outer_borough_shift=0.7, trip_length=1.4)
CONGESTION = generator.Drift(congestion=1.35)
_logical_dates = (datetime(2030, 1, 1, tzinfo=UTC) + timedelta(hours=i) for i in itertools.count())


# -- services --------------------------------------------------------------------------------
class _Sink(BaseHTTPRequestHandler):
    """Keeps posted messages and serves them at GET /messages, like the platform's sink."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.messages.append(json.loads(body))  # type: ignore[attr-defined]
        self._answer(b"ok")

    def do_GET(self) -> None:
        self._answer(json.dumps(self.server.messages).encode())  # type: ignore[attr-defined]

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def alert_sink(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Where alerts go: the suite's webhook sink fixture when it has one, else a small one here.

    Either has ``url`` (messages are read back over HTTP at ``{url}/messages``),
    ``hook_url`` (where alerts are posted) and ``clear()``.
    """
    try:
        yield request.getfixturevalue("webhook_sink")
        return
    except pytest.FixtureLookupError:
        pass
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Sink)
    server.messages = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    class Local:
        url = f"http://127.0.0.1:{server.server_port}"
        hook_url = f"{url}/hooks/alerts"

        @staticmethod
        def clear() -> None:
            server.messages.clear()  # type: ignore[attr-defined]

    yield Local
    server.shutdown()


def _messages(sink: Any) -> list[dict[str, Any]]:
    """Monitoring alerts the sink received, read over HTTP."""
    import httpx

    found = httpx.get(f"{sink.url}/messages", timeout=10).json()
    return [m for m in found if "monitoring" in json.dumps(m)]


# -- data and model ----------------------------------------------------------------------------
def add_month(
    lake: Lake, month: str, drift: generator.Drift = generator.Drift(), seed: int = 1, rows: int = ROWS
) -> None:
    """A generated month written straight in as validated, past the contract: so without TLC's
    pathologies (``clean=True``). With them, meters left running for hours would inflate the
    champion's reference RMSE and hide the breaches these tests look for."""
    made = generator.generate_month("yellow", month, rows, seed=seed, drift=drift, clean=True)
    table = tlc.normalise(made.table)
    contract = {"success": True, "bad_row_share": 0.0, "suite": USE_CASE.contract.suite}
    snapshots.write_snapshot(lake, USE_CASE.name, month, table, {"contract": contract})


def score_month(lake: Lake, month: str) -> None:
    snapshot = snapshots.current_snapshot(lake, USE_CASE.name, month)
    ref = registry.resolve(USE_CASE.model_name)
    scoring.publish(lake, scoring.score_snapshot(lake, USE_CASE, snapshot, ref))


def train_champion(lake: Lake, tracking: str) -> str:
    """A small model on generated months, registered with alias champion; its run holds
    the validation metric and training months as training records them."""
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    from mlplatform.adapters.pyfunc import TripPyfunc
    from mlplatform.core.modelling import TripModel, input_columns, trip_features
    from mlplatform.use_cases.taxi_trip_duration import build_estimator

    def frame(months: tuple[str, ...]) -> pd.DataFrame:
        tables = [
            snapshots.read_table(lake, snapshots.current_snapshot(lake, USE_CASE.name, m)) for m in months
        ]
        return pd.concat([t.to_pandas() for t in tables], ignore_index=True)

    features = USE_CASE.features.all
    train, valid = frame(TRAIN_MONTHS), frame((VALIDATION_MONTH,))
    params = {"max_iter": 80, "learning_rate": 0.2}
    estimator = build_estimator("hist_gradient_boosting", params, USE_CASE.features)
    estimator.fit(trip_features(train)[list(features)], train[USE_CASE.target.column])
    model = TripModel(estimator, features, "regression")
    inputs = valid[input_columns(features)]
    answer = model.predict(inputs)
    rmse = float(np.sqrt(np.mean((answer["prediction"] - valid[USE_CASE.target.column]) ** 2)))
    mlflow.set_tracking_uri(tracking)
    mlflow.set_experiment(USE_CASE.name)
    with mlflow.start_run():
        mlflow.log_params({"train_months": ",".join(TRAIN_MONTHS), "validation_months": VALIDATION_MONTH})
        mlflow.log_metric("val_rmse", rmse)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=TripPyfunc(model),
            signature=infer_signature(inputs.head(50), answer.head(50)),
            registered_model_name=USE_CASE.model_name,
        )
    client = mlflow.MlflowClient(tracking)
    client.set_registered_model_alias(USE_CASE.model_name, "champion", str(info.registered_model_version))
    return str(info.registered_model_version)


# The train DAG the monitor triggers; it never runs here (no scheduler), its runs are counted.
STUB_TRAIN_DAG = """
from datetime import datetime, timezone

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("taxi_trip_duration_train", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=timezone.utc)):
    EmptyOperator(task_id="train")
"""


@pytest.fixture(scope="module")
def platform(
    mlflow_server: str, alert_sink: Any, airflow_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Settings pointed at the services; the champion trained once for the module.

    The DAG bundle dag.test() syncs is a folder with the real monitor DAG and a stand-in
    train DAG, so the trigger is real without depending on how training runs.
    """
    mp = pytest.MonkeyPatch()
    bundle = tmp_path_factory.mktemp("dags")
    (bundle / "monitor.py").symlink_to(DAGS_FOLDER / "monitor.py")
    (bundle / "batch_score.py").symlink_to(DAGS_FOLDER / "batch_score.py")
    (bundle / "promote.py").symlink_to(DAGS_FOLDER / "promote.py")  # level 3 asks through it
    (bundle / "train.py").write_text(STUB_TRAIN_DAG)
    mp.setenv(
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
        json.dumps(
            [
                {
                    "name": "dags-folder",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(bundle)},
                }
            ]
        ),
    )
    mp.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    mp.setenv("MLPLATFORM_SLACK_WEBHOOK_URL", alert_sink.hook_url)
    mp.setenv("MLPLATFORM_SLACK_CONN_ID", "")
    seed_lake = Lake(tmp_path_factory.mktemp("seed").joinpath("lake").as_uri())
    for month in (*TRAIN_MONTHS, VALIDATION_MONTH):
        add_month(seed_lake, month)
    version = train_champion(seed_lake, mlflow_server)
    yield {"version": version, "sink": alert_sink}
    mp.undo()


@pytest.fixture
def world(platform: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fresh lake holding the champion's training months; no train run is active."""
    lake = Lake((tmp_path / "lake").as_uri())
    monkeypatch.setenv("MLPLATFORM_LAKE_URI", lake.root_uri)
    for month in (*TRAIN_MONTHS, VALIDATION_MONTH):
        add_month(lake, month)
    _finish_train_runs()
    platform["sink"].clear()
    return {**platform, "lake": lake, "alerts_before": len(_messages(platform["sink"]))}


# -- Airflow -----------------------------------------------------------------------------------
def _monitor_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER / "monitor.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["taxi_trip_duration_monitor"]


def run_monitor(window: str, **conf: Any) -> dict[str, str]:
    """One whole monitor run; returns each task's final state."""
    dag_run = _monitor_dag().test(logical_date=next(_logical_dates), run_conf={"window": window, **conf})
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def predictions_events() -> list[dict[str, Any]]:
    return asset_event_extras(dagkit.predictions_asset(USE_CASE).uri)


def _train_runs() -> list[Any]:
    from airflow.models.dagrun import DagRun

    return DagRun.find(dag_id="taxi_trip_duration_train")


def _finish_train_runs() -> None:
    """Mark every train run as done, as if the scheduler had run them."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        for run in session.query(DagRun).filter(DagRun.dag_id == "taxi_trip_duration_train"):
            run.state = DagRunState.SUCCESS


def _new_alerts(world: dict[str, Any]) -> list[dict[str, Any]]:
    return _messages(world["sink"])[world["alerts_before"] :]


def _record(lake: Lake, window: str) -> dict[str, Any]:
    return lake.read_json(monitoring.record_path(USE_CASE.name, window))


# -- the tests ---------------------------------------------------------------------------------
def test_no_drift_is_a_quiet_record(world: dict[str, Any]) -> None:
    lake = world["lake"]
    add_month(lake, "2024-04", seed=7)
    score_month(lake, "2024-04")
    runs_before = len(_train_runs())

    states = run_monitor("2024-04")

    assert states["evaluate"] == "success" and states["trigger_retrain"] == "skipped"
    record = _record(lake, "2024-04")
    assert record["status"] == "ok" and record["breaches"] == []
    assert record["metrics"]["rmse_degradation"] < USE_CASE.monitoring.max_relative_degradation
    assert set(record["details"]["features"]) == set(USE_CASE.features.all)
    assert _new_alerts(world) == []
    assert len(_train_runs()) == runs_before
    assert lake.exists(f"monitoring/{USE_CASE.name}/history.parquet")
    assert lake.exists(history.report_path(USE_CASE.name, "2024-04"))


@pytest.mark.airflow_compat
def test_drift_alerts_and_triggers_one_retrain_then_cools_down(world: dict[str, Any]) -> None:
    lake = world["lake"]
    for month in ("2024-04", "2024-05"):
        add_month(lake, month, COVARIATE_DRIFT, seed=8)
        score_month(lake, month)
    runs_before = {r.run_id for r in _train_runs()}

    states = run_monitor("2024-04")

    assert states["trigger_retrain"] == "success" and states["record_retrain"] == "success"
    record = _record(lake, "2024-04")
    assert record["status"] == "breach" and "drift_share" in record["breaches"]
    new_runs = [r for r in _train_runs() if r.run_id not in runs_before]
    assert len(new_runs) == 1
    conf = new_runs[0].conf
    assert conf["triggered_by"] == "monitor" and conf["window"] == conf["since"] == "2024-04"
    assert "features drifted" in conf["reason"]
    alerts = _new_alerts(world)
    assert len(alerts) == 1
    text = json.dumps(alerts[0])
    assert (
        "drift_share" in text
        and "drift_report.html" in text
        and "/dags/taxi_trip_duration_monitor/runs/" in text
    )
    assert f"/models/{USE_CASE.model_name}/versions/" in text
    state = lake.read_json(decision.state_path(USE_CASE.name))
    assert state["window"] == "2024-04" and state["train_run_id"] == new_runs[0].run_id

    # The retrain finished; the next window breaches again inside the cooldown: alert, no retrain.
    _finish_train_runs()
    states = run_monitor("2024-05")

    assert states["decide"] == "success" and states["trigger_retrain"] == "skipped"
    assert len([r for r in _train_runs() if r.run_id not in runs_before]) == 1
    alerts = _new_alerts(world)
    assert len(alerts) == 2 and "cooldown" in json.dumps(alerts[1])


def test_no_retrain_while_one_is_running(world: dict[str, Any]) -> None:
    lake = world["lake"]
    add_month(lake, "2024-04", COVARIATE_DRIFT, seed=9)
    score_month(lake, "2024-04")
    lake.write_json(decision.state_path(USE_CASE.name), {})
    runs_before = len(_train_runs())
    run_monitor("2024-04")
    assert len(_train_runs()) == runs_before + 1  # queued: the scheduler has not run it
    lake.remove(decision.state_path(USE_CASE.name))  # no cooldown: only the active run stops it

    states = run_monitor("2024-04")

    assert states["trigger_retrain"] == "skipped"
    assert len(_train_runs()) == runs_before + 1
    assert "already queued or running" in json.dumps(_new_alerts(world)[-1])


def test_performance_breach_with_stable_features_retrains(world: dict[str, Any]) -> None:
    lake = world["lake"]
    add_month(lake, "2024-04", CONGESTION, seed=10)
    score_month(lake, "2024-04")
    runs_before = {r.run_id for r in _train_runs()}

    states = run_monitor("2024-04")

    record = _record(lake, "2024-04")
    assert record["breaches"] == ["rmse"], record["breach_details"]
    assert record["metrics"]["drift_share"] <= USE_CASE.monitoring.drifted_share_threshold
    assert states["trigger_retrain"] == "success"
    # The one run this monitor triggered (the metadata DB also holds other tests' train runs).
    [triggered] = [r for r in _train_runs() if r.run_id not in runs_before]
    assert "rmse" in triggered.conf["reason"], triggered.conf
    assert "rmse" in json.dumps(_new_alerts(world))


def test_missing_ground_truth_is_pending_not_an_alarm(world: dict[str, Any]) -> None:
    """Trips served in real time whose month has no validated snapshot yet."""
    lake = world["lake"]
    made = generator.generate_month("yellow", "2024-04", 400, seed=11, clean=True)
    trips = tlc.normalise(made.table).to_pandas()
    columns = ["pickup_datetime", "pu_location_id", "do_location_id", "trip_distance"]
    import pyarrow as pa

    log_rows = trips[columns].assign(
        request_id=[f"r{i}" for i in range(len(trips))],
        item=0,
        variant="champion",
        model_name=USE_CASE.model_name,
        model_version=world["version"],
        latency_ms=12.0,
        prediction=trips["duration_min"].to_numpy() * 1.5,  # would be a breach if outcomes were known
    )
    lake.write_parquet(
        f"predictions/{USE_CASE.name}/serving/month=2024-04/0001.parquet",
        pa.Table.from_pandas(log_rows, preserve_index=False),
    )
    runs_before = len(_train_runs())

    states = run_monitor("2024-04")

    record = _record(lake, "2024-04")
    assert record["status"] == "pending" and record["breaches"] == []
    assert "rmse" in record["pending"] and "rmse" not in record["metrics"]
    assert record["sources"]["serving"] == "no_ground_truth"
    assert record["metrics"]["p99_latency_ms"] == pytest.approx(12.0)
    assert states["trigger_retrain"] == "skipped"
    assert _new_alerts(world) == [] and len(_train_runs()) == runs_before

    # The month's ground truth is validated: the run its Asset event starts revisits the window.
    from mlplatform.stages import monitoring

    with pytest.raises(monitoring.NothingPending, match="2024-03"):
        monitoring.windows_for_run(lake, USE_CASE, None, [], ["2024-03"])
    contract = {"success": True, "bad_row_share": 0.0, "suite": USE_CASE.contract.suite}
    snapshots.write_snapshot(
        lake, USE_CASE.name, "2024-04", tlc.normalise(made.table), {"contract": contract}
    )
    assert monitoring.windows_for_run(lake, USE_CASE, None, [], ["2024-04"]) == ["2024-04"]
    revisited = monitoring.monitor(lake, USE_CASE, "2024-04")
    assert "rmse" in revisited.metrics and revisited.status == "breach", revisited.pending


def test_a_backfill_of_scoring_and_monitoring_recomputes_history_quietly(world: dict[str, Any]) -> None:
    """Drifted history, scored and monitored as a backfill: records, but no alert, no retrain."""
    from airflow.dag_processing.dagbag import DagBag

    lake = world["lake"]
    add_month(lake, "2024-04", COVARIATE_DRIFT, seed=12)
    runs_before = len(_train_runs())
    bag = DagBag(dag_folder=str(DAGS_FOLDER / "batch_score.py"))
    scoring_run = bag.dags["taxi_trip_duration_batch_score"].test(
        logical_date=next(_logical_dates), run_conf={"month": "2024-04", "backfill": True}
    )
    assert str(scoring_run.state) == "success"
    event = predictions_events()[-1]
    assert event["month"] == "2024-04" and event["backfill"] is True

    # The monitor run those predictions start is a backfill too (here: the same event's flag).
    assert dagkit.is_backfill({}, None, [event])
    states = run_monitor("2024-04", backfill=True)

    record = _record(lake, "2024-04")
    assert record["status"] == "breach" and "drift_share" in record["breaches"]  # history recomputed
    assert states["decide"] == "success" and states["trigger_retrain"] == "skipped"
    assert len(_train_runs()) == runs_before
    assert _new_alerts(world) == []


def test_a_slow_endpoint_alerts_operations_and_the_model_stays_ok(world: dict[str, Any]) -> None:
    """p99 latency far past its limit (a busy machine), the model as good as ever: the model
    status is ok, no retrain, and one operations alert naming the endpoint and its figures."""
    import pyarrow as pa

    lake = world["lake"]
    add_month(lake, "2024-04", seed=13)
    score_month(lake, "2024-04")
    trips = tlc.normalise(
        generator.generate_month("yellow", "2024-04", 300, seed=14, clean=True).table
    ).to_pandas()
    columns = ["pickup_datetime", "pu_location_id", "do_location_id", "trip_distance"]
    slow = USE_CASE.monitoring.max_p99_latency_ms * 4
    log_rows = trips[columns].assign(
        request_id=[f"r{i}" for i in range(len(trips))],
        item=0,
        variant="champion",
        model_name=USE_CASE.model_name,
        model_version=world["version"],
        latency_ms=slow,
        status=200,
        prediction=trips["duration_min"].to_numpy(),
    )
    lake.write_parquet(
        f"predictions/{USE_CASE.name}/serving/month=2024-04/0001.parquet",
        pa.Table.from_pandas(log_rows, preserve_index=False),
    )
    runs_before = len(_train_runs())

    states = run_monitor("2024-04")

    record = monitoring.read_record(lake, USE_CASE.name, "2024-04")
    assert record is not None
    assert (record.model_status, record.serving_status) == ("ok", "breach"), record.breach_details
    assert [b.metric for b in record.serving_breaches] == ["p99_latency_ms"] and record.model_breaches == []
    assert states["decide"] == "success" and states["trigger_retrain"] == "skipped"
    assert states["alert_operations"] == "success"
    assert len(_train_runs()) == runs_before
    import httpx

    sent = httpx.get(f"{world['sink'].url}/messages", timeout=10).json()
    operations = [m for m in sent if "serving endpoint out of bounds in 2024-04" in m["text"]]
    assert len(operations) == 1 and not any("monitoring breach" in m["text"] for m in sent)
    body = json.dumps(operations[0]["blocks"])
    assert "/predict" in body and f"{slow:.0f} ms" in body and "No retrain" in body
