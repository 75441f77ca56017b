"""One window's record: evaluated, written to the lake's history, logged to MLflow.

:func:`evaluate_window` gathers every measure of a window and its breaches into the
record the MLOps page, the alert and the retrain decision read; :func:`monitor` also
writes it: the drift report, the window's MLflow run, the record and its history rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from mlplatform.adapters import registry, settings
from mlplatform.adapters.lake import Lake
from mlplatform.core import months
from mlplatform.core.records import SERVING_METRICS, BreachRecord, MonitoringRecord
from mlplatform.core.spec import UseCase
from mlplatform.stages.monitoring import live
from mlplatform.stages.monitoring.capture import read_capture, with_capture
from mlplatform.stages.monitoring.data_drift import DriftResult, measure_drift
from mlplatform.stages.monitoring.measure import data_quality, measure_performance, serving_health
from mlplatform.stages.monitoring.reference import Champion, champion
from mlplatform.stages.monitoring.sources import serving_log
from mlplatform.stages.monitoring.thresholds import Breach, breaches

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ["window", "metric", "value", "status", "computed_at"]


def record_path(use_case: str, window: str) -> str:
    return f"monitoring/{use_case}/history/window={window}/metrics.json"


def report_path(use_case: str, window: str) -> str:
    return f"monitoring/{use_case}/reports/window={window}/drift_report.html"


def history_path(use_case: str) -> str:
    return f"monitoring/{use_case}/history.parquet"


def pending_windows(lake: Lake, use_case: UseCase, arrived: list[str]) -> list[str]:
    """Which of the months whose ground truth ``arrived`` (validated snapshots) were recorded
    ``pending`` for want of it: their windows can be evaluated again now, oldest first."""
    metric = use_case.monitoring.performance_metric
    found = []
    for window in sorted(set(arrived)):
        stored = read_record(lake, use_case.name, months.check(window, "window"))
        if stored is not None and metric in stored.pending:
            found.append(window)
    return found


class NothingPending(LookupError):
    """Ground truth arrived, and no window was waiting for it."""


def windows_for_run(
    lake: Lake, use_case: UseCase, given: str | None, predicted: list[str], arrived: list[str]
) -> list[str | None]:
    """The windows one monitor run evaluates: the ``given`` window, else the months whose
    predictions started it and the pending windows whose ground truth ``arrived``, oldest
    first; ``[None]`` (the run's own month) when nothing names one. Raises
    :class:`NothingPending` for a run started only by ground truth nobody waited for."""
    if given:
        return [given]
    wanted = set(predicted) | set(pending_windows(lake, use_case, arrived))
    if not wanted and arrived and not predicted:
        raise NothingPending(f"no window was pending on the ground truth of {', '.join(sorted(arrived))}")
    return list(sorted(wanted)) or [None]


def window_of_run(window: str | None, data_interval_end: datetime | None) -> str:
    """The window a run evaluates: ``window`` if given, else the last full month before the
    run was due (a run due on 1 April evaluates March), as batch scoring does."""
    if window:
        return months.check(window, "window")
    if data_interval_end is None:
        raise ValueError(
            "this run has no data interval (triggered without a logical date): "
            "trigger it with the `window` param, YYYY-MM"
        )
    return months.shift(months.of(data_interval_end), -1)


# -- evaluating a window ------------------------------------------------------------------------
def evaluate_window(
    lake: Lake, use_case: UseCase, window: str, client: Any = None, found: Champion | None = None
) -> tuple[MonitoringRecord, DriftResult | None]:
    """Every metric of one window, its breaches and its two verdicts (nothing is written here).

    The record has the shape the MLOps page reads: ``window``, ``model_status`` (``ok``,
    ``breach`` or ``pending``), ``serving_status`` (``ok``, ``breach`` or ``unmeasured``),
    ``metrics``, ``breaches``, plus ``details`` (per slice, variant and feature),
    ``breach_details``, ``pending`` and ``model``. Performance without ground truth makes
    the model ``pending`` unless something else of the model breached.
    """
    months.check(window, "window")
    client = client or registry.client()
    found = found if found is not None else champion(use_case, client)
    metric = use_case.monitoring.performance_metric
    # Real-time traffic: the local serving app's log and SageMaker's data capture, one frame.
    captured = read_capture(lake, use_case, window)
    logged = with_capture(serving_log(lake, use_case.name, window), captured)
    metrics, details, sources = measure_performance(lake, use_case, window, logged, client, found)
    result, reference_months, reference_rows = measure_drift(lake, use_case, window, logged, found)
    pending: list[str] = [] if metric in metrics else [metric]
    if metric in metrics and f"{metric}_reference" not in metrics:
        pending.append(f"{metric}_reference")
    if result is None:
        pending.append("drift_share")
    else:
        metrics.update(drift_share=result.share, drifted_features=len(result.drifted))
        if result.prediction_drift is not None:
            metrics["prediction_drift"] = result.prediction_drift
        details.update(features=result.scores, drifted=result.drifted)
    metrics.update(data_quality(lake, use_case, window))
    metrics.update(serving_health(logged))
    metrics.update(captured.metrics())
    found_breaches = breaches(use_case, metrics)
    record = MonitoringRecord(
        use_case=use_case.name,
        window=window,
        model_status=model_status(found_breaches, pending, metric),
        serving_status=serving_status(found_breaches, metrics),
        metrics=metrics,
        breach_details=tuple(_breach_record(b) for b in found_breaches),
        pending=tuple(pending),
        sources=sources,
        details=details,
        reference={"months": reference_months, "rows": reference_rows},
        model=_model_fields(found),
        thresholds=use_case.monitoring.model_dump(),
        computed_at=datetime.now(UTC).isoformat(),
    )
    return record, result


def model_status(found: list[Breach], pending: list[str], metric: str) -> str:
    """The model's verdict: ``breach`` on a performance, drift or data-quality breach, else
    ``pending`` while the performance metric waits for ground truth, else ``ok``. Serving
    breaches do not count: how fast the endpoint answered says nothing about the model."""
    if any(not b.serving for b in found):
        return "breach"
    return "pending" if metric in pending else "ok"


def serving_status(found: list[Breach], metrics: dict[str, Any]) -> str:
    """The endpoint's verdict from its error rate and p99 latency: ``breach``, ``ok``, or
    ``unmeasured`` when the window had no real-time traffic."""
    if any(b.serving for b in found):
        return "breach"
    return "ok" if any(name in metrics for name in SERVING_METRICS) else "unmeasured"


def _breach_record(found: Breach) -> BreachRecord:
    return BreachRecord(found.metric, found.value, found.threshold, found.kind, found.message, found.retrain)


def _model_fields(found: Champion | None) -> dict[str, Any] | None:
    if found is None:
        return None
    return {"name": found.name, "version": found.version, "run_id": found.run_id, "url": found.url}


# -- writing the history ------------------------------------------------------------------------
def write_report(lake: Lake, use_case: UseCase, window: str, result: DriftResult | None) -> str | None:
    """Evidently's HTML drift report in the lake; returns its lake path."""
    if result is None or result.snapshot is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "drift_report.html"
        result.snapshot.save_html(str(local))
        path = report_path(use_case.name, window)
        lake.write_bytes(path, local.read_bytes())
    return path


def _flat(prefix: str, values: dict[str, Any]) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in values.items() if isinstance(v, int | float)}


