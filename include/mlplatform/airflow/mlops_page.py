"""The MLOps page: one screen per platform with the state of every use case.

For each use case it shows the ``champion`` and ``challenger`` (version, metrics, when and
why promoted), the last contract results, the latest monitoring metrics and drift status,
charts with axes, units and thresholds (the performance metric per variant and the share of
drifted features per monitored month, the quarantined share per validated month), the
approval queue with each request's gate table, and links to MLflow, the alerts, Data Docs
and the drift report.

Links resolve in every environment: objects in the lake (drift reports, Data Docs
published there) and the local Data Docs site are served by the plugin itself
(:func:`served_link`), so a ``file://`` or ``s3://`` location never reaches the browser.

:func:`collect` gathers the facts (registry, lake); :func:`render` turns them into a
self-contained HTML page. The Airflow plugin in ``plugins/`` only wires them to a URL and
adds what only Airflow knows (pending approvals); tests call them directly.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.airflow import charts
from mlplatform.core.metrics import LOWER_IS_BETTER
from mlplatform.core.spec import UseCase

ALIASES = ("champion", "challenger", "previous_champion")


@dataclass(frozen=True)
class Limits:
    """The spec's thresholds the charts draw, and the unit of the performance metric."""

    metric: str = "rmse"
    unit: str = ""
    max_relative_degradation: float | None = None
    drifted_share: float | None = None
    max_bad_row_share: float | None = None

    @classmethod
    def of(cls, use_case: UseCase) -> Limits:
        unit = use_case.target.unit if use_case.monitoring.performance_metric in ("rmse", "mae") else "score"
        return cls(
            metric=use_case.monitoring.performance_metric,
            unit=unit,
            max_relative_degradation=use_case.monitoring.max_relative_degradation,
            drifted_share=use_case.monitoring.drifted_share_threshold,
            max_bad_row_share=use_case.contract.max_bad_row_share,
        )


@dataclass(frozen=True)
class PendingApproval:
    """A person's decision the platform waits for: what, where to answer, and the gate table."""

    subject: str
    url: str
    body_md: str = ""


@dataclass
class UseCaseStatus:
    name: str
    task: str
    maturity_level: int
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    contract: dict[str, Any] | None = None
    monitoring: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[tuple[str, float]] = field(default_factory=list)  # (month, share of rows)
    approvals: list[PendingApproval] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    errors: list[str] = field(default_factory=list)


def _model_facts(client: Any, name: str, alias: str) -> dict[str, Any] | None:
    try:
        version = client.get_model_version_by_alias(name, alias)
    except Exception:  # the alias is not set (yet): nothing to show
        return None
    metrics: dict[str, float] = {}
    if version.run_id:
        try:
            run = client.get_run(version.run_id)
            metrics = {k: v for k, v in run.data.metrics.items() if "/" not in k}
        except Exception:
            metrics = {}
    return {
        "version": version.version,
        "created": version.creation_timestamp,
        "run_id": version.run_id,
        "tags": dict(version.tags or {}),
        "metrics": metrics,
    }


def monitoring_history(lake: Lake, use_case: str) -> list[dict[str, Any]]:
    """Monitoring records (``monitoring/<use case>/history/*/metrics.json``), oldest first."""
    records = []
    for entry in lake.list(f"monitoring/{use_case}/history"):
        if entry.path.endswith("/metrics.json"):
            try:
                records.append(lake.read_json(entry.path))
            except Exception:
                continue
    return sorted(records, key=lambda r: str(r.get("window", "")))


def collect(use_case: UseCase, lake: Lake, tracking_uri: str | None) -> UseCaseStatus:
    """The state of one use case; unreachable parts are reported in ``errors``, not raised."""
    status = UseCaseStatus(use_case.name, use_case.task, use_case.maturity_level, limits=Limits.of(use_case))
    if tracking_uri:
        try:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=tracking_uri)
            for alias in ALIASES:
                if (facts := _model_facts(client, use_case.model_name, alias)) is not None:
                    status.models[alias] = facts
        except Exception as exc:
            status.errors.append(f"registry unreachable: {exc}")
    try:
        current = snapshots.current_snapshots(lake, use_case.name)
        status.quarantine = [
            (s.month, float(share))
            for s in current
            if isinstance(share := (s.manifest.get("contract") or {}).get("bad_row_share"), int | float)
        ]
        if current:
            latest = current[-1]
            status.contract = {
                "month": latest.month,
                "digest": latest.digest,
                **latest.manifest.get("contract", {}),
            }
        status.monitoring = monitoring_history(lake, use_case.name)
    except Exception as exc:
        status.errors.append(f"lake unreachable: {exc}")
    return status


