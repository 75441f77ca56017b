"""The serving app's ``/metrics``: counters and a latency histogram in the Prometheus text format.

Every family is named ``mlplatform_serving_<name>`` and labelled with the model, and with
the variant and version where a request was answered by one.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from mlplatform.serving.store import ModelStore


class Metrics:
    """Counters and a latency histogram, rendered in the Prometheus text format."""

    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.errors: dict[tuple[str, str, str], int] = defaultdict(int)
        self.rows: dict[tuple[str, str], int] = defaultdict(int)
        self.latency_buckets: dict[tuple[str, str], list[int]] = {}
        self.latency_sum: dict[tuple[str, str], float] = defaultdict(float)
        self.log_dropped = 0
        self.log_errors = 0

    def observe(
        self, variant: str, version: str, status: int, seconds: float, rows: int, error: str | None
    ) -> None:
        """Count one answered request: its status, rows, latency and error kind, if any."""
        with self._lock:
            self.requests[(variant, version, str(status))] += 1
            if error:
                self.errors[(variant, version, error)] += 1
            self.rows[(variant, version)] += rows
            buckets = self.latency_buckets.setdefault((variant, version), [0] * (len(self.BUCKETS) + 1))
            for i, bound in enumerate(self.BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
            buckets[-1] += 1
            self.latency_sum[(variant, version)] += seconds

    def count_log_failure(self, dropped_rows: int) -> None:
        """Count a failed write of the prediction log and the logged rows it had to drop."""
        with self._lock:
            self.log_errors += 1
            self.log_dropped += dropped_rows

    def render(self, store: ModelStore) -> str:
        """The text ``GET /metrics`` answers: request counters, then the models and the log."""
        out = _Exposition(self.model_name)
        with self._lock:
            self._render_requests(out)
            dropped, log_errors = self.log_dropped, self.log_errors
        out.family("model_info", "gauge", "The versions served now, by variant.")
        served = store.served
        if served is not None:
            for variant, loaded in (("champion", served.champion), ("challenger", served.challenger)):
                if loaded is not None:
                    out.sample("model_info", 1, variant=variant, version=loaded.ref.version)
        out.family("model_reloads_total", "counter", "Times a new version was swapped in.")
        out.sample("model_reloads_total", store.reloads)
        out.family("model_reload_errors_total", "counter", "Alias checks or model loads that failed.")
        out.sample("model_reload_errors_total", store.reload_errors)
        out.family("prediction_log_dropped_total", "counter", "Logged predictions dropped: lake unreachable.")
        out.sample("prediction_log_dropped_total", dropped)
        out.family("prediction_log_errors_total", "counter", "Failed writes of the prediction log.")
        out.sample("prediction_log_errors_total", log_errors)
        return out.text()

    def _render_requests(self, out: _Exposition) -> None:
        out.family("requests_total", "counter", "Prediction requests answered, by HTTP status.")
        for (variant, version, status), n in sorted(self.requests.items()):
            out.sample("requests_total", n, variant=variant, version=version, status=status)
        out.family("errors_total", "counter", "Failed requests: validation (4xx) or model (5xx).")
        for (variant, version, kind), n in sorted(self.errors.items()):
            out.sample("errors_total", n, variant=variant, version=version, kind=kind)
        out.family("predictions_total", "counter", "Rows predicted.")
        for (variant, version), n in sorted(self.rows.items()):
            out.sample("predictions_total", n, variant=variant, version=version)
        out.family("request_duration_seconds", "histogram", "Time from request to answer.")
        for (variant, version), buckets in sorted(self.latency_buckets.items()):
            for bound, n in zip((*self.BUCKETS, "+Inf"), buckets, strict=True):
                out.sample(
                    "request_duration_seconds_bucket", n, variant=variant, version=version, le=str(bound)
                )
            total = round(self.latency_sum[(variant, version)], 6)
            out.sample("request_duration_seconds_sum", total, variant=variant, version=version)
            out.sample("request_duration_seconds_count", buckets[-1], variant=variant, version=version)


class _Exposition:
    """Lines of the Prometheus text format for one model's families."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP mlplatform_serving_{name} {help_text}")
        self.lines.append(f"# TYPE mlplatform_serving_{name} {kind}")

    def sample(self, name: str, value: float, **labels: str) -> None:
        text = ",".join(f'{k}="{v}"' for k, v in {"model": self.model_name, **labels}.items())
        self.lines.append(f"mlplatform_serving_{name}{{{text}}} {value}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"