def history_rows(record: MonitoringRecord) -> list[dict[str, Any]]:
    """One row per metric of a record: headline, per slice, per variant and per feature."""
    values = _flat("", record.metrics)
    details = record.details
    for group in ("slices", "variants"):
        for name, scores in (details.get(group) or {}).items():
            values.update(_flat(f"{group[:-1]}[{name}].", scores))
    values.update(_flat("drift.", details.get("features") or {}))
    return [
        {
            "window": record.window,
            "metric": name,
            "value": value,
            "status": record.model_status,
            "computed_at": record.computed_at,
        }
        for name, value in sorted(values.items())
    ]


def write_history(lake: Lake, record: MonitoringRecord) -> str:
    """Store the window's record and replace its rows in ``history.parquet`` (atomic rewrite)."""
    use_case, window = record.use_case, record.window
    lake.write_json(record_path(use_case, window), dataclasses.replace(record, record_uri=None).to_dict())
    path = history_path(use_case)
    rows = pd.DataFrame(history_rows(record), columns=HISTORY_COLUMNS)
    if lake.exists(path):
        old = lake.read_parquet(path).to_pandas()
        rows = pd.concat([old[old["window"] != window], rows], ignore_index=True)
    rows = rows.sort_values(["window", "metric"], ignore_index=True)
    return lake.write_parquet(path, pa.Table.from_pandas(rows, preserve_index=False))


def read_history(lake: Lake, use_case: str) -> pd.DataFrame:
    path = history_path(use_case)
    return lake.read_parquet(path).to_pandas() if lake.exists(path) else pd.DataFrame()


# -- the window's MLflow run --------------------------------------------------------------------
def _mlflow_key(name: str) -> str:
    """A metric name MLflow accepts: ``slice[pu_borough=Queens].rmse`` -> ``slice/pu_borough/Queens.rmse``."""
    name = name.replace("[", "/").replace("]", "").replace("=", "/")
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", name)


