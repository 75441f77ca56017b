"""A window's record kept: ``metrics.json``, the history table, the drift report, its MLflow run.

:func:`write_history` stores the record the MLOps page, the alert and the retrain decision
read and replaces its rows in ``history.parquet``; :func:`log_to_mlflow` logs it as one run
per window; :func:`read_record` reads it back; :func:`summary` is what the command line
prints of it.

Lake layout written here::

    monitoring/<uc>/history/window=YYYY-MM/metrics.json   one record per window
    monitoring/<uc>/history.parquet                        one row per window and metric
    monitoring/<uc>/reports/window=YYYY-MM/drift_report.html
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from mlplatform.adapters import registry, settings
from mlplatform.adapters.lake import Lake
from mlplatform.core import months
from mlplatform.core.records import MonitoringRecord
from mlplatform.core.spec import UseCase
from mlplatform.stages.monitoring.drift import DriftResult

HISTORY_COLUMNS = ["window", "metric", "value", "status", "computed_at"]


def record_path(use_case: str, window: str) -> str:
    return f"monitoring/{use_case}/history/window={window}/metrics.json"


def report_path(use_case: str, window: str) -> str:
    return f"monitoring/{use_case}/reports/window={window}/drift_report.html"


def history_path(use_case: str) -> str:
    return f"monitoring/{use_case}/history.parquet"


def read_record(lake: Lake, use_case: str, window: str) -> MonitoringRecord | None:
    """The stored record of a window, or ``None`` before it was monitored."""
    path = record_path(use_case, window)
    if not lake.exists(path):
        return None
    return dataclasses.replace(MonitoringRecord.from_dict(lake.read_json(path)), record_uri=lake.uri(path))


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


# -- writing the history -----------------------------------------------------------------------
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


def _flat(prefix: str, values: Mapping[str, object]) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in values.items() if isinstance(v, int | float)}


def metric_values(record: MonitoringRecord) -> dict[str, float]:
    """Every number of a record under its history name, sorted by name: headline metrics, per
    slice (``slice[pu_borough=Queens].rmse``), per variant and per feature (``drift.<feature>``)."""
    values = _flat("", record.metrics)
    details = record.details
    for group in ("slices", "variants"):
        for name, scores in (details.get(group) or {}).items():
            values.update(_flat(f"{group[:-1]}[{name}].", scores))
    values.update(_flat("drift.", details.get("features") or {}))
    return dict(sorted(values.items()))


def write_history(lake: Lake, record: MonitoringRecord) -> str:
    """Store the window's record and replace its rows in ``history.parquet`` (atomic rewrite)."""
    use_case, window = record.use_case, record.window
    lake.write_json(record_path(use_case, window), dataclasses.replace(record, record_uri=None).to_dict())
    path = history_path(use_case)
    values = metric_values(record)  # one row per metric
    rows = pd.DataFrame(
        {"metric": list(values), "value": list(values.values())}, columns=HISTORY_COLUMNS
    ).assign(window=window, status=record.model_status, computed_at=record.computed_at)
    if lake.exists(path):
        old = lake.read_parquet(path).to_pandas()
        rows = pd.concat([old[old["window"] != window], rows], ignore_index=True)
    rows = rows.sort_values(["window", "metric"], ignore_index=True)
    return lake.write_parquet(path, pa.Table.from_pandas(rows, preserve_index=False))


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
    values = metric_values(record)
    metrics = [Metric(_mlflow_key(name), value, logged_at, step) for name, value in values.items()]
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
