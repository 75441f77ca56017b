"""Unit tests of mlplatform.stages.monitoring on generated months in a temporary lake: the
champion's reference, performance on delayed ground truth, drift, whole windows, their
history and MLflow run. Thresholds, the retrain decision and the alert are tested in
``test_monitoring_thresholds.py`` and ``test_monitoring_decision.py``."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import generator, retrain, tlc
from mlplatform.core.modelling import TripModel, in_target_range, input_columns
from mlplatform.core.records import Breach, ModelRef, MonitoringRecord, ScoredOutput
from mlplatform.core.spec import load_spec
from mlplatform.stages import monitoring, scoring
from mlplatform.stages.monitoring import drift, history, measures, sources

USE_CASE = load_spec("taxi_trip_duration")
ROWS = 3_000
KEYS = input_columns(USE_CASE.features.all)


def add_month(lake: Lake, month: str, drift: generator.Drift = generator.Drift(), seed: int = 1) -> Any:
    """A generated month written straight in as validated, past the contract: so without TLC's
    pathologies (``clean=True``), which the contract would otherwise have quarantined."""
    table = tlc.normalise(
        generator.generate_month("yellow", month, ROWS, seed=seed, drift=drift, clean=True).table
    )
    manifest = {"contract": {"success": True, "bad_row_share": 0.01}}
    return snapshots.write_snapshot(lake, USE_CASE.name, month, table, manifest)[0]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> TripModel:
    """A linear model on two clean months (fast; monitoring does not care which family)."""
    from mlplatform.core.modelling import trip_features
    from mlplatform.use_cases.taxi_trip_duration import build_estimator

    lake = Lake(tmp_path_factory.mktemp("train").joinpath("lake").as_uri())
    frames = [snapshots.read_table(lake, add_month(lake, m)).to_pandas() for m in ("2024-01", "2024-02")]
    trips = pd.concat(frames, ignore_index=True)
    estimator = build_estimator("linear", {}, USE_CASE.features)
    estimator.fit(trip_features(trips)[list(USE_CASE.features.all)], trips[USE_CASE.target.column])
    return TripModel(estimator, USE_CASE.features.all, "regression")


@pytest.fixture
def world(lake: Lake, model: TripModel) -> dict[str, Any]:
    for month in ("2024-01", "2024-02", "2024-03"):
        add_month(lake, month)
    trips = snapshots.read_table(lake, snapshots.current_snapshot(lake, USE_CASE.name, "2024-03")).to_pandas()
    answer = model.predict(trips[KEYS])["prediction"]
    val_rmse = float(np.sqrt(np.mean((answer - trips[USE_CASE.target.column]) ** 2)))
    champion = monitoring.Champion(
        USE_CASE.model_name,
        "1",
        None,
        metrics={"val_rmse": val_rmse},
        params={"train_months": "2024-01,2024-02"},
        model=model,
    )
    return {"lake": lake, "model": model, "champion": champion, "val_rmse": val_rmse}


def score(lake: Lake, model: TripModel, snapshot: Any, version: str = "1") -> None:
    """Batch predictions of a snapshot, written in the batch-score layout and made current."""
    trips = snapshots.read_table(lake, snapshot, KEYS).to_pandas()
    n = len(trips)
    table = pa.table(
        {
            "row_id": [f"{snapshot.digest[:16]}-{i}" for i in range(n)],
            "row_index": np.arange(n, dtype=np.int64),
            "prediction": model.predict(trips)["prediction"].to_numpy(),
            "model_name": [USE_CASE.model_name] * n,
            "model_version": np.full(n, int(version), dtype=np.int64),
            "snapshot_digest": [snapshot.digest] * n,
        }
    )
    folder = scoring.output_folder(USE_CASE.name, snapshot.month, version, snapshot.digest)
    lake.write_parquet(f"{folder}/predictions.parquet", table)
    path = f"{folder}/predictions.parquet"
    pointer = ScoredOutput(
        use_case=USE_CASE.name,
        month=snapshot.month,
        path=path,
        uri=lake.uri(path),
        rows=n,
        model=ModelRef(USE_CASE.model_name, version),
        snapshot_digest=snapshot.digest,
        snapshot_rows=n,
    )
    lake.write_json(f"predictions/{USE_CASE.name}/month={snapshot.month}/CURRENT.json", pointer.to_dict())


def serving_log(
    lake: Lake, model: TripModel, month: str, trips: pd.DataFrame, folder: str | None = None
) -> None:
    answers = model.predict(trips[KEYS])["prediction"].to_numpy()
    n = len(trips)
    log = trips[KEYS].assign(
        request_id=[f"req-{i // 2}" for i in range(n)],  # two trips per request
        item=[i % 2 for i in range(n)],
        variant=np.where(np.arange(n) % 4 == 0, "challenger", "champion"),
        model_name=USE_CASE.model_name,
        model_version=np.where(np.arange(n) % 4 == 0, "2", "1"),
        latency_ms=np.linspace(1, 100, n),
        prediction=answers,
    )
    path = f"predictions/{USE_CASE.name}/serving/month={folder or month}/part-0001.parquet"
    lake.write_parquet(path, pa.Table.from_pandas(log, preserve_index=False))


# -- the window and the champion's reference (sources, reference) ---------------------------------
def test_window_of_run() -> None:
    assert monitoring.window_of_run(None, datetime(2024, 4, 1, tzinfo=UTC)) == "2024-03"
    assert monitoring.window_of_run(None, datetime(2024, 1, 1, tzinfo=UTC)) == "2023-12"
    assert monitoring.window_of_run("2024-07", None) == "2024-07"
    with pytest.raises(ValueError, match="window"):
        monitoring.window_of_run(None, None)
    with pytest.raises(ValueError, match="YYYY-MM"):
        monitoring.window_of_run("2024-13", None)


def test_reference_metric_and_months_follow_what_training_logs() -> None:
    assert sources.reference_metric({"val_rmse": 3.0, "rmse": 9.0}, "rmse") == 3.0
    assert sources.reference_metric({"val_rmse.pu_borough.Queens": 3.0}, "rmse") is None
    available = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]
    params = {"train_months": "2024-01,2024-02"}
    assert sources.reference_months(USE_CASE, "2024-05", params, available) == ["2024-01", "2024-02"]
    ranged = {"train_months": "2024-02..2024-04"}
    assert sources.reference_months(USE_CASE, "2024-05", ranged, available) == [
        "2024-02",
        "2024-03",
        "2024-04",
    ]
    # Without a record of the training months: the spec's window before the evaluated month.
    assert sources.reference_months(USE_CASE, "2024-05", {}, available) == [
        "2024-02",
        "2024-03",
        "2024-04",
    ]


# -- performance on delayed ground truth (measure) ------------------------------------------------
def test_batch_predictions_join_their_snapshot_ground_truth(world: dict[str, Any]) -> None:
    lake, model = world["lake"], world["model"]
    snapshot = add_month(lake, "2024-04", seed=5)
    score(lake, model, snapshot)

    joined, why = measures.batch_outcomes(lake, USE_CASE, "2024-04")

    assert why == "" and len(joined) == ROWS
    trips = snapshots.read_table(lake, snapshot).to_pandas()
    low, high = USE_CASE.target.range_  # scored like validation: trips in the modelling range
    trips = trips[trips["duration_min"].between(low, high)]
    expected = np.sqrt(np.mean((model.predict(trips[KEYS])["prediction"] - trips["duration_min"]) ** 2))
    perf = measures.performance(USE_CASE, joined)
    assert perf.overall["rmse"] == pytest.approx(expected)
    assert perf.variants["batch"]["n"] == len(trips)
    assert perf.outside_range == ROWS - len(trips) > 0
    assert {k.split("=")[0] for k in perf.slices} == {"pu_borough", "hour_band"}
    assert measures.batch_outcomes(lake, USE_CASE, "2024-05") == (None, "no_predictions")


def test_served_predictions_join_on_the_trip_key_and_wait_for_ground_truth(world: dict[str, Any]) -> None:
    lake, model = world["lake"], world["model"]
    trips = tlc.normalise(
        generator.generate_month("yellow", "2024-04", ROWS, seed=6, clean=True).table
    ).to_pandas()
    # Replayed later: logged in a later month's folder, still the 2024-04 window.
    serving_log(lake, model, "2024-04", trips.head(400), folder="2024-06")

    logged = monitoring.serving_log(lake, USE_CASE.name, "2024-04")
    assert len(logged) == 400 and monitoring.serving_log(lake, USE_CASE.name, "2024-05") is None
    assert monitoring.serving_outcomes(lake, USE_CASE, logged) == (None, "no_ground_truth")

    snapshots.write_snapshot(
        lake, USE_CASE.name, "2024-04", pa.Table.from_pandas(trips, preserve_index=False), {}
    )
    joined, why = monitoring.serving_outcomes(lake, USE_CASE, logged)
    assert why == "" and len(joined) == 400
    perf = measures.performance(USE_CASE, joined)
    assert set(perf.variants) == {"champion", "challenger"}
    # Every fourth trip went to the challenger; a clean month still has a few trips outside the
    # modelling range (under a minute, over an hour), which no metric counts.
    challenger = trips.head(400).iloc[::4][USE_CASE.target.column]
    in_range = int(in_target_range(challenger, USE_CASE.target.range_).sum())
    assert perf.variants["challenger"]["n"] == in_range and 95 <= in_range <= 100

    health = monitoring.serving_health(logged)
    assert health["requests"] == 200 and health["p99_latency_ms"] == pytest.approx(99.0, abs=1.0)
    assert "error_rate" not in health  # a log without statuses (an older app) has no error rate


def test_missing_ground_truth_leaves_performance_pending(world: dict[str, Any]) -> None:
    lake, model = world["lake"], world["model"]
    trips = tlc.normalise(
        generator.generate_month("yellow", "2024-04", ROWS, seed=7, clean=True).table
    ).to_pandas()
    serving_log(lake, model, "2024-04", trips.head(drift.MIN_DRIFT_ROWS + 200))

    record, result = monitoring.evaluate_window(lake, USE_CASE, "2024-04", object(), world["champion"])

    assert record.status == "pending" and record.breaches == [], record.breach_details
    assert "rmse" in record.pending and "rmse" not in record.metrics
    assert result is not None and "drift_share" in record.metrics  # drift on what serving saw


def test_classifier_outcomes_are_scored_as_training_scores_them() -> None:
    from sklearn.metrics import log_loss, roc_auc_score

    tip = load_spec("taxi_generous_tip")
    rng = np.random.default_rng(0)
    rows = tlc.normalise(generator.generate_month("yellow", "2024-04", 600, seed=3).table).to_pandas()
    rows[sources.ACTUAL] = (rng.random(len(rows)) < 0.3).astype(float)
    rows["probability"] = np.clip(rng.random(len(rows)) * 0.6 + rows[sources.ACTUAL] * 0.2, 0, 1)
    rows = rows.assign(variant="champion", model_version="1")

    overall = measures.performance(tip, rows).overall

    # Only the metrics a spec can monitor: records and history keep their layout.
    assert set(overall) == {"log_loss", "roc_auc", "n"} and overall["n"] == len(rows)
    assert overall["log_loss"] == pytest.approx(log_loss(rows[sources.ACTUAL], rows["probability"]))
    assert overall["roc_auc"] == pytest.approx(roc_auc_score(rows[sources.ACTUAL], rows["probability"]))


# -- a whole window, its history and MLflow run (record) ------------------------------------------
def test_served_only_window_is_judged_on_the_champion_variant(world: dict[str, Any]) -> None:
    lake, model = world["lake"], world["model"]
    snapshot = add_month(lake, "2024-04", seed=12)
    trips = snapshots.read_table(lake, snapshot).to_pandas()
    serving_log(lake, model, "2024-04", trips.head(1_200))

    record, _ = monitoring.evaluate_window(lake, USE_CASE, "2024-04", object(), world["champion"])

    assert record.sources == {"batch": "no_predictions", "serving": ""}
    variants = record.details["variants"]
    assert set(variants) == {"champion", "challenger"}
    # 900 champion answers, less the few outcomes outside the modelling range
    outside = record.metrics["n_outside_range"]
    assert record.metrics["n_outcomes"] == variants["champion"]["n"] == 900 - outside
    assert 0 <= outside < 900 * 0.02
    assert record.metrics["rmse"] == pytest.approx(variants["champion"]["rmse"])


def test_clean_window_is_ok_and_drifted_window_breaches(world: dict[str, Any]) -> None:
    lake, model, champion = world["lake"], world["model"], world["champion"]
    score(lake, model, add_month(lake, "2024-04", seed=8))
    score(lake, model, add_month(lake, "2024-05", generator.Drift(outer_borough_shift=0.7, trip_length=1.4)))

    ok, _ = monitoring.evaluate_window(lake, USE_CASE, "2024-04", object(), champion)
    bad, result = monitoring.evaluate_window(lake, USE_CASE, "2024-05", object(), champion)

    assert ok.status == "ok", ok.breach_details
    assert ok.reference.months == ("2024-01", "2024-02")
    assert ok.metrics["rmse_reference"] == pytest.approx(world["val_rmse"])
    assert ok.metrics["quarantined_share"] == pytest.approx(0.01)
    assert bad.status == "breach" and "drift_share" in bad.breaches
    assert {"pu_borough", "trip_distance"} <= set(result.drifted)
    assert all(b.retrain for b in bad.breach_details)
    assert retrain.breach_reason(bad).startswith("2024-05: ")


def test_history_is_one_row_per_window_and_metric_and_reruns_replace(world: dict[str, Any]) -> None:
    lake, model, champion = world["lake"], world["model"], world["champion"]
    for month in ("2024-04", "2024-05"):
        score(lake, model, add_month(lake, month, seed=9))
        record, result = monitoring.evaluate_window(lake, USE_CASE, month, object(), champion)
        report = history.write_report(lake, USE_CASE, month, result)
        monitoring.write_history(lake, dataclasses.replace(record, report_url=lake.uri(report)))
    monitoring.write_history(lake, record)  # the same window again

    rows = lake.read_parquet(history.history_path(USE_CASE.name)).to_pandas()
    assert not rows.duplicated(["window", "metric"]).any()
    assert set(rows["window"]) == {"2024-04", "2024-05"}
    assert {"rmse", "drift_share", "slice[pu_borough=Manhattan].rmse", "drift.trip_distance"} <= set(
        rows["metric"]
    )
    saved = lake.read_json(monitoring.record_path(USE_CASE.name, "2024-04"))
    assert saved["report_url"].endswith("drift_report.html") and saved["status"] in (
        "ok",
        "breach",
        "pending",
    )
    assert b"<html" in lake.read_bytes(history.report_path(USE_CASE.name, "2024-04")).lower()


class RecordingClient:
    """Just the MLflow client calls a window's run needs; any other call fails the test."""

    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []
        self.artifacts: list[str] = []

    def get_experiment_by_name(self, name: str) -> None:
        return None

    def create_experiment(self, name: str) -> str:
        return "7"

    def search_runs(self, *args: Any, **kwargs: Any) -> list:
        return []

    def create_run(self, experiment_id: str, run_name: str, tags: dict[str, str]) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(info=SimpleNamespace(run_id="run-1"))

    def log_batch(self, run_id: str, metrics: Any = (), params: Any = (), tags: Any = ()) -> None:
        self.batches.append({"run_id": run_id, "metrics": list(metrics), "tags": list(tags)})

    def log_artifact(self, run_id: str, path: str) -> None:
        self.artifacts.append(path.rsplit("/", 1)[-1])

    def set_terminated(self, run_id: str) -> None:
        pass


