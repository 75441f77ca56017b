"""What the app reports: ``/metrics`` and the prediction log.

``/metrics`` is ``prometheus_client`` families in one registry per app. Every family of the
app is named ``mlplatform_serving_<name>`` and labelled with the model:

- ``requests_total{route, status}`` and ``request_duration_seconds{route}`` (a histogram):
  every HTTP request, whatever its route and however it ended (unexpected failures included);
- ``errors_total{route, kind}``: every answer of status 400 or more, by kind (see
  :data:`ERROR_KINDS`);
- ``variant_requests_total{variant, version, status}`` and ``predictions_total{variant,
  version}`` (trips predicted): the A/B split of the requests that reached a model;
- ``model_info{variant, version}``, ``model_reloads_total``, ``model_reload_errors_total``,
  ``prediction_log_dropped_total`` and ``prediction_log_errors_total``.

Beside them the standard ``process_*``, ``python_info`` and ``python_gc_*`` collectors.

The prediction log is every request the app answers, as rows in the lake for monitoring.
Layout: ``predictions/<use case>/serving/month=YYYY-MM/<time>-<pid>-<n>.parquet``, small
parquet files written atomically by a background thread. One row per trip answered
(request id, item, time, variant, model version, latency, status 200, the inputs and the
answer) and one row per failed request (its status, and the first trip's pickup time when
it is readable, so monitoring counts it in the error rate of that month). The monitoring
DAG reads these to compare variants.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

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

from mlplatform.adapters.lake import Lake
from mlplatform.core import months
from mlplatform.serving.schema import InputField, convert
from mlplatform.serving.store import ModelStore

log = logging.getLogger(__name__)

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


# ---------------------------------------------------------------------------- the prediction log

Chunk = dict[str, list[Any]]
"""Rows for the log as columns: every chunk has ``request_id``; other columns may be absent."""


def answer_rows(
    request_id: str,
    variant: str,
    model_name: str,
    model_version: str,
    latency_ms: float,
    columns: Chunk,
    answers: list[dict[str, float | str]],
) -> Chunk:
    """The rows of a request answered with status 200: one per trip, inputs and answer."""
    n = len(answers)
    return {
        "request_id": [request_id] * n,
        "item": list(range(n)),
        "served_at": [datetime.now(UTC)] * n,
        "variant": [variant] * n,
        "model_name": [model_name] * n,
        "model_version": [model_version] * n,
        "latency_ms": [latency_ms] * n,
        "status": [200] * n,
        **columns,
        **{key: [a[key] for a in answers] for key in answers[0]},
    }


def failure_row(
    request_id: str,
    instances: list[Any],
    variant: str | None,
    model_name: str,
    model_version: str | None,
    status: int,
    latency_ms: float,
) -> Chunk:
    """The one row of a failed request. It carries the first trip's pickup time when that
    is readable (the window it belongs to)."""
    first = instances[0] if instances and isinstance(instances[0], dict) else {}
    pickup, why = convert(InputField("pickup_datetime", "datetime"), first.get("pickup_datetime"))
    return {
        "request_id": [request_id],
        "item": [0],
        "served_at": [datetime.now(UTC)],
        "variant": [variant],
        "model_name": [model_name],
        "model_version": [model_version],
        "latency_ms": [latency_ms],
        "status": [status],
        "pickup_datetime": [None if why else pickup],
    }


class PredictionLog:
    """Buffers served predictions and flushes them to the lake as small parquet files.

    Files go to ``predictions/<use case>/serving/month=YYYY-MM/<time>-<id>.parquet``,
    each written atomically. Flushes happen on a background thread every
    ``flush_seconds`` or once ``flush_rows`` are buffered, and at shutdown. If the lake is
    unreachable rows are kept up to ``max_rows`` and then the oldest are dropped (counted
    in ``/metrics``): serving never stops for logging.
    """

    def __init__(
        self,
        lake: Lake,
        use_case: str,
        metrics: Metrics,
        flush_seconds: float = 5.0,
        flush_rows: int = 5000,
        max_rows: int = 500_000,
    ) -> None:
        self.lake, self.use_case, self.metrics = lake, use_case, metrics
        self.flush_seconds, self.flush_rows, self.max_rows = flush_seconds, flush_rows, max_rows
        self._chunks: list[Chunk] = []
        self._rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._written = 0

    def add(self, chunk: Chunk, rows: int) -> None:
        """Buffer ``rows`` rows; wakes the writer once ``flush_rows`` are waiting."""
        with self._lock:
            self._chunks.append(chunk)
            self._rows += rows
            full = self._rows >= self.flush_rows
        if full:
            self._wake.set()

    def path_for(self, now: datetime) -> str:
        """Where the next file goes: the month partition of ``now``, a unique file name."""
        self._written += 1
        return (
            f"predictions/{self.use_case}/serving/month={months.of(now)}/"
            f"{now:%Y%m%dT%H%M%S%f}-{os.getpid()}-{self._written:06d}.parquet"
        )

    def flush(self) -> str | None:
        """Write what is buffered; returns the lake path written, if any."""
        import pyarrow as pa

        with self._lock:
            chunks, self._chunks, self._rows = self._chunks, [], 0
        if not chunks:
            return None
        names = list(dict.fromkeys(name for chunk in chunks for name in chunk))
        data = {}
        for name in names:
            values: list[Any] = []
            for chunk in chunks:
                n = len(chunk["request_id"])
                values.extend(chunk.get(name, [None] * n))
            data[name] = values
        table = pa.table(data)
        path = self.path_for(datetime.now(UTC))
        try:
            self.lake.write_parquet(path, table, compression="zstd")
        except Exception as exc:  # the lake's backends raise many types; serving goes on
            log.warning("could not write the prediction log to %s: %s", self.lake.uri(path), exc)
            self._keep(chunks, table.num_rows)
            return None
        return path

    def _keep(self, chunks: list[Chunk], rows: int) -> None:
        """Put rows that could not be written back in front, dropping the oldest over ``max_rows``."""
        dropped = 0
        with self._lock:
            self._chunks[:0] = chunks
            self._rows += rows
            while self._rows > self.max_rows and self._chunks:
                oldest = self._chunks.pop(0)
                self._rows -= len(oldest["request_id"])
                dropped += len(oldest["request_id"])
        self.metrics.count_log_failure(dropped)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def stop(self) -> None:
        """Stop the writer thread and write what is still buffered."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()
