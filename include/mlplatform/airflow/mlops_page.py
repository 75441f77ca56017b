"""The MLOps page: one screen per platform, the worst news first.

For each use case the page shows, top to bottom:

1. **Incidents**: contract breaches (and refused months), model breaches and serving
   breaches across months, each with its reasons and a link to its Airflow run or its report
   (:func:`mlplatform.airflow.use_case_status.incidents`, the rule below).
2. **Latest state of every stage**: the latest month of the contract (passed, quarantined
   with its share, breached with its reasons, refused), training, promotion (the version with
   its aliases), batch scoring, monitoring (the model's status: within thresholds, breached,
   pending labels, not monitored because its data was refused) and serving, separately; and
   the latest **live decision** on delayed labels (promote, keep with the trips so far and
   needed, retire, insufficient; or a rollback due), with its interval.
3. **Models** (``champion`` and ``challenger``: version, metrics, when and why promoted) and
   the approval queue with each request's gate table; under them every **live decision** so
   far, oldest window first (a challenger promoted or retired on live labels, a rollback),
   each with its interval and labelled trips.
4. **Charts** with axes, units and thresholds: the quarantine share of each contract rule
   per month (the trend a platform team watches to see TLC change something before it
   becomes a breach; a rule's jump is ringed), with each month's rule jumps and notices
   listed under it; the performance metric per variant (a window still waiting for its
   labels shows its estimated RMSE, dashed; a labelled one says on hover how far the
   estimate was), beside it the **alias timeline** (which version was ``champion`` and
   ``challenger`` when, each move with who made it and why on hover, rollbacks as red
   diamonds, read from the alias history), the drifted share of features and the
   quarantined share per month.

**Which breaches are listed.** A breached month of a stage (contract, model, serving) is
*open* until a later month of the same stage passes; an open breach is listed first. Once
a later month has passed, the breach is *closed by* that month and is no longer listed,
except that the latest breach of each stage is always listed (closed ones say which month
closed them), so the latest breach is never hidden, however many months passed since.
A month validated again after a breach takes its newest verdict.

Numbers are for people: shares as percentages (``6.3 %``), times as relative times with
the absolute time on hover (``<time datetime=... title=...>3 hours ago</time>``), versions
with their aliases (``v7 (champion)``), metrics with their unit (``5.37 min``).

Links resolve in every environment: objects in the lake (drift reports, Data Docs
published there) and the local Data Docs site are served by the plugin itself
(:func:`served_link`), so a ``file://`` or ``s3://`` location never reaches the browser;
Airflow runs link to the UI's dag run page (``../dags/<dag id>/runs/<run id>``, relative to
the page at ``/mlops/``; a record that stores no run id links to its DAG's runs). Everything
taken from records is escaped.

:func:`mlplatform.airflow.use_case_status.collect` gathers the facts (registry, lake) into typed
records; :func:`render` turns them into a self-contained HTML page. The Airflow plugin in
``plugins/`` only wires them to a URL and adds what only Airflow knows (pending approvals);
tests call them directly.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mlplatform.airflow import charts
from mlplatform.airflow.use_case_status import (
    ALIASES,
    BAD_CONTRACT_STATES,
    QUARANTINED,
    ContractMonth,
    Limits,
    ModelVersion,
    UseCaseStatus,
    WindowVerdict,
    airflow_run_link,
    incidents,
    live_history,
    live_verdicts,
    parse_time,
    tenures,
    version_label,
)
from mlplatform.core.metrics import LOWER_IS_BETTER
from mlplatform.core.records import (
    AliasEvent,
    MonitoringRecord,
)
from mlplatform.stages import contracts as contract_stage

TREND_FLOOR_PERCENT = 0.01  # the contract trend's log axis starts at one row in 10,000

# The model's status of a monitored window, in words.
MODEL_STATUS_WORDS = {
    "ok": "within thresholds",
    "breach": "breached",
    "pending": "pending labels",
    "refused": "not monitored: its data was refused",
}
SERVING_STATUS_WORDS = {"ok": "healthy", "breach": "breached", "unmeasured": "no real-time traffic"}


# -- formatting for people ----------------------------------------------------------------------
def percent(share: float | None) -> str:
    """A share as a percentage people read: ``0.0633`` → ``6.3 %``, ``0.00012`` → ``0.012 %``."""
    if share is None or not isinstance(share, int | float) or math.isnan(share):
        return "n/a"
    value = share * 100
    if value == 0:
        return "0 %"
    if abs(value) >= 1:
        return f"{value:.1f} %"
    return f"{value:.2g} %"


def with_unit(value: float | None, unit: str) -> str:
    """A metric with its unit: ``5.3712`` minutes → ``5.37 min``; a bare score has none."""
    if value is None or not isinstance(value, int | float) or math.isnan(value):
        return "n/a"
    short = {"minutes": "min", "seconds": "s", "": ""}.get(unit, unit)
    return f"{value:.3g} {short}".rstrip() if abs(value) < 100 else f"{value:,.0f} {short}".rstrip()


def relative_time(when: datetime, now: datetime) -> str:
    """``3 hours ago``, ``in 2 days``, ``just now``: the largest whole unit."""
    seconds = (now - when).total_seconds()
    ahead, seconds = seconds < 0, abs(seconds)
    if seconds < 60:
        return "just now"
    for size, unit in (
        (365 * 86400, "year"),
        (30 * 86400, "month"),
        (86400, "day"),
        (3600, "hour"),
        (60, "minute"),
    ):
        if seconds >= size:
            count = int(seconds // size)
            words = f"{count} {unit}{'s' if count != 1 else ''}"
            return f"in {words}" if ahead else f"{words} ago"
    return "just now"  # unreachable: 60 seconds is a minute


def time_html(value: Any, now: datetime) -> str:
    """A ``<time>`` element: the relative time, the absolute one on hover; text it cannot read as is."""
    when = parse_time(value)
    if when is None:
        return _esc(value) if value else ""
    absolute = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f'<time datetime="{_esc(when.isoformat())}" title="{_esc(absolute)}">'
        f"{_esc(relative_time(when, now))}</time>"
    )


def _moment(text: str, now: datetime) -> datetime:
    return parse_time(text) or now


def _move_words(e: AliasEvent) -> str:
    """``2024-05-01 12:00 UTC rollback: champion v4 → v3 by monitor (run x): why``."""
    at = parse_time(e.at)
    when = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else e.at
    moved = f"v{e.from_version}" if e.from_version else "none"
    to = f"v{e.version}" if e.version else "removed"
    run = f" (run {e.run_id})" if e.run_id else ""
    return f"{when} {e.action}: {e.alias} {moved} → {to} by {e.by}{run}" + (
        f": {e.reason}" if e.reason else ""
    )


def alias_timeline(events: Sequence[AliasEvent], now: datetime) -> charts.Timeline:
    """Which version was ``champion`` and ``challenger`` over time, from the applied alias moves."""
    lanes = ("champion", "challenger")
    spans = []
    for alias in lanes:
        for e, ended in tenures(events, alias):
            until = "now" if ended is None else _moment(ended, now).strftime("%Y-%m-%d %H:%M UTC")
            spans.append(
                charts.Tenure(
                    alias,
                    f"v{e.version}",
                    _moment(e.at, now),
                    None if ended is None else _moment(ended, now),
                    f"v{e.version} {alias} until {until}; set by {_move_words(e)}",
                )
            )
    moves = [
        charts.Move(e.alias, _moment(e.at, now), e.action, _move_words(e), emphasis=e.action == "rollback")
        for e in events
        if e.alias in lanes
    ]
    return charts.Timeline("model versions over time (alias history)", lanes, spans, moves, now, width=480)


# -- charts -------------------------------------------------------------------------------------
def _threshold(record: MonitoringRecord, limits: Limits) -> float | None:
    """The window's breach level of the performance metric: its reference, degraded by the limit."""
    reference = record.metrics.get(f"{limits.metric}_reference")
    if reference is None or limits.max_relative_degradation is None:
        return None
    sign = 1 if LOWER_IS_BETTER.get(limits.metric, True) else -1
    return float(reference) * (1 + sign * limits.max_relative_degradation)