def test_mlflow_run_gets_every_history_row_in_one_batch(world: dict[str, Any]) -> None:
    lake, model, champion = world["lake"], world["model"], world["champion"]
    score(lake, model, add_month(lake, "2024-04", seed=8))
    record, result = monitoring.evaluate_window(lake, USE_CASE, "2024-04", object(), champion)
    client = RecordingClient()

    ids = history.log_to_mlflow(
        lake, USE_CASE, record, history.write_report(lake, USE_CASE, "2024-04", result), client
    )

    assert ids["run_id"] == "run-1" and ids["url"].endswith("/#/experiments/7/runs/run-1")
    [batch] = client.batches  # one request, not one per metric
    rows = history.metric_values(record)
    assert len(batch["metrics"]) == len(rows) > 20
    logged = {m.key: m for m in batch["metrics"]}
    assert logged["rmse"].value == record.metrics["rmse"] and logged["rmse"].step == 202404
    assert "slice/pu_borough/Manhattan.rmse" in logged
    assert {t.key: t.value for t in batch["tags"]} == {
        "mlplatform.status": record.model_status,
        "mlplatform.model_status": record.model_status,
        "mlplatform.serving_status": record.serving_status,
        "mlplatform.breaches": ",".join(record.breaches) or "none",
        "mlplatform.champion_version": "1",
    }
    assert client.artifacts == ["metrics.json", "drift_report.html"]


