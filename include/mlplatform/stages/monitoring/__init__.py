"""Production monitoring: performance on delayed ground truth, drift, data quality, serving health.

For one use case and one window (a month) :func:`evaluate_window` gathers what production
did and compares it with what the champion promised at training time:

- **performance** (:mod:`.measure`): batch predictions (``predictions/<uc>/month=M/CURRENT.json``)
  joined on ``row_index`` to the target column of the snapshot they scored, and real-time
  predictions from the serving log (``predictions/<uc>/serving/month=M/``) joined on the
  trip key to the snapshot of the month the trip happened in. Outcomes arrive later than
  predictions: rows whose month has no validated snapshot yet have no ground truth, and a
  window without any is ``pending``, never a false alarm. Metrics per window, per slice
  (``promotion.slices``) and per variant (``batch``, ``champion``, ``challenger``).
- **drift** (:mod:`.data_drift`): each feature of the window against a sample of the
  champion's training months (:mod:`.reference`; normed Wasserstein distance for numeric
  features, Jensen-Shannon distance for categorical ones, computed by Evidently), the
  share of drifted features, and drift of the champion's predictions over the same two
  samples. Evidently's HTML report is kept in the lake and in MLflow for a person to open.
- **data quality** (:mod:`.measure`): the contract result and quarantined share of the
  window's snapshot.
- **serving health** (:mod:`.measure`): error rate and p99 latency per request, as the
  serving app measured them (its log).

A window has two verdicts: ``model_status`` (performance, drift, data quality: ``ok``,
``breach``, ``pending``) and ``serving_status`` (error rate, latency: ``ok``, ``breach``,
``unmeasured``). Latency depends on how busy the machine is, not on the model: a serving
breach alerts operations (:func:`operations_alert`) and never makes the model breach; the
retrain decision reads only the model's breaches.

Real-time traffic comes from the local serving app's log and, for SageMaker endpoints,
from their data capture in the lake (:mod:`.capture`, ``predictions/<uc>/capture/``), read
into the same rows; malformed capture lines are counted (``capture_malformed_lines``) and
skipped.

:func:`breaches` (:mod:`.thresholds`) holds the metrics to the spec's ``monitoring``
thresholds, a rule table. Only performance and drift breaches ask for retraining; a
data-quality or serving breach is alerted but a new model would not fix it.
:func:`retrain_decision` (:mod:`.decision`) applies the cooldown and de-duplication
(``monitoring/<uc>/retrain_state.json``); :mod:`.alert` says what breached and what
happens next. :mod:`.record` assembles the window's record and writes it.

Lake layout written here::

    monitoring/<uc>/history/window=YYYY-MM/metrics.json   one record per window
    monitoring/<uc>/history.parquet                        one row per window and metric
    monitoring/<uc>/reports/window=YYYY-MM/drift_report.html
    monitoring/<uc>/retrain_state.json                     retrains the monitor triggered
"""

from __future__ import annotations

from mlplatform.adapters.registry import model_url
from mlplatform.core.records import BreachRecord, MonitoringRecord
from mlplatform.stages.monitoring.alert import (
    alert_links,
    alert_text,
    breach_alert,
    endpoints,
    operations_alert,
    send_alert,
    send_operations_alert,
)
from mlplatform.stages.monitoring.capture import CaptureLog, read_capture, with_capture
from mlplatform.stages.monitoring.data_drift import (
    MIN_DRIFT_ROWS,
    SAMPLE_ROWS,
    TOP_CATEGORIES,
    DriftResult,
    drift,
    measure_drift,
    predict,
    reference_sample,
)
from mlplatform.stages.monitoring.decision import (
    read_state,
    record_trigger,
    retrain_decision,
    state_path,
)
from mlplatform.stages.monitoring.measure import (
    MAX_EVAL_ROWS,
    MIN_SLICE_ROWS,
    batch_outcomes,
    data_quality,
    measure_performance,
    outcome_scores,
    performance,
    serving_health,
    serving_outcomes,
)
from mlplatform.stages.monitoring.record import (
    NothingPending,
    evaluate_window,
    history_rows,
    log_to_mlflow,
    model_status,
    monitor,
    pending_windows,
    read_history,
    read_record,
    record_path,
    report_path,
    serving_status,
    summary,
    window_of_run,
    windows_for_run,
    write_history,
    write_report,
)
from mlplatform.stages.monitoring.reference import (
    Champion,
    champion,
    reference_metric,
    reference_months,
    version_metrics,
)
from mlplatform.stages.monitoring.sources import ACTUAL, answer_column, modelled_frame, serving_log
from mlplatform.stages.monitoring.thresholds import RETRAIN_KINDS, THRESHOLD_RULES, Breach, breaches

__all__ = [
    "ACTUAL",
    "MAX_EVAL_ROWS",
    "MIN_DRIFT_ROWS",
    "MIN_SLICE_ROWS",
    "RETRAIN_KINDS",
    "SAMPLE_ROWS",
    "THRESHOLD_RULES",
    "TOP_CATEGORIES",
    "Breach",
    "BreachRecord",
    "CaptureLog",
    "Champion",
    "DriftResult",
    "MonitoringRecord",
    "NothingPending",
    "alert_links",
    "alert_text",
    "answer_column",
    "batch_outcomes",
    "breach_alert",
    "breaches",
    "champion",
    "data_quality",
    "drift",
    "endpoints",
    "evaluate_window",
    "history_rows",
    "log_to_mlflow",
    "measure_drift",
    "measure_performance",
    "model_status",
    "model_url",
    "modelled_frame",
    "monitor",
    "operations_alert",
    "outcome_scores",
    "pending_windows",
    "performance",
    "predict",
    "read_capture",
    "read_history",
    "read_record",
    "read_state",
    "record_path",
    "record_trigger",
    "reference_metric",
    "reference_months",
    "reference_sample",
    "report_path",
    "retrain_decision",
    "send_alert",
    "send_operations_alert",
    "serving_health",
    "serving_log",
    "serving_outcomes",
    "serving_status",
    "state_path",
    "summary",
    "version_metrics",
    "window_of_run",
    "windows_for_run",
    "with_capture",
    "write_history",
    "write_report",
]