def monitoring_charts(records: Sequence[MonitoringRecord], limits: Limits) -> list[charts.Chart]:
    """The performance metric per variant and the share of drifted features, per window."""
    labels = [r.window for r in records]
    metric = limits.metric
    variants = sorted({v for r in records for v in (r.details.get("variants") or {})})
    performance: dict[str, list[float | None]] = {"overall": [r.metrics.get(metric) for r in records]}
    for variant in variants:
        performance[variant] = [
            ((r.details.get("variants") or {}).get(variant) or {}).get(metric) for r in records
        ]
    # Windows still waiting for their labels: the RMSE estimated before them, dashed.
    estimated_key = f"estimated_{metric}"
    performance[ESTIMATED] = [
        r.metrics.get(estimated_key) if metric not in r.metrics else None for r in records
    ]
    titles = {
        "overall": [_measured_title(r, limits) for r in records],
        ESTIMATED: [_estimated_title(r, limits) for r in records],
    }
    drift = [r.metrics.get("drift_share") for r in records]
    return [
        charts.Chart(
            f"{metric} per variant",
            f"{metric} ({limits.unit})" if limits.unit else metric,
            labels,
            {k: v for k, v in performance.items() if any(x is not None for x in v)},
            [_threshold(r, limits) for r in records],
            "breach level",
            dashed=(ESTIMATED,),
            titles=titles,
        ),
        charts.Chart(
            "drifted features",
            "share of features",
            labels,
            {"drift share": drift},
            [limits.drifted_share] * len(records),
            "threshold",
        ),
    ]


