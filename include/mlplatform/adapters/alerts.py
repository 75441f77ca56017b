"""Alerts: the one way the platform tells people something needs them, in Slack.

Every stage builds an :class:`Alert` (a title, a severity, a few lines, fields and links)
and calls :func:`send`; every DAG alerts on failure through the notifier in
:mod:`mlplatform.airflow.dagkit`. A
message is Block Kit: a header, the text, a fields section and a line of links.

Delivery, decided when a message is sent (never at DAG parse time):

- with an Airflow connection id in ``MLPLATFORM_SLACK_CONN_ID``, through the Slack
  provider's ``SlackWebhookHook``;
- otherwise to the incoming-webhook URL ``MLPLATFORM_SLACK_WEBHOOK_URL``, which in the
  embedded default is the local sink (:mod:`mlplatform.dev.webhook_sink`).

Alerts are never lost: :func:`send` first writes the alert to the lake's outbox
(``alerts/outbox/<id>.json``, an atomic write; the id is a hash of what the alert says,
so the same problem queued twice is one entry), then delivers everything queued, oldest
first (:func:`flush`). A delivered alert moves to ``alerts/sent/``. When Slack cannot be
reached (connection refused, timeout, 5xx, 429) the alert stays queued, with its attempts
and last error, and the next send or ``mlplatform alerts flush`` delivers it, once. A
webhook answering 4xx is a configuration error, not retried: the alert moves to
``alerts/failed/`` with the reason and is logged at ERROR (the task log); the MLOps page
reads that folder. Without a lake (it cannot be written) an alert is delivered directly.

Many processes flush the same outbox at once (the monitor's parallel tasks, other DAGs'
tasks and failure callbacks, the command line), so a flusher delivers an entry only after
claiming it: it creates ``alerts/claims/<id>/<try>/<n>.json`` (who, when) with the lake's
atomic create-if-absent, which exactly one flusher wins; ``<try>`` names the entry's
queued time and attempts, so a claim covers one delivery attempt of one queued alert. The
winner reads the entry again, delivers it, records the outcome and removes the claim; a
flusher that finds an entry claimed stops there, leaving it and the rest, in order, to the
claimer, which goes on through the outbox until nothing unclaimed is left. A claim older
than :data:`CLAIM_GRACE_SECONDS` was left by a flusher that died: the next flusher takes
it over (a new claim numbered after it, created the same way) and delivers the alert. Each
queued alert is thus delivered once per attempt, and at least once even when a flusher
dies mid-delivery (a dead flusher's alert may have reached Slack before it died).

Every alert is also logged, and sending never raises: an alert that cannot be delivered
is logged as an error and the work it reports on goes on (or fails) as it would have.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import secrets
import socket
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self

from pydantic import BeforeValidator
from typing_extensions import TypedDict  # what pydantic validates before Python 3.12 (the webhook sink)

from mlplatform.adapters import settings
from mlplatform.core.records import Record

if TYPE_CHECKING:
    from mlplatform.adapters.lake import Lake

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


# -- the Block Kit shapes the platform sends ------------------------------------------------------


class PlainText(TypedDict):
    type: Literal["plain_text"]
    text: str


class Mrkdwn(TypedDict):
    type: Literal["mrkdwn"]
    text: str


class HeaderBlock(TypedDict):
    """The alert's title line."""

    type: Literal["header"]
    text: PlainText


class SectionBlock(TypedDict):
    """The alert's lines, as one paragraph."""

    type: Literal["section"]
    text: Mrkdwn


class FieldsBlock(TypedDict):
    """The alert's facts: a section of ``*name*\\nvalue`` fields."""

    type: Literal["section"]
    fields: list[Mrkdwn]


class ContextBlock(TypedDict):
    """The alert's links, in one small line."""

    type: Literal["context"]
    elements: list[Mrkdwn]


Block = HeaderBlock | SectionBlock | FieldsBlock | ContextBlock


class SlackMessage(TypedDict):
    """An incoming webhook's body: the fallback text and the blocks."""

    text: str
    blocks: list[Block]