# -- the command line -------------------------------------------------------------------------
def test_cli_monitor_prints_the_record(
    lake: Lake, mlflow_server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from mlplatform import cli

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    for month in ("2024-01", "2024-02", "2024-03", "2024-04"):
        add_month(lake, month)

    code = cli.main(
        ["monitor", "--use-case", USE_CASE.name, "--window", "2024-04", "--lake", lake.root_uri, "--json"]
    )

    out = capsys.readouterr()
    assert code == 0, out.err
    record = json.loads(out.out)
    assert record["window"] == "2024-04"
    assert record["status"] == "pending" and record["sources"]["batch"] == "no_predictions"
    assert record["mlflow_run_url"].startswith(mlflow_server)
    assert lake.exists(monitoring.record_path(USE_CASE.name, "2024-04"))


def test_pending_windows_are_those_recorded_pending_whose_ground_truth_arrived(tmp_path: Any) -> None:
    lake = Lake(tmp_path.as_uri())
    metric = USE_CASE.monitoring.performance_metric
    for window, pending in (("2024-02", [metric]), ("2024-03", ["drift_share"]), ("2024-04", [])):
        stored = MonitoringRecord(USE_CASE.name, window, "pending", {}, pending=tuple(pending))
        lake.write_json(monitoring.record_path(USE_CASE.name, window), stored.to_dict())
    arrived = ["2024-04", "2024-03", "2024-02", "2024-01"]
    assert history.pending_windows(lake, USE_CASE, arrived) == ["2024-02"]
    with pytest.raises(ValueError, match="window"):
        history.pending_windows(lake, USE_CASE, ["2024-13"])


def test_a_record_reads_back_as_it_was_stored() -> None:
    breach = Breach("rmse", 7.1, 5.5, "performance", "rmse 7.1 > 5.5")
    record = MonitoringRecord(
        "taxi", "2024-04", "breach", {"rmse": 7.1}, (breach,), model={"name": "m", "version": "3"}
    )
    stored = record.to_dict()
    assert stored["breaches"] == ["rmse"] and stored["breach_details"][0]["retrain"] is True
    assert "record_uri" not in stored
    assert MonitoringRecord.from_dict(stored) == record
    assert record.model_version == "3"
    with pytest.raises(ValueError, match="lacks window"):
        MonitoringRecord.from_dict({"use_case": "taxi", "status": "ok"})


# metrics.json as monitoring wrote it when breaches were a BreachRecord with a stored `retrain`.
STORED_RECORD = {
    "use_case": "taxi_trip_duration",
    "window": "2024-04",
    "status": "breach",
    "model_status": "breach",
    "serving_status": "ok",
    "metrics": {"rmse": 4.1, "n_outcomes": 1234, "contract_success": True, "error_rate": 0.0},
    "breaches": ["rmse"],
    "breach_details": [
        {
            "metric": "rmse",
            "value": 4.1,
            "threshold": 3.6,
            "kind": "performance",
            "message": "rmse 4.1 is 24% worse",
            "retrain": True,
        }
    ],
    "pending": [],
    "sources": {"batch": "", "serving": "no_predictions"},
    "details": {"slices": {}},
    "reference": {"months": ["2024-01"], "rows": 20000},
    "model": {"name": "taxi", "version": "3", "run_id": "r", "url": "http://mlflow/#/models/taxi/versions/3"},
    "thresholds": {"max_relative_degradation": 0.1},
    "computed_at": "2024-05-01T00:00:00+00:00",
    "report_url": None,
    "airflow_run_url": None,
    "mlflow_run_id": "m",
    "mlflow_run_url": "http://mlflow/#/experiments/1/runs/m",
}


def test_a_stored_record_reads_and_writes_back_unchanged() -> None:
    record = MonitoringRecord.from_dict(STORED_RECORD)
    assert record.breach_details == (Breach("rmse", 4.1, 3.6, "performance", "rmse 4.1 is 24% worse"),)
    assert record.breach_details[0].retrain and record.model_breaches and not record.serving_breaches
    assert record.to_dict() == STORED_RECORD
    assert json.dumps(record.to_dict(), sort_keys=True) == json.dumps(STORED_RECORD, sort_keys=True)
    located = MonitoringRecord.from_dict({**STORED_RECORD, "record_uri": "file:///lake/x/metrics.json"})
    assert located.to_dict()["record_uri"] == "file:///lake/x/metrics.json"