ESTIMATED = "estimated"
"""The performance chart's series of RMSEs estimated before the labels."""


def _measured_title(r: MonitoringRecord, limits: Limits) -> str | None:
    """``2024-05: rmse 5.4 min measured; estimated 5.1 min before its labels (-5.6 %)``."""
    metric = limits.metric
    if metric not in r.metrics:
        return None
    text = f"{r.window}: {metric} {with_unit(r.metrics[metric], limits.unit)} measured"
    made = r.metrics.get(f"estimated_{metric}")
    if made is not None:
        error = r.metrics.get("estimate_error")
        off = f" (off by {error * 100:+.1f} %)" if error is not None else ""
        text += f"; estimated {with_unit(made, limits.unit)} before its labels{off}"
    return text


def _estimated_title(r: MonitoringRecord, limits: Limits) -> str | None:
    """``2024-06: rmse estimated 5.2 min, labels pending (fitted on 2024-04)``, and its warning."""
    metric = limits.metric
    made = r.metrics.get(f"estimated_{metric}")
    if made is None or metric in r.metrics:
        return None
    shown = r.details.get("estimate")
    shown = shown if isinstance(shown, Mapping) else {}
    fitted = f" (fitted on {shown['reference_window']})" if shown.get("reference_window") else ""
    warning = f"; {shown['warning']}" if shown.get("warning") else ""
    return f"{r.window}: {metric} estimated {with_unit(made, limits.unit)}, labels pending{fitted}{warning}"


def quarantine_chart(quarantine: Sequence[tuple[str, float]], limits: Limits) -> charts.Chart:
    """The share of rows quarantined per validated month, against the contract's limit."""
    return charts.Chart(
        "quarantined rows",
        "share of rows",
        [month for month, _ in quarantine],
        {"quarantined": [share for _, share in quarantine]},
        [limits.max_bad_row_share] * len(quarantine),
        "breach level",
    )


