"""The serving app's prediction log and metrics (``mlplatform.serving.log``,
``mlplatform.serving.metrics``): the log's layout in the lake, and what survives a lake
that cannot be written."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mlplatform.adapters.lake import Lake
from mlplatform.core import months
from mlplatform.core.spec import load_spec
from mlplatform.serving.store import ModelStore
from mlplatform.serving.telemetry import Metrics, PredictionLog, answer_rows, failure_row

USE_CASE = load_spec("taxi_trip_duration")


def test_answers_and_failures_land_in_one_month_partition(tmp_path: Path) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    prediction_log = PredictionLog(lake, "taxi_trip_duration", Metrics("taxi"))
    columns = {"pu_location_id": [161, 162]}
    answers = [{"prediction": 9.5}, {"prediction": 11.0}]
    prediction_log.add(answer_rows("r1", "champion", "taxi", "3", 4.2, columns, answers), 2)
    trips = [{"pickup_datetime": "2024-03-05T08:30:00"}]
    prediction_log.add(failure_row("r2", trips, "champion", "taxi", "3", 422, 1.0), 1)

    path = prediction_log.flush()
    month = months.of(datetime.now(UTC))
    assert path is not None and path.startswith(f"predictions/taxi_trip_duration/serving/month={month}/")
    table = lake.read_parquet(path).to_pandas()
    assert list(table.columns[:8]) == [
        "request_id", "item", "served_at", "variant", "model_name", "model_version", "latency_ms", "status",
    ]  # fmt: skip
    assert table["status"].tolist() == [200, 200, 422] and table["item"].tolist() == [0, 1, 0]
    assert table["prediction"].tolist()[:2] == [9.5, 11.0]
    assert table["pickup_datetime"].iloc[2] == datetime(2024, 3, 5, 8, 30)
    assert prediction_log.flush() is None  # nothing left


def test_an_unreadable_pickup_is_logged_as_missing() -> None:
    assert failure_row("r", [7], None, "taxi", None, 503, 1.0)["pickup_datetime"] == [None]
    assert failure_row("r", [], None, "taxi", None, 503, 1.0)["pickup_datetime"] == [None]


class UnwritableLake(Lake):
    def write_parquet(self, path: str, table: object, **kwargs: object) -> str:
        raise OSError("the lake is down")


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The exposition ``/metrics`` answers, parsed: (name, labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    text = metrics.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_an_unwritable_lake_keeps_the_newest_rows_and_counts_the_rest(tmp_path: Path) -> None:
    metrics = Metrics("taxi")
    prediction_log = PredictionLog(UnwritableLake(tmp_path.as_uri()), "uc", metrics, max_rows=3)
    for i in range(5):
        prediction_log.add(failure_row(f"r{i}", [], None, "taxi", None, 503, 1.0), 1)
    assert prediction_log.flush() is None
    assert prediction_log.flush() is None
    got = samples(metrics)
    assert got[("mlplatform_serving_prediction_log_dropped_total", (("model", "taxi"),))] == 2
    assert got[("mlplatform_serving_prediction_log_errors_total", (("model", "taxi"),))] == 2


def test_metrics_count_requests_errors_variants_and_models() -> None:
    metrics = Metrics("taxi")
    metrics.watch(ModelStore(USE_CASE))
    metrics.observe_request("/predict", 200, 0.004)
    metrics.observe_request("/predict", 422, 0.002)
    metrics.observe_request("unmatched", 404, 0.001)
    metrics.observe_variant("champion", "3", 200, 2)
    metrics.observe_variant("champion", "3", 422, 0)
    got = samples(metrics)
    route = (("model", "taxi"), ("route", "/predict"))
    assert got[("mlplatform_serving_requests_total", (*route, ("status", "200")))] == 1
    assert got[("mlplatform_serving_errors_total", (("kind", "validation"), *route))] == 1
    assert got[
        ("mlplatform_serving_errors_total", (("kind", "route"), ("model", "taxi"), ("route", "unmatched")))
    ]
    variant = (("model", "taxi"), ("variant", "champion"), ("version", "3"))
    assert got[("mlplatform_serving_predictions_total", variant)] == 2
    with_status = (("model", "taxi"), ("status", "422"), ("variant", "champion"), ("version", "3"))
    assert got[("mlplatform_serving_variant_requests_total", with_status)] == 1
    assert got[("mlplatform_serving_request_duration_seconds_bucket", (("le", "0.005"), *route))] == 2
    assert got[("mlplatform_serving_request_duration_seconds_bucket", (("le", "0.0025"), *route))] == 1
    assert got[("mlplatform_serving_request_duration_seconds_count", route)] == 2
    assert got[("mlplatform_serving_model_reloads_total", (("model", USE_CASE.model_name),))] == 0
    # The standard collectors: process, platform and garbage collector.
    names = {name for name, _ in got}
    assert {"process_resident_memory_bytes", "python_info", "python_gc_collections_total"} <= names


def test_two_apps_in_one_process_keep_their_own_counts() -> None:
    first, second = Metrics("taxi"), Metrics("taxi")
    first.observe_request("/predict", 200, 0.01)
    key = ("mlplatform_serving_requests_total", (("model", "taxi"), ("route", "/predict"), ("status", "200")))
    assert samples(first)[key] == 1 and key not in samples(second)
