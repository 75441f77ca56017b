"""Alerts: the one way the platform tells people something needs them, in Slack.

Every stage builds an :class:`Alert` (a title, a severity, a few lines, fields and links)
and calls :func:`send`; every DAG alerts on failure through the notifier in
:mod:`mlplatform.airflow.notifiers`. A
message is Block Kit: a header, the text, a fields section and a line of links.

Delivery, decided when a message is sent (never at DAG parse time):

- with an Airflow connection id in ``MLPLATFORM_SLACK_CONN_ID``, through the Slack
  provider's ``SlackWebhookHook``;
- otherwise to the incoming-webhook URL ``MLPLATFORM_SLACK_WEBHOOK_URL``, which in the
  embedded default is the local sink (:mod:`mlplatform.dev.webhook_sink`).

Every alert is also logged, and sending never raises: an alert that cannot be delivered
is logged as an error and the work it reports on goes on (or fails) as it would have.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mlplatform.adapters import settings

log = logging.getLogger(__name__)

Severity = Literal["breach", "failure", "warning", "info", "ok"]
_ICON = {
    "breach": ":rotating_light:",
    "failure": ":x:",
    "warning": ":warning:",
    "info": ":information_source:",
    "ok": ":white_check_mark:",
}
# Slack's Block Kit limits.
_HEADER_CHARS, _TEXT_CHARS, _FIELD_CHARS, _MAX_FIELDS = 150, 3000, 2000, 10
TIMEOUT_S = 10


@dataclass(frozen=True)
class Alert:
    """One message: what happened, how bad, the facts, and where to look."""

    title: str
    severity: Severity
    lines: tuple[str, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)
    links: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """Plain fallback text (notifications and clients without Block Kit show this)."""
        return f"{_ICON.get(self.severity, ':bell:')} [{self.severity}] {self.title}"

    def blocks(self) -> list[dict[str, Any]]:
        """The Block Kit message."""
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": _cut(self.text, _HEADER_CHARS)}}
        ]
        if self.lines:
            body = "\n".join(self.lines)
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(body, _TEXT_CHARS)}})
        if self.fields:
            items = list(self.fields.items())[:_MAX_FIELDS]
            blocks.append(
                {
                    "type": "section",
                    "fields": [
                        {"type": "mrkdwn", "text": _cut(f"*{name}*\n{value}", _FIELD_CHARS)}
                        for name, value in items
                    ],
                }
            )
        if links := {name: url for name, url in self.links.items() if url}:
            line = " · ".join(f"<{url}|{name}>" for name, url in links.items())
            blocks.append(
                {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(line, _TEXT_CHARS)}]}
            )
        return blocks

    def payload(self) -> dict[str, Any]:
        """The JSON body an incoming webhook receives."""
        return {"text": self.text, "blocks": self.blocks()}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def send(alert: Alert) -> bool:
    """Log and deliver ``alert``; returns whether it was delivered. Never raises."""
    _log(alert)
    try:
        conn_id = settings.get("MLPLATFORM_SLACK_CONN_ID")
        if conn_id:
            from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

            SlackWebhookHook(slack_webhook_conn_id=conn_id, timeout=TIMEOUT_S).send(
                text=alert.text, blocks=alert.blocks()
            )
        else:
            _post_to_url(settings.get("MLPLATFORM_SLACK_WEBHOOK_URL"), alert)
    except Exception as exc:  # network, hook and settings errors come in many types
        log.error(
            "alert not delivered (%s): %s; check the Slack connection MLPLATFORM_SLACK_CONN_ID "
            "or MLPLATFORM_SLACK_WEBHOOK_URL",
            alert.title,
            exc,
        )
        return False
    return True


def _post_to_url(url: str, alert: Alert) -> None:
    if not url:
        raise RuntimeError("neither MLPLATFORM_SLACK_CONN_ID nor MLPLATFORM_SLACK_WEBHOOK_URL is set")
    # The client the provider's hook wraps, pointed at a URL instead of a connection.
    from slack_sdk.webhook import WebhookClient

    response = WebhookClient(url=url, timeout=TIMEOUT_S).send_dict(alert.payload())
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}: {str(response.body)[:200]}")


def _log(alert: Alert) -> None:
    level = logging.ERROR if alert.severity in ("breach", "failure") else logging.INFO
    facts = "; ".join(f"{k}={v}" for k, v in alert.fields.items())
    links = "; ".join(f"{k}: {v}" for k, v in alert.links.items() if v)
    log.log(level, "ALERT %s\n%s\n%s\n%s", alert.text, "\n".join(alert.lines), facts, links)


class AlertedFailure(Exception):
    """Mixin for task errors whose task already sent a detailed alert.

    The DAGs' failure notifier stays silent for them, so one problem
    makes one message.
    """

    alerted = True


def failure_alert(use_case: str, stage: str, context: Mapping[str, Any]) -> Alert:
    """The alert for a failed task, from its Airflow context.

    Airflow calls the failure callback once a task has failed for good (its retries are
    exhausted, or it failed without retrying), so every such alert needs someone. A sensor
    that timed out is reported as late data, not as a crash.
    """
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or f"{use_case}_{stage}"
    task_id = getattr(ti, "task_id", "?")
    error = context.get("exception")
    late = type(error).__name__ == "AirflowSensorTimeout"
    tries = getattr(ti, "try_number", "?")
    if isinstance(max_tries := getattr(ti, "max_tries", None), int) and max_tries > 0:
        tries = f"{tries} of {max_tries + 1} (retries exhausted)"
    return Alert(
        title=f"{dag_id}: task {task_id} " + ("waited past its deadline" if late else "failed"),
        severity="failure",
        lines=(
            f"`{type(error).__name__}`: {error}" if error else "The task failed (no exception recorded).",
        ),
        fields={
            "Use case": use_case,
            "Stage": stage,
            "Run": context.get("run_id") or getattr(ti, "run_id", "?"),
            "Try": tries,
        },
        links={"Task log": getattr(ti, "log_url", None)},
    )