def rule_trend(trend: Sequence[contract_stage.RuleTrend]) -> tuple[list[str], dict[str, list[float | None]]]:
    """The months, and the quarantine share of each rule per month (``None``: a month with no
    rows read, as an unreadable file), for every rule that quarantined a row in any month, the
    largest share first. Fare readings (rows accepted, not quarantined) are left out."""
    months = sorted({r.month for r in trend})
    rules = [r for r in trend if not r.rule.startswith(contract_stage.trend.READING_PREFIX)]
    peak: dict[str, float] = {}
    for r in rules:
        if r.count:
            peak[r.rule] = max(peak.get(r.rule, 0.0), r.share)
    share = {(r.month, r.rule): (r.share if r.rows else None) for r in rules}
    ordered = sorted(peak, key=lambda rule: (-peak[rule], rule))
    return months, {rule: [share.get((m, rule)) for m in months] for rule in ordered}


def contract_trend_chart(trend: Sequence[contract_stage.RuleTrend], limits: Limits) -> charts.Chart:
    """One line per contract rule: its quarantine share (in % of the month's rows) over months.

    The records are the contract stage's own (:func:`mlplatform.stages.contracts.lake_trend`).
    The y axis is logarithmic from 0.01 % (one row in 10,000; a month without a rule's rows
    sits on the axis), so a rule at 0.1 % that jumps to 0.4 % shows beside one at 3 %. The
    dashed red line is the one threshold the contract sets on quarantine, the month's breach
    level (``contract.max_bad_row_share``, over all rules together: no rule alone may reach
    it; the rules have no limit of their own). A month where a rule's share jumped above its
    usual range (the jump warning of ``contract.trend_jump_factor``) is ringed in red.
    """
    months, shares = rule_trend(trend)
    jumped = {(r.month, r.rule) for r in trend if r.jump}
    level = None if limits.max_bad_row_share is None else limits.max_bad_row_share * 100
    return charts.Chart(
        "quarantine share per contract rule",
        "% of rows",
        months,
        {rule: [None if v is None else v * 100 for v in values] for rule, values in shares.items()},
        [level] * len(months),
        "breach level (all rules)",
        width=640,
        series_class="rule",
        log_floor=TREND_FLOOR_PERCENT,
        marks={rule: [(m, rule) in jumped for m in months] for rule in shares},
    )


# -- the page -----------------------------------------------------------------------------------
def served_link(url: str | None, lake_root: str, docs_root: Path | None = None) -> str | None:
    """A link the browser can open in every environment.

    Objects in the lake become ``lake/<path>`` and pages of the local Data Docs site
    ``datadocs/<path>``, both served by the MLOps plugin next to this page; web URLs and
    relative links stay.
    """
    if not url:
        return None
    root = lake_root.rstrip("/") + "/"
    if lake_root and url.startswith(root):
        return "lake/" + url[len(root) :]
    if docs_root is not None and url.startswith("file://"):
        local = Path(url.removeprefix("file://"))
        if local.is_relative_to(docs_root):
            return "datadocs/" + local.relative_to(docs_root).as_posix()
    if url.startswith(("http://", "https://")) or "://" not in url:
        return url
    return None  # a location a browser cannot open (s3:// outside the lake, file:// elsewhere)


SERVED_LAKE_PREFIXES = ("monitoring/", "data_docs/")
"""Lake folders the plugin serves: reports and Data Docs, never data."""


def alerts_link(channel_url: str | None, webhook_url: str | None) -> str | None:
    """Where people read the alerts: the configured channel (``MLPLATFORM_ALERTS_URL``), else
    the local webhook sink's message list when alerts go to it, else nothing."""
    if channel_url:
        return channel_url
    if webhook_url and re.match(r"^https?://(127\.0\.0\.1|localhost)(:\d+)?/", webhook_url):
        return webhook_url.rsplit("/hooks", 1)[0] + "/messages"
    return None


_BOLD = re.compile(r"\*\*(.+?)\*\*")


