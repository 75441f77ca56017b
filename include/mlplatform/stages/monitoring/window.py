"""One monitoring window end to end: which windows a run evaluates, every measure of one, kept.

:func:`evaluate_window` gathers what production did in a window (performance, drift, data
quality, serving health), holds it to the spec's thresholds and returns the record with
its two verdicts; :func:`monitor` adds the live decisions and the estimate before labels
(:func:`.decision.assess_window`) and keeps it all (:mod:`.history`). :func:`windows_for_run` and
:func:`window_of_run` say which windows a monitor run evaluates.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any

from mlplatform.adapters import registry
from mlplatform.adapters.lake import Lake
from mlplatform.core import months
from mlplatform.core.records import DriftReference, MonitoringRecord
from mlplatform.core.spec import UseCase
from mlplatform.stages.monitoring.decision import assess_window, breaches, model_status, serving_status
from mlplatform.stages.monitoring.drift import DriftResult, measure_drift
from mlplatform.stages.monitoring.history import (
    log_to_mlflow,
    pending_windows,
    record_path,
    write_history,
    write_report,
)
from mlplatform.stages.monitoring.measures import data_quality, measure_performance, serving_health
from mlplatform.stages.monitoring.sources import Champion, champion, read_capture, serving_log, with_capture

log = logging.getLogger(__name__)


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


# -- evaluating a window -----------------------------------------------------------------------
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
    measured, performance, sources = measure_performance(lake, use_case, window, logged, client, found)
    metrics: dict[str, int | float | bool | None] = dict(measured)
    details: dict[str, Any] = dict(performance)  # the record's open-ended JSON
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
        breach_details=tuple(found_breaches),
        pending=tuple(pending),
        sources=sources,
        details=details,
        reference=DriftReference(tuple(reference_months), reference_rows),
        model=_model_fields(found),
        thresholds=use_case.monitoring.model_dump(),
        computed_at=datetime.now(UTC).isoformat(),
    )
    return record, result


def _model_fields(found: Champion | None) -> dict[str, str | None] | None:
    if found is None:
        return None
    return {"name": found.name, "version": found.version, "run_id": found.run_id, "url": found.url}


# -- one window, end to end --------------------------------------------------------------------
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
    record = assess_window(lake, use_case, record, client, act=act)
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