@dataclass(frozen=True)
class Alert(Record):
    """One message: what happened, how bad, the facts, and where to look.

    Its JSON form (the outbox) keeps ``fields`` and ``links`` as ``[name, value]`` pairs, so
    it writes and reads itself instead of by the records' field-by-field form.
    """

    title: str
    severity: Severity
    lines: tuple[str, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)
    links: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """Plain fallback text (notifications and clients without Block Kit show this)."""
        return f"{_ICON.get(self.severity, ':bell:')} [{self.severity}] {self.title}"

    def blocks(self) -> list[Block]:
        """The Block Kit message."""
        blocks: list[Block] = [
            HeaderBlock(type="header", text=PlainText(type="plain_text", text=_cut(self.text, _HEADER_CHARS)))
        ]
        if self.lines:
            body = "\n".join(self.lines)
            blocks.append(
                SectionBlock(type="section", text=Mrkdwn(type="mrkdwn", text=_cut(body, _TEXT_CHARS)))
            )
        if self.fields:
            items = list(self.fields.items())[:_MAX_FIELDS]
            blocks.append(
                FieldsBlock(
                    type="section",
                    fields=[
                        Mrkdwn(type="mrkdwn", text=_cut(f"*{name}*\n{value}", _FIELD_CHARS))
                        for name, value in items
                    ],
                )
            )
        if links := {name: url for name, url in self.links.items() if url}:
            line = " · ".join(f"<{url}|{name}>" for name, url in links.items())
            blocks.append(
                ContextBlock(type="context", elements=[Mrkdwn(type="mrkdwn", text=_cut(line, _TEXT_CHARS))])
            )
        return blocks

    def payload(self) -> SlackMessage:
        """The JSON body an incoming webhook receives."""
        return SlackMessage(text=self.text, blocks=self.blocks())

    @property
    def id(self) -> str:
        """A stable id of what the alert says (title, severity, lines, fields; not its links):
        the same problem alerted twice while queued is one outbox entry."""
        said = {
            "title": self.title,
            "severity": self.severity,
            "lines": list(self.lines),
            "fields": {str(k): str(v) for k, v in self.fields.items()},
        }
        return hashlib.sha256(json.dumps(said, sort_keys=True).encode()).hexdigest()[:24]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the outbox); fields and links as ``[name, value]`` pairs, in order."""
        return {
            "title": self.title,
            "severity": self.severity,
            "lines": list(self.lines),
            "fields": [[str(k), str(v)] for k, v in self.fields.items()],
            "links": [[str(k), v] for k, v in self.links.items() if v],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            title=str(data["title"]),
            severity=data["severity"],
            lines=tuple(str(line) for line in data.get("lines") or ()),
            fields=dict(data.get("fields") or ()),
            links=dict(data.get("links") or ()),
        )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- delivery -----------------------------------------------------------------------------------
class Undeliverable(Exception):
    """Slack refused the alert for good (a 4xx, or no destination configured): a configuration
    error that retrying will not fix."""


class Unreachable(Exception):
    """Slack could not be reached or failed (connection refused, timeout, 5xx, 429): retry later."""


def deliver(alert: Alert) -> None:
    """Post ``alert`` to Slack once; raises :class:`Unreachable` or :class:`Undeliverable`."""
    conn_id = settings.get("MLPLATFORM_SLACK_CONN_ID")
    if conn_id:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        # The hook's own client: its answer is classified here, not raised as one error type.
        client = SlackWebhookHook(slack_webhook_conn_id=conn_id, timeout=TIMEOUT_S).client
        where = f"the Slack connection {conn_id}"
    else:
        url = settings.get("MLPLATFORM_SLACK_WEBHOOK_URL")
        if not url:
            raise Undeliverable(
                "neither MLPLATFORM_SLACK_CONN_ID nor MLPLATFORM_SLACK_WEBHOOK_URL is set: configure one"
            )
        # The client the provider's hook wraps, pointed at a URL instead of a connection.
        from slack_sdk.webhook import WebhookClient

        client, where = WebhookClient(url=url, timeout=TIMEOUT_S), url
    try:
        response = client.send_dict(dict(alert.payload()))
    except Exception as exc:  # refused, reset, timed out, DNS: urllib and socket errors of many types
        raise Unreachable(f"{where} unreachable: {type(exc).__name__}: {exc}") from exc
    status, body = int(response.status_code), str(response.body)[:200]
    if status == 200:
        return
    if status >= 500 or status in (408, 429):
        raise Unreachable(f"{where} answered {status}: {body}")
    raise Undeliverable(
        f"{where} answered {status}: {body}; the webhook URL or connection is wrong or revoked: "
        "fix MLPLATFORM_SLACK_CONN_ID or MLPLATFORM_SLACK_WEBHOOK_URL"
    )


def send(alert: Alert, lake: Lake | None = None) -> bool:
    """Log ``alert``, queue it in the lake's outbox and deliver what is queued; returns whether
    this alert was delivered now. Never raises: an alert not delivered stays queued (Slack
    unreachable) or is kept in ``alerts/failed/`` (Slack refused it), and is logged. ``False``
    also when another flusher holds the outbox: that one delivers the alert."""
    _log(alert)
    try:
        lake = lake or _lake()
        entry = enqueue(lake, alert)
    except Exception as exc:  # a lake that cannot be written must not cost the alert
        log.error("alert not queued in the lake's outbox (%s): %s; delivering it directly", alert.title, exc)
        return _deliver_now(alert)
    report = flush(lake)
    return entry.id in report.delivered


def _deliver_now(alert: Alert) -> bool:
    try:
        deliver(alert)
    except (Unreachable, Undeliverable) as exc:
        log.error("alert not delivered (%s): %s", alert.title, exc)
        return False
    return True


def _lake() -> Lake:
    from mlplatform.adapters.lake import Lake

    return Lake()


# -- the outbox -----------------------------------------------------------------------------------
@dataclass
class FlushReport:
    """What one flush did: ids delivered, still queued, and refused for good."""

    delivered: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        return asdict(self)


_flushing = threading.Lock()  # one flush at a time in a process (the serving app alerts from threads)

CLAIM_GRACE_SECONDS = 300.0
"""How long a claim holds off other flushers. A delivery gives up after :data:`TIMEOUT_S`, so
a claim this old was left by a flusher that died, and the next flusher takes it over."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _alert_from_json(value: Any) -> Any:
    return Alert.from_dict(value) if isinstance(value, Mapping) else value


