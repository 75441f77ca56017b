"""Production monitoring: performance on delayed ground truth, drift, data quality, serving health.

For one use case and one window (a month) :func:`evaluate_window` gathers what production
did and compares it with what the champion promised at training time:

- **performance** (:mod:`.measures`): batch predictions (``predictions/<uc>/month=M/CURRENT.json``)
  joined on ``row_index`` to the target column of the snapshot they scored, and real-time
  predictions from the serving log (``predictions/<uc>/serving/month=M/``) joined on the
  trip key to the snapshot of the month the trip happened in. Outcomes arrive later than
  predictions: rows whose month has no validated snapshot yet have no ground truth, and a
  window without any is ``pending``, never a false alarm. Metrics per window, per slice
  (``promotion.slices``) and per variant (``batch``, ``champion``, ``challenger``).
- **drift** (:mod:`.drift`): each feature of the window against a sample of the
  champion's training months (:mod:`.sources`; normed Wasserstein distance for numeric
  features, Jensen-Shannon distance for categorical ones, computed by Evidently), the
  share of drifted features, and drift of the champion's predictions over the same two
  samples. Evidently's HTML report is kept in the lake and in MLflow for a person to open.
- **data quality** (:mod:`.measures`): the contract result and quarantined share of the
  window's snapshot.
- **serving health** (:mod:`.measures`): error rate and p99 latency per request, as the
  serving app measured them (its log).

A window has two verdicts: ``model_status`` (performance, drift, data quality: ``ok``,
``breach``, ``pending``) and ``serving_status`` (error rate, latency: ``ok``, ``breach``,
``unmeasured``). Latency depends on how busy the machine is, not on the model: a serving
breach alerts operations (:func:`operations_alert`) and never makes the model breach; the
retrain decision reads only the model's breaches.

Real-time traffic comes from the local serving app's log and, for SageMaker endpoints,
from their data capture in the lake (:mod:`.sources`, ``predictions/<uc>/capture/``), read
into the same rows; malformed capture lines are counted (``capture_malformed_lines``) and
skipped.

:func:`breaches` (:mod:`.decision`) holds the metrics to the spec's ``monitoring``
thresholds, a rule table. Only performance and drift breaches ask for retraining; a
data-quality or serving breach is alerted but a new model would not fix it.
:func:`retrain_decision` (:mod:`.decision`) applies :mod:`mlplatform.core.retrain` with the
cooldown and de-duplication (``monitoring/<uc>/retrain_state.json``), and the alerts say what
breached and what happens next. :mod:`.decision` also decides champion against challenger on live
labels; :mod:`.window` evaluates a window end to end and :mod:`.history` keeps its record.

Lake layout written here::

    monitoring/<uc>/history/window=YYYY-MM/metrics.json   one record per window
    monitoring/<uc>/history.parquet                        one row per window and metric
    monitoring/<uc>/reports/window=YYYY-MM/drift_report.html
    monitoring/<uc>/retrain_state.json                     retrains the monitor triggered
"""

from __future__ import annotations

from mlplatform.stages.monitoring.decision import (
    approval_asks,
    record_trigger,
    retrain_decision,
    send_alert,
    send_operations_alert,
)
from mlplatform.stages.monitoring.history import read_record, record_path, summary, write_history
from mlplatform.stages.monitoring.measures import serving_health, serving_outcomes
from mlplatform.stages.monitoring.sources import Champion, read_capture, serving_log
from mlplatform.stages.monitoring.window import (
    NothingPending,
    evaluate_window,
    monitor,
    window_of_run,
    windows_for_run,
)

__all__ = [
    "Champion",
    "NothingPending",
    "approval_asks",
    "evaluate_window",
    "monitor",
    "read_capture",
    "read_record",
    "record_path",
    "record_trigger",
    "retrain_decision",
    "send_alert",
    "send_operations_alert",
    "serving_health",
    "serving_log",
    "serving_outcomes",
    "summary",
    "window_of_run",
    "windows_for_run",
    "write_history",
]
