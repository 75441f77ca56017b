"""The serving app's ``/metrics``: ``prometheus_client`` families in one registry per app.

Every family of the app is named ``mlplatform_serving_<name>`` and labelled with the model:

- ``requests_total{route, status}`` and ``request_duration_seconds{route}`` (a histogram):
  every HTTP request, whatever its route and however it ended (unexpected failures included);
- ``errors_total{route, kind}``: every answer of status 400 or more, by kind (see
  :data:`ERROR_KINDS`);
- ``variant_requests_total{variant, version, status}`` and ``predictions_total{variant,
  version}`` (trips predicted): the A/B split of the requests that reached a model;
- ``model_info{variant, version}``, ``model_reloads_total``, ``model_reload_errors_total``,
  ``prediction_log_dropped_total`` and ``prediction_log_errors_total``.

Beside them the standard ``process_*``, ``python_info`` and ``python_gc_*`` collectors.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mlplatform.serving.store import ModelStore

PREFIX = "mlplatform_serving"
CONTENT_TYPE = CONTENT_TYPE_LATEST
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ERROR_KINDS = {
    400: "body",
    401: "auth",
    403: "auth",
    404: "route",
    405: "route",
    406: "media_type",
    413: "too_large",
    415: "media_type",
    422: "validation",
    500: "server",
    503: "no_model",
}
"""The ``kind`` label of ``errors_total`` by status; other statuses are ``http_<status>``."""


def error_kind(status: int) -> str:
    """What an error status means, for the ``kind`` label."""
    return ERROR_KINDS.get(status, f"http_{status}")


class Metrics:
    """The families of one app, in their own registry (two apps in a process do not mix)."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            f"{PREFIX}_requests", "HTTP requests answered, by route and status.",
            ["model", "route", "status"], registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            f"{PREFIX}_request_duration_seconds", "Time from request to answer.",
            ["model", "route"], buckets=BUCKETS, registry=registry,
        )  # fmt: skip
        self.errors = Counter(
            f"{PREFIX}_errors", "Answers with status 400 or more, by route and kind.",
            ["model", "route", "kind"], registry=registry,
        )  # fmt: skip
        self.variant_requests = Counter(
            f"{PREFIX}_variant_requests", "Prediction requests that reached a model, by variant and status.",
            ["model", "variant", "version", "status"], registry=registry,
        )  # fmt: skip
        self.predictions = Counter(
            f"{PREFIX}_predictions", "Trips predicted, by variant.",
            ["model", "variant", "version"], registry=registry,
        )  # fmt: skip
        self.log_dropped = Counter(
            f"{PREFIX}_prediction_log_dropped", "Logged predictions dropped: lake unreachable.",
            ["model"], registry=registry,
        )  # fmt: skip
        self.log_errors = Counter(
            f"{PREFIX}_prediction_log_errors", "Failed writes of the prediction log.",
            ["model"], registry=registry,
        )  # fmt: skip
        self.log_dropped.labels(model_name)
        self.log_errors.labels(model_name)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)

    def watch(self, store: ModelStore) -> None:
        """Report what ``store`` serves and its reloads at every scrape."""
        self.registry.register(_StoreCollector(store))

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request, its latency, and its error kind if it failed."""
        self.requests.labels(self.model_name, route, str(status)).inc()
        self.latency.labels(self.model_name, route).observe(seconds)
        if status >= 400:
            self.errors.labels(self.model_name, route, error_kind(status)).inc()

    def observe_variant(self, variant: str, version: str, status: int, rows: int) -> None:
        """Count one prediction request that reached ``variant``, and the trips it predicted."""
        self.variant_requests.labels(self.model_name, variant, version, str(status)).inc()
        self.predictions.labels(self.model_name, variant, version).inc(rows)

    def count_log_failure(self, dropped_rows: int) -> None:
        """Count a failed write of the prediction log and the logged rows it had to drop."""
        self.log_errors.labels(self.model_name).inc()
        self.log_dropped.labels(self.model_name).inc(dropped_rows)

    def render(self) -> bytes:
        """The text ``GET /metrics`` answers (content type :data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    """The versions served and the reload counts, read from the store at scrape time."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        name = self.store.model_name
        info = GaugeMetricFamily(
            f"{PREFIX}_model_info",
            "The versions served now, by variant.",
            labels=["model", "variant", "version"],
        )
        served = self.store.served
        if served is not None:
            for variant, loaded in (("champion", served.champion), ("challenger", served.challenger)):
                if loaded is not None:
                    info.add_metric([name, variant, loaded.ref.version], 1)
        yield info
        reloads = CounterMetricFamily(
            f"{PREFIX}_model_reloads", "Times a new version was swapped in.", labels=["model"]
        )
        reloads.add_metric([name], self.store.reloads)
        yield reloads
        errors = CounterMetricFamily(
            f"{PREFIX}_model_reload_errors", "Alias checks or model loads that failed.", labels=["model"]
        )
        errors.add_metric([name], self.store.reload_errors)
        yield errors