def _window_run(client: Any, use_case: str, window: str) -> tuple[str, str]:
    """The experiment and run of a window in ``<use case>-monitoring``, created on first use."""
    name = f"{use_case}-monitoring"
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    found = client.search_runs([experiment_id], f"tags.`mlplatform.window` = '{window}'", max_results=1)
    if found:
        return experiment_id, found[0].info.run_id
    run = client.create_run(experiment_id, run_name=f"window={window}", tags={"mlplatform.window": window})
    return experiment_id, run.info.run_id


def log_to_mlflow(
    lake: Lake, use_case: UseCase, record: MonitoringRecord, report: str | None, client: Any = None
) -> dict[str, str]:
    """One MLflow run per window in ``<use case>-monitoring`` (re-runs reuse it); returns its ids.

    Every history row is a metric at step ``YYYYMM``; they and the run's tags go in one
    ``log_batch`` request (MLflow splits it at its batch limits), not one request per metric.
    """
    from mlflow.entities import Metric, RunTag

    client = client or registry.client()
    experiment_id, run_id = _window_run(client, use_case.name, record.window)
    step, logged_at = int(record.window.replace("-", "")), int(time.time() * 1000)
    metrics = [Metric(_mlflow_key(r["metric"]), r["value"], logged_at, step) for r in history_rows(record)]
    tags = {
        "status": record.model_status,
        "model_status": record.model_status,
        "serving_status": record.serving_status,
        "breaches": ",".join(record.breaches) or "none",
    }
    if record.model_version is not None:
        tags["champion_version"] = record.model_version
    client.log_batch(run_id, metrics=metrics, tags=[RunTag(f"mlplatform.{k}", v) for k, v in tags.items()])
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "metrics.json").write_text(json.dumps(record.to_dict(), indent=2, default=str))
        client.log_artifact(run_id, str(Path(tmp) / "metrics.json"))
        if report:
            (Path(tmp) / "drift_report.html").write_bytes(lake.read_bytes(report))
            client.log_artifact(run_id, str(Path(tmp) / "drift_report.html"))
    with contextlib.redirect_stdout(sys.stderr):  # MLflow prints the run's link; stdout is for results
        client.set_terminated(run_id)
    base = settings.tracking_uri().rstrip("/")
    return {"run_id": run_id, "url": f"{base}/#/experiments/{experiment_id}/runs/{run_id}"}


# -- one window, end to end ---------------------------------------------------------------------
def monitor(
    lake: Lake,
    use_case: UseCase,
    window: str,
    client: Any = None,
    airflow_run_url: str | None = None,
    act: bool = True,
) -> MonitoringRecord:
    """Evaluate one window and write everything: report, MLflow run, record and history.

    ``act=False`` (backfills) records the live decisions without acting on them."""
    client = client or registry.client()
    record, result = evaluate_window(lake, use_case, window, client)
    # Production truth decides: the estimate before labels, challenger and rollback on live labels.
    record = live.assess_window(lake, use_case, record, client, act=act)
    report = write_report(lake, use_case, window, result)
    record = dataclasses.replace(
        record, report_url=lake.uri(report) if report else None, airflow_run_url=airflow_run_url
    )
    mlflow_run = log_to_mlflow(lake, use_case, record, report, client)
    record = dataclasses.replace(record, mlflow_run_id=mlflow_run["run_id"], mlflow_run_url=mlflow_run["url"])
    write_history(lake, record)
    record = dataclasses.replace(record, record_uri=lake.uri(record_path(use_case.name, window)))
    log.info(
        "%s %s: model %s, serving %s %s",
        use_case.name,
        window,
        record.model_status,
        record.serving_status,
        record.breaches,
    )
    return record


def read_record(lake: Lake, use_case: str, window: str) -> MonitoringRecord | None:
    """The stored record of a window, or ``None`` before it was monitored."""
    path = record_path(use_case, window)
    if not lake.exists(path):
        return None
    return dataclasses.replace(MonitoringRecord.from_dict(lake.read_json(path)), record_uri=lake.uri(path))


def summary(record: MonitoringRecord) -> str:
    """A short human-readable summary of a record (the command line prints it)."""
    out = io.StringIO()
    out.write(
        f"{record.use_case} {record.window}: model {record.model_status}, serving {record.serving_status}\n"
    )
    for name, value in sorted(record.metrics.items()):
        out.write(f"  {name:<24} {value}\n")
    for b in record.breach_details:
        out.write(f"  BREACH {b.metric}: {b.message}\n")
    if record.pending:
        out.write(f"  pending: {', '.join(record.pending)}\n")
    if record.report_url:
        out.write(f"  report: {record.report_url}\n")
    return out.getvalue()