@dataclass(frozen=True)
class OutboxEntry(Record):
    """One alert in the lake's outbox folders (``alerts/<state>/<id>.json``) and what became of it.

    ``attempts`` counts the deliveries tried, ``repeated`` how often the same alert was
    queued again while it waited. A try Slack could not be reached for leaves ``last_error``
    and ``last_try_at``; a refused alert (``failed/``) its ``reason`` and ``failed_at``; a
    delivered one (``sent/``) ``delivered_at``.
    """

    omitted_when_none: ClassVar[tuple[str, ...]] = (
        "repeated",
        "last_error",
        "last_try_at",
        "reason",
        "failed_at",
        "delivered_at",
    )

    id: str
    alert: Annotated[Alert, BeforeValidator(_alert_from_json)]
    queued_at: str
    attempts: int = 0
    repeated: int | None = None
    last_error: str | None = None
    last_try_at: str | None = None
    reason: str | None = None
    failed_at: str | None = None
    delivered_at: str | None = None


def enqueue(lake: Lake, alert: Alert) -> OutboxEntry:
    """Write ``alert`` to ``alerts/outbox/<id>.json`` (atomic); an entry already queued for the
    same alert keeps its place in the queue and its attempts. Returns the entry."""
    path = lake.alert_path("outbox", alert.id)
    if lake.exists(path):
        entry = OutboxEntry.from_dict(lake.read_json(path))
        entry = replace(entry, alert=alert, repeated=(entry.repeated or 0) + 1)
    else:
        entry = OutboxEntry(alert.id, alert, _now())
    lake.write_json(path, entry.to_dict())
    return entry


def queued(lake: Lake, state: str = "outbox") -> list[OutboxEntry]:
    """The entries in ``alerts/<state>/`` (``outbox``, ``sent`` or ``failed``), oldest first."""
    from mlplatform.adapters.lake import ALERT_FOLDERS

    entries = []
    for found in lake.list(ALERT_FOLDERS[state]):
        if not found.path.endswith(".json"):
            continue
        try:
            entries.append(OutboxEntry.from_dict(lake.read_json(found.path)))
        except (FileNotFoundError, ValueError):  # moved by a concurrent flush, or damaged
            continue
    return sorted(entries, key=lambda e: (e.queued_at, e.id))


def flush(lake: Lake | None = None, claim_grace_seconds: float = CLAIM_GRACE_SECONDS) -> FlushReport:
    """Deliver every queued alert no other flusher holds, oldest first; never raises.

    Each entry is claimed first (see the module's docstring); delivered alerts move to
    ``alerts/sent/``, refused ones (4xx, no destination) to ``alerts/failed/`` with the
    reason, logged at ERROR. At the first alert Slack cannot be reached for, or that another
    live flusher has claimed, the flush stops: it and the rest stay queued, in order, for
    the next flush or that flusher. Alerts queued while it ran are delivered before it ends.
    """
    report = FlushReport()
    owner = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        lake = lake or _lake()
        with _flushing:
            tried: set[tuple[str, str]] = set()
            while pending := [e for e in queued(lake) if (e.id, _try(e)) not in tried]:
                for index, entry in enumerate(pending):
                    tried.add((entry.id, _try(entry)))
                    outcome = _deliver_claimed(lake, entry, owner, claim_grace_seconds)
                    if outcome == "moved":  # another flusher dealt with this try of it
                        continue
                    if outcome in ("queued", "busy"):
                        report.queued.extend(e.id for e in pending[index:])
                        return report
                    getattr(report, outcome).append(entry.id)
    except Exception as exc:  # the lake itself failing: nothing is lost, the outbox stays as it was
        log.error("alerts outbox not flushed: %s", exc)
    return report


