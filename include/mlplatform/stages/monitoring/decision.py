"""What a window's figures mean and what happens next: breaches, verdicts, retrain, alerts.

- **Breaches** (:func:`breaches`): the spec's monitoring thresholds as a rule table. Each
  rule in :data:`THRESHOLD_RULES` names the metric it reads, the spec field that gives its
  limit, the comparison that breaches it and the kind of breach. Only ``performance`` and
  ``drift`` breaches ask for retraining (:data:`mlplatform.core.records.RETRAIN_KINDS`): a
  data-quality or serving breach is alerted, but a new model would not fix it. Serving
  breaches (error rate, p99 latency) are the endpoint's, not the model's: they set the
  window's serving status and alert operations, and never make the model status breach.
- **Verdicts** (:func:`model_status`, :func:`serving_status`): the window's two statuses.
- **The retrain** (:func:`retrain_decision`): the rule of :mod:`mlplatform.core.retrain`
  applied with the retrains the monitor triggered, kept in
  ``monitoring/<uc>/retrain_state.json``; the cooldown
  (``monitoring.retrain_cooldown_hours``) is measured from the last of them.
- **Alerts**: :func:`breach_alert` when the model breached (performance, drift, data
  quality): what breached, value against threshold, and whether a retrain was triggered;
  :func:`operations_alert` when the endpoint breached (error rate, p99 latency as the
  serving app measured them): its own title, the endpoint and its figures, no retrain,
  since a new model would not make a busy or failing server faster. Both are sent through
  the platform's one alerting module, :mod:`mlplatform.adapters.alerts`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from mlplatform.adapters.lake import Lake
from mlplatform.core import retrain
from mlplatform.core.records import SERVING_METRICS, Breach, MonitoringRecord, Record
from mlplatform.core.retrain import LastTrigger, RetrainDecision
from mlplatform.core.spec import UseCase

BreachKind = Literal["performance", "drift", "quality", "serving"]


COMPARISONS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, "<": operator.lt}
"""How a rule's value crosses its limit."""


@dataclass(frozen=True)
class ThresholdRule:
    """One threshold: ``reads`` breaches when ``reads <breached_when> limit``.

    In ``name``, ``reads``, ``reports`` and ``relative_to``, ``{metric}`` stands for the
    spec's ``monitoring.performance_metric``. ``limit`` is a spec field (``section.field``)
    or a fixed number. The breach carries the value of ``reports`` (default: ``reads``)
    and, for a limit relative to a reference, ``relative_to`` × (1 + limit) as its
    threshold. ``message`` is formatted with ``name``, ``value``, ``limit``, ``reported``,
    ``reference`` and the spec's ``monitoring`` section.
    """

    name: str
    reads: str
    limit: str | float
    breached_when: Literal[">", "<"]
    kind: BreachKind
    message: str
    reports: str | None = None
    relative_to: str | None = None


THRESHOLD_RULES: tuple[ThresholdRule, ...] = (
    ThresholdRule(
        "{metric}",
        "{metric}_degradation",
        "monitoring.max_relative_degradation",
        ">",
        "performance",
        "{name} {reported:.4g} is {value:.1%} worse than the champion's {reference:.4g} at training "
        "(limit {limit:.0%})",
        reports="{metric}",
        relative_to="{metric}_reference",
    ),
    ThresholdRule(
        "drift_share",
        "drift_share",
        "monitoring.drifted_share_threshold",
        ">",
        "drift",
        "{value:.0%} of features drifted (limit {limit:.0%}; a feature drifts above a distance of "
        "{monitoring.drift_threshold})",
    ),
    ThresholdRule(
        "prediction_drift",
        "prediction_drift",
        "monitoring.prediction_drift_threshold",
        ">",
        "drift",
        "prediction drift {value:.3f} (limit {limit})",
    ),
    ThresholdRule(  # success reads as 1.0, failure as 0.0
        "contract", "contract_success", 1.0, "<", "quality", "the window's snapshot failed its data contract"
    ),
    ThresholdRule(
        "quarantined_share",
        "quarantined_share",
        "contract.max_bad_row_share",
        ">",
        "quality",
        "{value:.1%} of the window's rows were quarantined (limit {limit:.0%})",
    ),
    ThresholdRule(
        "error_rate",
        "error_rate",
        "monitoring.max_error_rate",
        ">",
        "serving",
        "serving error rate {value:.2%} (limit {limit:.2%})",
    ),
    ThresholdRule(
        "p99_latency_ms",
        "p99_latency_ms",
        "monitoring.max_p99_latency_ms",
        ">",
        "serving",
        "serving p99 latency {value:.0f} ms (limit {limit:.0f} ms)",
    ),
)
"""Every threshold a window is held to, in the order its breaches are reported."""


def spec_limit(use_case: UseCase, limit: str | float) -> Any:
    """The value of a rule's ``limit``: a spec field such as ``monitoring.max_error_rate``, or the number."""
    if not isinstance(limit, str):
        return limit
    section, name = limit.split(".")
    return getattr(getattr(use_case, section), name)