def markdown_html(text: str) -> str:
    """The little markdown an approval's body holds (paragraphs, bold, one table) as HTML."""
    out: list[str] = []
    rows: list[list[str]] = []

    def cell(value: str) -> str:
        return _BOLD.sub(r"<strong>\1</strong>", _esc(value.strip()))

    def flush() -> None:
        if rows:
            head, *body = rows
            out.append(
                '<table class="gates"><tr>'
                + "".join(f"<th>{cell(c)}</th>" for c in head)
                + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in body)
                + "</table>"
            )
            rows.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            cells = line.strip().strip("|").split("|")
            if not all(set(c.strip()) <= {"-", ":"} for c in cells):
                rows.append(cells)
            continue
        flush()
        if line.strip():
            out.append(f"<p>{cell(line)}</p>")
    flush()
    return "".join(out)


def _esc(value: Any) -> str:
    return html.escape(str(value))


Link = Callable[[str | None], str | None]


def _a(label: str, url: str | None, link: Link) -> str:
    """An escaped link, or nothing when the location cannot be opened from a browser."""
    target = link(url)
    if not target:
        return ""
    frame = "_top" if target.startswith("../") else "_blank"
    return f'<a href="{_esc(target)}" target="{frame}">{_esc(label)}</a>'


def _incidents_block(s: UseCaseStatus, link: Link, now: datetime) -> str:
    found = incidents(s)
    if not found:
        return '<div class="incidents none"><p class="ok">No breach or open incident.</p></div>'
    items = []
    for i in found:
        state = "open" if i.open else f"closed: {i.closed_by} passed"
        links = " · ".join(filter(None, (_a(label, url, link) for label, url in i.links)))
        reasons = "".join(f"<li>{_esc(r)}</li>" for r in i.reasons)
        items.append(
            f'<li class="incident {"open" if i.open else "closed"}" data-stage="{_esc(i.stage)}" '
            f'data-month="{_esc(i.month)}"><strong>{_esc(i.month)}: {_esc(i.what)}</strong> '
            f'<span class="state">({_esc(state)})</span> {time_html(i.at, now)} {links}'
            f'<ul class="reasons">{reasons}</ul></li>'
        )
    return f'<div class="incidents"><h3>Breaches and open incidents</h3><ul>{"".join(items)}</ul></div>'


def _contract_state(c: ContractMonth) -> str:
    if c.state == QUARANTINED:
        return f"passed; quarantined {percent(c.bad_row_share)} of rows"
    if c.state in BAD_CONTRACT_STATES:
        return f"{c.state}: {'; '.join(c.reasons) or 'no reason recorded'}"
    return c.state


def _latest_rows(s: UseCaseStatus, link: Link, now: datetime) -> list[tuple[str, str, str, str]]:
    """(stage, month, state class, state HTML) of each stage's latest month."""
    rows: list[tuple[str, str, str, str]] = []
    if (c := s.contract) is not None:
        docs = _a("Data Docs", c.data_docs_url, link)
        rows.append(
            (
                "contract",
                c.month,
                "ok" if c.passed else "bad",
                f"{_esc(_contract_state(c))} {time_html(c.recorded_at, now)} {docs}",
            )
        )
    else:
        rows.append(("contract", "", "muted", "no validated data yet"))
    if (t := s.training) is not None:
        trained = f"trained on {', '.join(t.train_months)}; validated on {', '.join(t.validation_months)}"
        counted = f"{t.train_rows:,} training rows, {t.validation_rows:,} validation rows"
        rows.append(("training", t.month, "ok", _esc(f"{trained} ({counted})")))
    else:
        rows.append(("training", "", "muted", "no training set yet"))
    champion = s.models.get("champion")
    if champion is not None:
        rows.append(("promotion", "", "ok", _promotion_html(s, champion, link, now)))
    else:
        rows.append(("promotion", "", "muted", "no champion yet"))
    if (o := s.scored) is not None:
        aliases = next((m.aliases for m in s.models.values() if m.version == o.model.version), ())
        rows.append(
            (
                "batch scoring",
                o.month,
                "ok",
                f"{o.rows:,} predictions by {_esc(version_label(o.model.version, aliases))} "
                f"{time_html(o.published_at, now)}",
            )
        )
    else:
        rows.append(("batch scoring", "", "muted", "nothing scored yet"))
    rows += _monitoring_rows(s, link, now)
    rows += [_live_row(v) for v in live_verdicts(s.monitoring)]
    return rows