@dataclass(frozen=True)
class Claim(Record):
    """Who is delivering one try of a queued alert, and since when (``alerts/claims/``)."""

    owner: str
    claimed_at: str

    def stale(self, grace_seconds: float) -> bool:
        """Whether its flusher has had longer than ``grace_seconds``: it died."""
        age = datetime.now(UTC) - datetime.fromisoformat(self.claimed_at)
        return age >= timedelta(seconds=grace_seconds)


def _try(entry: OutboxEntry) -> str:
    """One delivery attempt of one queued alert: its attempts so far and when it was queued
    (an alert queued again after it left the outbox is a new entry)."""
    queued_at = hashlib.sha256(entry.queued_at.encode()).hexdigest()[:8]
    return f"{entry.attempts}-{queued_at}"


def _claim(
    lake: Lake, entry: OutboxEntry, owner: str, grace_seconds: float
) -> Literal["claimed", "busy", "moved"]:
    """Claim this try of ``entry`` for ``owner``: ``busy`` when a live flusher holds it,
    ``moved`` when its claimer finished it while we looked."""
    folder = lake.alert_claim_path(entry.id, _try(entry))
    numbers = [int(name) for e in lake.list(folder) if (name := posixpath.basename(e.path)[:-5]).isdigit()]
    number = 0
    if numbers:
        held = f"{folder}/{max(numbers):06d}.json"
        try:
            claim = Claim.from_dict(lake.read_json(held))
        except FileNotFoundError:
            return "moved"
        if not claim.stale(grace_seconds):
            return "busy"
        log.warning(
            "alert %s was claimed by %s at %s, who has not finished it: taking it over",
            entry.id,
            claim.owner,
            claim.claimed_at,
        )
        number = max(numbers) + 1
    mine = json.dumps(Claim(owner, _now()).to_dict()).encode()
    return "claimed" if lake.write_if_absent(f"{folder}/{number:06d}.json", mine) else "busy"


def _deliver_claimed(
    lake: Lake, listed: OutboxEntry, owner: str, grace_seconds: float
) -> Literal["delivered", "queued", "failed", "busy", "moved"]:
    """Claim ``listed``, deliver it as the outbox holds it now, and release the claim."""
    claimed = _claim(lake, listed, owner, grace_seconds)
    if claimed != "claimed":
        return claimed
    try:
        try:
            entry = OutboxEntry.from_dict(lake.read_json(lake.alert_path("outbox", listed.id)))
        except FileNotFoundError:  # delivered or refused by the flusher that listed it first
            return "moved"
        if _try(entry) != _try(listed):  # tried since we listed it: listed again, as a new try
            return "moved"
        return _deliver_entry(lake, entry)
    finally:
        lake.remove(lake.alert_claim_path(listed.id, _try(listed)), recursive=True)


def _deliver_entry(lake: Lake, entry: OutboxEntry) -> Literal["delivered", "queued", "failed"]:
    alert, alert_id = entry.alert, entry.id
    outbox = lake.alert_path("outbox", alert_id)
    attempts = entry.attempts + 1
    if _already_sent(lake, entry):  # delivered by a flush that stopped before tidying the outbox
        lake.remove(outbox)
        return "delivered"
    try:
        deliver(alert)
    except Unreachable as exc:
        log.warning(
            "alert not delivered yet (%s), kept in the outbox as %s after %d attempt(s): %s",
            alert.title,
            alert_id,
            attempts,
            exc,
        )
        waiting = replace(entry, attempts=attempts, last_error=str(exc), last_try_at=_now())
        lake.write_json(outbox, waiting.to_dict())
        return "queued"
    except Undeliverable as exc:
        log.error(
            "ALERT NOT DELIVERED, Slack refused it (%s): %s; kept in %s",
            alert.title,
            exc,
            lake.uri(lake.alert_path("failed", alert_id)),
        )
        failed = replace(entry, attempts=attempts, reason=str(exc), failed_at=_now())
        lake.write_json(lake.alert_path("failed", alert_id), failed.to_dict())
        lake.remove(outbox)
        return "failed"
    # Delivered: recorded as sent before it leaves the outbox, so a crash between the two
    # finds it in both and a later flush sees it sent (never a second message).
    sent = replace(entry, attempts=attempts, delivered_at=_now())
    lake.write_json(lake.alert_path("sent", alert_id), sent.to_dict())
    lake.remove(outbox)
    return "delivered"


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


def _already_sent(lake: Lake, entry: OutboxEntry) -> bool:
    """Whether this queued entry was delivered already (its ``sent`` record is newer than it)."""
    path = lake.alert_path("sent", entry.id)
    if not lake.exists(path):
        return False
    return (OutboxEntry.from_dict(lake.read_json(path)).delivered_at or "") >= entry.queued_at