def breaches(use_case: UseCase, metrics: Mapping[str, float | None]) -> list[Breach]:
    """The rules of :data:`THRESHOLD_RULES` the metrics cross; a metric not measured breaches nothing."""
    named = {"metric": use_case.monitoring.performance_metric}
    found = []
    for rule in THRESHOLD_RULES:
        value, limit = metrics.get(rule.reads.format(**named)), spec_limit(use_case, rule.limit)
        if value is None or not COMPARISONS[rule.breached_when](float(value), limit):
            continue
        name = rule.name.format(**named)
        shown = metrics.get(rule.reports.format(**named)) if rule.reports else value
        if shown is None:  # the figure a breach reports was not measured: nothing to report
            continue
        reported = float(shown)
        reference = metrics[rule.relative_to.format(**named)] if rule.relative_to else None
        threshold = reference * (1 + limit) if reference is not None else limit
        message = rule.message.format(
            name=name,
            value=value,
            limit=limit,
            reported=reported,
            reference=reference,
            monitoring=use_case.monitoring,
        )
        found.append(Breach(name, reported, threshold, rule.kind, message))
    return found


# -- the verdicts ------------------------------------------------------------------------------
def model_status(found: list[Breach], pending: list[str], metric: str) -> str:
    """The model's verdict: ``breach`` on a performance, drift or data-quality breach, else
    ``pending`` while the performance metric waits for ground truth, else ``ok``. Serving
    breaches do not count: how fast the endpoint answered says nothing about the model."""
    if any(not b.serving for b in found):
        return "breach"
    return "pending" if metric in pending else "ok"


def serving_status(found: list[Breach], metrics: Mapping[str, object]) -> str:
    """The endpoint's verdict from its error rate and p99 latency: ``breach``, ``ok``, or
    ``unmeasured`` when the window had no real-time traffic."""
    if any(b.serving for b in found):
        return "breach"
    return "ok" if any(name in metrics for name in SERVING_METRICS) else "unmeasured"


# -- the retrain -------------------------------------------------------------------------------
KEPT_TRIGGERS = 50
"""Triggered retrains remembered in the state's ``history``."""


@dataclass(frozen=True)
class WindowSummary(Record):
    """A monitored window's verdicts as the monitor DAG's `evaluate` hands them on (XCom): the
    alert, retrain and approval tasks and the retrain trigger's templates read it. ``status`` is
    the model status, kept for readers of the single status; ``backfill``: the run recomputes
    history, so it alerts, retrains and asks nothing."""

    window: str
    status: str
    model_status: str
    serving_status: str
    breaches: tuple[str, ...]
    serving_breaches: tuple[str, ...]
    record_uri: str | None
    report_url: str | None
    mlflow_run_url: str | None
    backfill: bool

    @classmethod
    def of(cls, record: MonitoringRecord, backfill: bool) -> WindowSummary:
        """The summary of the window's record: its model and serving breaches named apart."""
        return cls(
            window=record.window,
            status=record.model_status,
            model_status=record.model_status,
            serving_status=record.serving_status,
            breaches=tuple(b.metric for b in record.model_breaches),
            serving_breaches=tuple(b.metric for b in record.serving_breaches),
            record_uri=record.record_uri,
            report_url=record.report_url,
            mlflow_run_url=record.mlflow_run_url,
            backfill=backfill,
        )


def state_path(use_case: str) -> str:
    return f"monitoring/{use_case}/retrain_state.json"


@dataclass(frozen=True)
class Trigger(Record):
    """One retrain the monitor triggered: when, for which window and why, and the two runs."""

    triggered_at: str  # ISO 8601, UTC
    window: str
    reason: str
    train_run_id: str | None
    monitor_run_id: str | None


@dataclass(frozen=True)
class RetrainState(Record):
    """``retrain_state.json``: the last retrain the monitor triggered, and the ones before it
    (the last :data:`KEPT_TRIGGERS`, ``history``, oldest first)."""

    last_triggered_at: str
    window: str
    reason: str
    train_run_id: str | None
    monitor_run_id: str | None
    history: tuple[Trigger, ...] = ()

    @property
    def last(self) -> LastTrigger:
        return LastTrigger(datetime.fromisoformat(self.last_triggered_at), self.window)


def retrain_decision(
    lake: Lake, use_case: UseCase, record: MonitoringRecord, active_train_runs: int, now: datetime
) -> RetrainDecision:
    """Whether this window's breaches start a retrain now (:func:`mlplatform.core.retrain.on_breaches`)."""
    state = read_state(lake, use_case.name)
    last = None if state is None else state.last
    return retrain.on_breaches(use_case, record, active_train_runs, last, now)


def read_state(lake: Lake, use_case: str) -> RetrainState | None:
    """The retrains the monitor triggered; ``None`` before the first (or when the state was emptied)."""
    stored = lake.read_json(state_path(use_case)) if lake.exists(state_path(use_case)) else {}
    return RetrainState.from_dict(stored) if stored else None