def _threshold(record: dict[str, Any], limits: Limits) -> float | None:
    """The window's breach level of the performance metric: its reference, degraded by the limit."""
    reference = (record.get("metrics") or {}).get(f"{limits.metric}_reference")
    if reference is None or limits.max_relative_degradation is None:
        return None
    sign = 1 if LOWER_IS_BETTER.get(limits.metric, True) else -1
    return float(reference) * (1 + sign * limits.max_relative_degradation)


def monitoring_charts(records: list[dict[str, Any]], limits: Limits) -> list[charts.Chart]:
    """The performance metric per variant and the share of drifted features, per window."""
    labels = [str(r.get("window", "?")) for r in records]
    metric = limits.metric
    variants = sorted({v for r in records for v in ((r.get("details") or {}).get("variants") or {})})
    performance: dict[str, list[float | None]] = {
        "overall": [(r.get("metrics") or {}).get(metric) for r in records]
    }
    for variant in variants:
        performance[variant] = [
            (((r.get("details") or {}).get("variants") or {}).get(variant) or {}).get(metric) for r in records
        ]
    drift = [(r.get("metrics") or {}).get("drift_share") for r in records]
    return [
        charts.Chart(
            f"{metric} per variant",
            f"{metric} ({limits.unit})" if limits.unit else metric,
            labels,
            {k: v for k, v in performance.items() if any(x is not None for x in v)},
            [_threshold(r, limits) for r in records],
            "breach level",
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


def quarantine_chart(quarantine: list[tuple[str, float]], limits: Limits) -> charts.Chart:
    """The share of rows quarantined per validated month, against the contract's limit."""
    return charts.Chart(
        "quarantined rows",
        "share of rows",
        [month for month, _ in quarantine],
        {"quarantined": [share for _, share in quarantine]},
        [limits.max_bad_row_share] * len(quarantine),
        "breach level",
    )


def served_link(url: str | None, lake_root: str, docs_root: Path | None = None) -> str | None:
    """A link the browser can open in every environment.

    Objects in the lake become ``lake/<path>`` and pages of the local Data Docs site
    ``datadocs/<path>``, both served by the MLOps plugin next to this page; web URLs stay.
    """
    if not url:
        return None
    root = lake_root.rstrip("/") + "/"
    if url.startswith(root):
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


def _model_block(alias: str, facts: dict[str, Any] | None, mlflow_url: str, model_name: str) -> str:
    if facts is None:
        return f'<div class="model"><h3>{alias}</h3><p class="muted">not set</p></div>'
    # Headline validation metrics only; per-slice figures (``val_rmse.pu_borough.Queens``) are in MLflow.
    headline = {k: v for k, v in facts["metrics"].items() if k.startswith("val_") and "." not in k}
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(headline.items())[:6]) or "no metrics"
    tags = facts["tags"]
    why = tags.get("promotion.reason") or tags.get("decision.reason") or tags.get("reason", "")
    when = tags.get("promotion.at") or tags.get("decision.at", "")
    link = f"{mlflow_url}/#/models/{model_name}/versions/{facts['version']}" if mlflow_url else ""
    return (
        f'<div class="model"><h3>{alias}</h3>'
        f'<p><a href="{_esc(link)}" target="_blank">version {_esc(facts["version"])}</a></p>'
        f"<p>{_esc(metrics)}</p>"
        + (f"<p>promoted {_esc(when)}: {_esc(why)}</p>" if why or when else "")
        + "</div>"
    )


def _contract_block(s: UseCaseStatus, link: Any) -> str:
    if not s.contract:
        return '<p class="muted">no validated data yet</p>'
    ok = s.contract.get("success")
    block = (
        f'<p class="{"ok" if ok else "bad"}">{_esc(s.contract.get("month"))}: '
        f"{'passed' if ok else 'breached'}; bad rows {_esc(s.contract.get('bad_row_share', 'n/a'))}</p>"
    )
    if url := link(s.contract.get("data_docs_url")):
        block += f'<p><a href="{_esc(url)}" target="_blank">Data Docs</a></p>'
    return block


def _monitoring_block(s: UseCaseStatus, link: Any) -> str:
    if not s.monitoring:
        return '<p class="muted">no monitoring window yet</p>'
    last = s.monitoring[-1]
    breaches = last.get("breaches") or []
    drift = "drift detected" if any("drift" in str(b) for b in breaches) else "no drift"
    state = f'<p class="{"bad" if breaches else "ok"}">{_esc(last.get("window"))}: '
    state += (f"breached {_esc(', '.join(map(str, breaches)))}" if breaches else "within thresholds") + "</p>"
    block = state + f"<p>{drift}</p>"
    if report := link(last.get("report_url") or last.get("report_uri")):
        block += f'<p><a href="{_esc(report)}" target="_blank">drift report</a></p>'
    return block


def _charts_block(s: UseCaseStatus) -> str:
    drawn = [charts.render(c) for c in monitoring_charts(s.monitoring, s.limits)] if s.monitoring else []
    if s.quarantine:
        drawn.append(charts.render(quarantine_chart(s.quarantine, s.limits)))
    return f'<div class="charts">{"".join(drawn)}</div>' if any(drawn) else ""


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
) -> str:
    """A self-contained HTML page (no external assets: it works offline and in an iframe)."""
    mlflow_url = links.get("mlflow", "")

    def link(url: str | None) -> str | None:
        return served_link(url, lake_root, docs_root) if lake_root else url

    sections = []
    for s in statuses:
        models = "".join(_model_block(a, s.models.get(a), mlflow_url, s.name) for a in ALIASES[:2])
        errors = "".join(f'<p class="bad">{_esc(e)}</p>' for e in s.errors)
        sections.append(
            f'<section class="use-case" id="{_esc(s.name)}"><h2>{_esc(s.name)}</h2>'
            f'<p class="muted">{_esc(s.task)} · maturity level {s.maturity_level}</p>{errors}'
            f'<div class="grid"><div><h3>Models</h3><div class="models">{models}</div></div>'
            f"<div><h3>Data contract</h3>{_contract_block(s, link)}</div>"
            f"<div><h3>Monitoring</h3>{_monitoring_block(s, link)}</div>"
            f"<div><h3>Approval queue</h3>{_approvals_block(s)}</div></div>{_charts_block(s)}</section>"
        )
    nav = " · ".join(
        f'<a href="{_esc(url)}" target="_blank">{_esc(name)}</a>' for name, url in links.items() if url
    )
    bundle = f"bundle version {_esc(bundle_version)}" if bundle_version else "bundle: local (unversioned)"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MLOps</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #1a202c; }}
h1 {{ font-size: 1.4rem; }} h2 {{ font-size: 1.2rem; margin-bottom: 0; }} h3 {{ font-size: 1rem; }}
.use-case {{ border: 1px solid #e2e8f0; border-radius: 8px; padding: 1rem; margin-bottom: 1rem; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 1rem; }}
.models {{ display: flex; gap: 1rem; }} .model {{ min-width: 110px; }}
.ok {{ color: #2f855a; }} .bad {{ color: #c53030; }} .muted {{ color: #718096; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1rem; margin-top: 1rem; }}
.chart text {{ fill: #4a5568; }}
table.gates {{ border-collapse: collapse; font-size: 0.85rem; }}
table.gates td, table.gates th {{ border: 1px solid #e2e8f0; padding: 2px 6px; text-align: left; }}
</style></head>
<body><h1>MLOps</h1><p>{nav} · {bundle}</p>
{"".join(sections) or '<p class="muted">no use cases</p>'}
</body></html>"""