def _live_row(v: WindowVerdict) -> tuple[str, str, str, str]:
    """``live decision``: what was decided, on which version, how sure and how many trips."""
    subject = f"v{v.version}" if v.version else ""
    target = f" ({subject})" if subject else ""
    trips = f"{v.trips:,} labelled trips so far"
    if v.outcome == "keep" and v.trips_needed:
        trips += f", roughly {v.trips_needed:,} needed"
    elif v.outcome == "insufficient" and v.trips_needed:
        trips += f", at least {v.trips_needed:,} needed"
    shown = (
        f"; improvement {v.interval.percent()}"
        if v.interval is not None and v.trips and math.isfinite(v.interval.point)
        else ""
    )
    acted = "; done" if v.acted else ""
    text = f"{v.words}{target}: {trips}{shown}{acted}"
    cls = "bad" if v.bad else "ok" if v.outcome == "promote" else "muted"
    return ("live decision", v.window, cls, f'<span title="{_esc(v.reason)}">{_esc(text)}</span>')


def _live_history_block(s: UseCaseStatus) -> str:
    """Every live decision so far, oldest window first: the challengers production truth
    promoted or retired and the rollbacks, each with its interval and labelled trips."""
    found = live_history(s.monitoring)
    if not found:
        return ""
    rows = []
    for v in found:
        _, window, cls, text = _live_row(v)
        rows.append(
            f'<tr data-window="{_esc(window)}" data-kind="{_esc(v.kind)}" data-outcome="{_esc(v.outcome)}">'
            f'<td>{_esc(window)}</td><td class="{cls}">{text}</td></tr>'
        )
    return (
        '<div class="live-history"><h3>Live decisions</h3><table class="latest">'
        f"<tr><th>window</th><th>decision on production truth</th></tr>{''.join(rows)}</table></div>"
    )


def _promotion_html(s: UseCaseStatus, champion: ModelVersion, link: Link, now: datetime) -> str:
    """The champion, when and why it was promoted (its promote run), and a challenger's fate."""
    why = f": {champion.reason}" if champion.reason else ""
    run = _a("Airflow run", airflow_run_link(f"{s.name}_promote", champion.decision_run_id), link)
    text = f"{_esc(champion.label)} promoted {time_html(champion.promoted_at, now)}{_esc(why)} {run}"
    challenger = s.models.get("challenger")
    if challenger is not None and challenger.version != champion.version:
        text += f"; {_esc(challenger.label)}: {_esc(challenger.reason or 'not decided yet')}"
    return text


def _monitoring_rows(s: UseCaseStatus, link: Link, now: datetime) -> list[tuple[str, str, str, str]]:
    last = s.monitoring[-1] if s.monitoring else None
    refused = [c for c in s.contracts if not c.passed and (last is None or c.month > last.window)]
    if refused:  # the newest month could not be monitored: its data never passed its contract
        month = refused[-1].month
        return [
            (
                "monitoring",
                month,
                "bad",
                _esc(MODEL_STATUS_WORDS["refused"]) + f" (contract {_esc(refused[-1].state)})",
            ),
            ("serving", month, "muted", "not monitored"),
        ]
    if last is None:
        return [
            ("monitoring", "", "muted", "no monitoring window yet"),
            ("serving", "", "muted", "no window yet"),
        ]
    model = last.model_status
    words = MODEL_STATUS_WORDS.get(model, model)
    if last.model_breaches:
        words += ": " + "; ".join(b.message for b in last.model_breaches)
    metric = s.limits.metric
    figure = (
        f"{metric} {with_unit(last.metrics.get(metric), s.limits.unit)}" if metric in last.metrics else ""
    )
    drift = last.metrics.get("drift_share")
    facts = ", ".join(
        filter(None, (figure, f"drift {percent(drift)} of features" if drift is not None else ""))
    )
    report = _a("drift report", last.report_url, link)
    run = _a("Airflow run", last.airflow_run_url, link)
    facts_html = f" ({_esc(facts)})" if facts else ""
    model_html = f"{_esc(words)}{facts_html} {time_html(last.computed_at, now)} {run} {report}"
    serving = last.serving_status
    serving_words = SERVING_STATUS_WORDS.get(serving, serving)
    if last.serving_breaches:
        serving_words += ": " + "; ".join(b.message for b in last.serving_breaches)
    if (requests := last.metrics.get("requests")) is not None:
        errors = last.metrics.get("error_rate")
        serving_words += (
            f" ({requests:,.0f} requests"
            + (f", {percent(errors)} errors" if errors is not None else "")
            + ")"
        )
    return [
        ("monitoring", last.window, {"ok": "ok", "breach": "bad"}.get(model, "muted"), model_html),
        ("serving", last.window, {"ok": "ok", "breach": "bad"}.get(serving, "muted"), _esc(serving_words)),
    ]


