"""The alert of a breached window: what breached, value against threshold, what happens next.

Sent through the platform's one alerting module, :mod:`mlplatform.adapters.alerts`.
"""

from __future__ import annotations

from typing import Any

from mlplatform.core.records import MonitoringRecord
from mlplatform.core.spec import UseCase
from mlplatform.stages.monitoring.decision import Decision


def alert_text(use_case: UseCase, record: MonitoringRecord, decision: Decision) -> tuple[str, list[str]]:
    """The alert's title and lines: what breached, value against threshold, what happens next."""
    title = f"{use_case.name} monitoring breach in {record.window}"
    lines = [f"*{b.metric}*: {b.message}" for b in record.breach_details]
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


def breach_alert(use_case: UseCase, record: MonitoringRecord, decision: Decision) -> Any:
    """The Slack alert of a breached window: what breached, value against threshold, what happens next."""
    from mlplatform.adapters.alerts import Alert

    title, lines = alert_text(use_case, record, decision)
    metric = use_case.monitoring.performance_metric
    facts = {"Window": record.window, "Status": record.status}
    if metric in record.metrics:
        facts[metric] = f"{record.metrics[metric]:.4g}"
    if "drift_share" in record.metrics:
        facts["Drifted features"] = f"{record.metrics['drift_share']:.0%}"
    if record.model_version is not None:
        facts["Champion"] = f"version {record.model_version}"
    return Alert(title=title, severity="breach", lines=tuple(lines), fields=facts, links=alert_links(record))


def send_alert(use_case: UseCase, record: MonitoringRecord, decision: Decision) -> bool:
    """Post the breach alert to Slack through the platform's one alerting module.

    Never raises (an alert that cannot be delivered is logged): the retrain it announces
    still happens. Returns whether it was delivered.
    """
    from mlplatform.adapters import alerts

    return alerts.send(breach_alert(use_case, record, decision))
