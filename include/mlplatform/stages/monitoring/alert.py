"""The alerts of a window: the model's breach, and the endpoint's trouble for operations.

- :func:`breach_alert`: the model breached (performance, drift, data quality): what
  breached, value against threshold, and whether a retrain was triggered.
- :func:`operations_alert`: the endpoint breached (error rate, p99 latency as the serving
  app measured them): its own title, the endpoint and its figures; no retrain, since a new
  model would not make a busy or failing server faster.

Sent through the platform's one alerting module, :mod:`mlplatform.adapters.alerts`.
"""

from __future__ import annotations

from typing import Any

from mlplatform.core.records import MonitoringRecord
from mlplatform.core.retrain import RetrainDecision
from mlplatform.core.spec import UseCase


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
    facts: dict[str, Any] = {"Window": record.window, "Endpoint": ", ".join(served)}
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