def _latest_block(s: UseCaseStatus, link: Link, now: datetime) -> str:
    rows = "".join(
        f'<tr data-stage="{_esc(stage)}"><th>{_esc(stage)}</th><td>{_esc(month)}</td>'
        f'<td class="{cls}">{state}</td></tr>'
        for stage, month, cls, state in _latest_rows(s, link, now)
    )
    return f'<table class="latest"><tr><th>stage</th><th>latest month</th><th>state</th></tr>{rows}</table>'


def _model_block(
    alias: str, facts: ModelVersion | None, s: UseCaseStatus, mlflow_url: str, now: datetime
) -> str:
    if facts is None:
        return f'<div class="model"><h3>{_esc(alias)}</h3><p class="muted">not set</p></div>'
    # Headline validation metrics only; per-slice figures (``val_rmse.pu_borough.Queens``) are in MLflow.
    headline = {k: v for k, v in facts.metrics.items() if k.startswith("val_") and "." not in k}
    metrics = (
        ", ".join(
            f"{k} {with_unit(v, s.limits.unit if k.endswith(('rmse', 'mae')) else '')}"
            for k, v in sorted(headline.items())[:6]
        )
        or "no metrics"
    )
    link = f"{mlflow_url}/#/models/{quote(s.name)}/versions/{quote(facts.version)}" if mlflow_url else ""
    when, why = facts.promoted_at, facts.reason
    verb = "promoted" if "champion" in facts.aliases else "decided"  # a challenger awaits or was rejected
    stamp = f" {time_html(when, now)}" if when else ""
    decision = f"<p>{verb}{stamp}{': ' + _esc(why) if why else ''}</p>" if why or when else ""
    return (
        f'<div class="model"><h3>{_esc(alias)}</h3>'
        f'<p>model version <a href="{_esc(link)}" target="_blank">{_esc(facts.label)}</a></p>'
        f"<p>{_esc(metrics)}</p>{decision}</div>"
    )


def _notices_block(contracts: Sequence[ContractMonth]) -> str:
    """Each month's jumps (which alerted) and notices (which stay here), newest month first."""
    noticed = [c for c in reversed(contracts) if c.notices or c.jumps]
    if not noticed:
        return ""
    items = "".join(
        f'<li data-month="{_esc(c.month)}"><strong>{_esc(c.month)}</strong>: '
        + "; ".join([f'<span class="bad">{_esc(j)}</span>' for j in c.jumps] + [_esc(n) for n in c.notices])
        + "</li>"
        for c in noticed
    )
    return f'<div class="notices"><h4>Notices and rule jumps</h4><ul>{items}</ul></div>'


def _charts_block(s: UseCaseStatus, now: datetime) -> str:
    trend = charts.render(contract_trend_chart(s.trend, s.limits)) if s.trend else ""
    drawn = [charts.render(c) for c in monitoring_charts(s.monitoring, s.limits)] if s.monitoring else []
    if s.aliases:  # beside the performance chart: which version it measured, and when that changed
        drawn.insert(1 if drawn else 0, charts.render_timeline(alias_timeline(s.aliases, now)))
    if s.quarantine:
        drawn.append(charts.render(quarantine_chart(s.quarantine, s.limits)))
    trend_block = f'<div class="trend">{trend}{_notices_block(s.contracts)}</div>' if trend else ""
    return f'<div class="charts">{trend_block}{"".join(drawn)}</div>' if trend_block or any(drawn) else ""