def record_trigger(
    lake: Lake,
    use_case: str,
    window: str,
    reason: str,
    train_run_id: str | None,
    monitor_run_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Note a triggered retrain in ``retrain_state.json`` (the last :data:`KEPT_TRIGGERS` are kept);
    returns the state's JSON form."""
    before = read_state(lake, use_case)
    entry = Trigger(now.isoformat(), window, reason, train_run_id, monitor_run_id)
    history = (*(before.history if before else ()), entry)[-KEPT_TRIGGERS:]
    state = RetrainState(entry.triggered_at, window, reason, train_run_id, monitor_run_id, history)
    lake.write_json(state_path(use_case), state.to_dict())
    return state.to_dict()


# -- the alerts --------------------------------------------------------------------------------
def alert_text(
    use_case: UseCase, record: MonitoringRecord, decision: RetrainDecision
) -> tuple[str, list[str]]:
    """The alert's title and lines: what breached, value against threshold, what happens next."""
    title = f"{use_case.name} monitoring breach in {record.window}"
    lines = [f"*{b.metric}*: {b.message}" for b in record.model_breaches]
    train = f"{use_case.name}_train"
    if decision.retrain:
        lines.append(f"Retraining: triggered `{train}` ({decision.reason})")
    else:
        lines.append(f"Retraining: not triggered ({decision.why_not})")
    return title, lines


def alert_links(record: MonitoringRecord) -> dict[str, str]:
    links = {
        "Drift report": record.report_url,
        "Airflow run": record.airflow_run_url,
        "MLflow monitoring run": record.mlflow_run_url,
        "Champion model": (record.model or {}).get("url"),
    }
    return {k: v for k, v in links.items() if v}


def breach_alert(use_case: UseCase, record: MonitoringRecord, decision: RetrainDecision) -> Any:
    """The Slack alert of a breached window: what breached, value against threshold, what happens next."""
    from mlplatform.adapters.alerts import Alert

    title, lines = alert_text(use_case, record, decision)
    metric = use_case.monitoring.performance_metric
    facts = {"Window": record.window, "Model status": record.model_status}
    if metric in record.metrics:
        facts[metric] = f"{record.metrics[metric]:.4g}"
    if "drift_share" in record.metrics:
        facts["Drifted features"] = f"{record.metrics['drift_share']:.0%}"
    if record.model_version is not None:
        facts["Champion"] = f"version {record.model_version}"
    return Alert(title=title, severity="breach", lines=tuple(lines), fields=facts, links=alert_links(record))


def send_alert(use_case: UseCase, record: MonitoringRecord, decision: RetrainDecision) -> bool:
    """Post the breach alert to Slack through the platform's one alerting module.

    Never raises (an alert that cannot be delivered is logged): the retrain it announces
    still happens. Returns whether it was delivered.
    """
    from mlplatform.adapters import alerts

    return alerts.send(breach_alert(use_case, record, decision))


def endpoints(use_case: UseCase, record: MonitoringRecord) -> list[str]:
    """Where the window's real-time traffic was served: the serving app, SageMaker's endpoint."""
    from mlplatform.adapters import sagemaker, settings

    found = [f"{settings.get('MLPLATFORM_SERVING_URL').rstrip('/')}/predict"]
    if record.metrics.get("capture_lines"):
        found.append(f"SageMaker endpoint {sagemaker.endpoint_name(use_case)}")
    return found


def operations_alert(use_case: UseCase, record: MonitoringRecord) -> Any:
    """The operations alert of a window whose endpoint breached: error rate or p99 latency.

    Its own title (not a monitoring breach: the model is not at fault), the endpoint, the
    figures against their limits, and no retrain.
    """
    from mlplatform.adapters.alerts import Alert

    served = endpoints(use_case, record)
    title = f"{use_case.name} serving endpoint out of bounds in {record.window}"
    lines = [f"*{b.metric}*: {b.message}" for b in record.serving_breaches]
    lines.append(f"Endpoint: {', '.join(served)}")
    lines.append(
        "No retrain: latency and errors are the endpoint's (load, capacity, a failing "
        f"dependency), not the model's. The model's status is {record.model_status}."
    )
    facts = {"Window": record.window, "Endpoint": ", ".join(served)}
    for name, unit in (("p99_latency_ms", " ms"), ("error_rate", ""), ("requests", "")):
        if name in record.metrics:
            value = record.metrics[name]
            facts[name] = f"{value:.2%}" if name == "error_rate" else f"{value:.0f}{unit}"
    links = {"Airflow run": record.airflow_run_url, "MLflow monitoring run": record.mlflow_run_url}
    return Alert(title=title, severity="warning", lines=tuple(lines), fields=facts, links=links)


def send_operations_alert(use_case: UseCase, record: MonitoringRecord) -> bool:
    """Post the operations alert (never raises; it is queued in the outbox until delivered)."""
    from mlplatform.adapters import alerts

    return alerts.send(operations_alert(use_case, record))