def _approvals_block(s: UseCaseStatus) -> str:
    if not s.approvals:
        return '<p class="muted">none pending</p>'
    return "".join(
        f'<div class="approval"><p><a href="{_esc(a.url)}" target="_top">{_esc(a.subject)}</a></p>'
        f"{markdown_html(a.body_md)}</div>"
        for a in s.approvals
    )


def render(
    statuses: list[UseCaseStatus],
    links: dict[str, str],
    bundle_version: str | None = None,
    lake_root: str = "",
    docs_root: Path | None = None,
    now: datetime | None = None,
) -> str:
    """A self-contained HTML page (no external assets: it works offline and in an iframe)."""
    mlflow_url = links.get("mlflow", "")
    now = now or datetime.now(UTC)

    def link(url: str | None) -> str | None:
        return served_link(url, lake_root, docs_root)

    sections = []
    for s in statuses:
        models = "".join(_model_block(a, s.models.get(a), s, mlflow_url, now) for a in ALIASES[:2])
        errors = "".join(f'<p class="bad">{_esc(e)}</p>' for e in s.errors)
        sections.append(
            f'<section class="use-case" id="{_esc(s.name)}"><h2>{_esc(s.name)}</h2>'
            f'<p class="muted">{_esc(s.task)} · maturity level {_esc(s.maturity_level)}</p>{errors}'
            f"{_incidents_block(s, link, now)}{_latest_block(s, link, now)}"
            f'<div class="grid"><div><h3>Models</h3><div class="models">{models}</div></div>'
            f"<div><h3>Approval queue</h3>{_approvals_block(s)}</div></div>{_live_history_block(s)}"
            f"{_charts_block(s, now)}</section>"
        )
    nav = " · ".join(
        f'<a href="{_esc(url)}" target="_blank">{_esc(name)}</a>' for name, url in links.items() if url
    )
    bundle = f"bundle version {_esc(bundle_version)}" if bundle_version else "bundle: local (unversioned)"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MLOps</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #1a202c; }}
h1 {{ font-size: 1.4rem; }} h2 {{ font-size: 1.2rem; margin-bottom: 0; }} h3, h4 {{ font-size: 1rem; }}
.use-case {{ border: 1px solid #e2e8f0; border-radius: 8px; padding: 1rem; margin-bottom: 1rem; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 1rem; }}
.models {{ display: flex; gap: 1rem; }} .model {{ min-width: 110px; }}
.ok {{ color: #2f855a; }} .bad {{ color: #c53030; }} .muted {{ color: #718096; }}
.incidents {{ border-left: 4px solid #c53030; background: #fff5f5; padding: 0.25rem 1rem; }}
.incidents.none {{ border-color: #2f855a; background: #f0fff4; }}
.incident.closed {{ color: #4a5568; }} .incident .state {{ color: #718096; }}
table.latest {{ border-collapse: collapse; margin: 0.5rem 0; }}
table.latest th, table.latest td {{ text-align: left; padding: 2px 10px 2px 0; vertical-align: top; }}
time {{ color: #4a5568; text-decoration: underline dotted; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1rem; margin-top: 1rem; }}
.chart text {{ fill: #4a5568; }} .notices {{ max-width: 640px; font-size: 0.9rem; }}
table.gates {{ border-collapse: collapse; font-size: 0.85rem; }}
table.gates td, table.gates th {{ border: 1px solid #e2e8f0; padding: 2px 6px; text-align: left; }}
</style></head>
<body><h1>MLOps</h1><p>{nav} · {bundle}</p>
{"".join(sections) or '<p class="muted">no use cases</p>'}
</body></html>"""
