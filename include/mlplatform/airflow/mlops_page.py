"""The MLOps page: one screen per platform with the state of every use case.

For each use case it shows the ``champion`` and ``challenger`` (version, metrics, when and
why promoted), the last contract results, the latest monitoring metrics and drift status
with a small chart, pending approvals, and links to MLflow, Data Docs and the drift report.

:func:`collect` gathers the facts (registry, lake) into plain dicts; :func:`render` turns
them into a self-contained HTML page. The Airflow plugin in ``plugins/`` only wires them
to a URL; tests call them directly.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core.spec import UseCase

ALIASES = ("champion", "challenger", "previous_champion")
CHART_METRICS = ("rmse", "mae", "log_loss", "drift_share")


@dataclass
class UseCaseStatus:
    name: str
    task: str
    maturity_level: int
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    contract: dict[str, Any] | None = None
    monitoring: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
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
    status = UseCaseStatus(use_case.name, use_case.task, use_case.maturity_level)
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


def _sparkline(records: list[dict[str, Any]], metric: str, width: int = 260, height: int = 48) -> str:
    points = [
        (i, float(r["metrics"][metric])) for i, r in enumerate(records) if metric in r.get("metrics", {})
    ]
    if len(points) < 2:
        return ""
    values = [v for _, v in points]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = width / (len(records) - 1 or 1)
    coords = " ".join(f"{i * step:.1f},{height - 4 - (v - low) / span * (height - 8):.1f}" for i, v in points)
    return (
        f'<svg class="chart" role="img" aria-label="{metric} over time" width="{width}" height="{height}">'
        f'<polyline fill="none" stroke="#017cee" stroke-width="2" points="{coords}"/></svg>'
        f'<span class="range">{metric}: {values[0]:.3f} → {values[-1]:.3f}</span>'
    )


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


def render(statuses: list[UseCaseStatus], links: dict[str, str], bundle_version: str | None = None) -> str:
    """A self-contained HTML page (no external assets: it works offline and in an iframe)."""
    mlflow_url = links.get("mlflow", "")
    sections = []
    for s in statuses:
        models = "".join(_model_block(a, s.models.get(a), mlflow_url, s.name) for a in ALIASES[:2])
        if s.contract:
            ok = s.contract.get("success")
            contract = (
                f'<p class="{"ok" if ok else "bad"}">{s.contract.get("month")}: '
                f"{'passed' if ok else 'breached'}; bad rows {s.contract.get('bad_row_share', 'n/a')}</p>"
            )
            if url := s.contract.get("data_docs_url"):
                contract += f'<p><a href="{_esc(url)}" target="_blank">Data Docs</a></p>'
        else:
            contract = '<p class="muted">no validated data yet</p>'
        if s.monitoring:
            last = s.monitoring[-1]
            breaches = last.get("breaches") or []
            drift = "drift detected" if any("drift" in str(b) for b in breaches) else "no drift"
            state = f'<p class="{"bad" if breaches else "ok"}">{_esc(last.get("window"))}: '
            state += (
                f"breached {_esc(', '.join(map(str, breaches)))}" if breaches else "within thresholds"
            ) + "</p>"
            charts = "".join(_sparkline(s.monitoring, m) for m in CHART_METRICS)
            report = last.get("report_url") or last.get("report_uri")
            monitoring = state + f"<p>{drift}</p>" + charts
            if report:
                monitoring += f'<p><a href="{_esc(report)}" target="_blank">drift report</a></p>'
        else:
            monitoring = '<p class="muted">no monitoring window yet</p>'
        items = "".join(
            f'<li><a href="{_esc(a.get("url", ""))}" target="_top">{_esc(a.get("subject"))}</a></li>'
            for a in s.approvals
        )
        approvals = f"<ul>{items}</ul>" if items else '<p class="muted">none pending</p>'
        errors = "".join(f'<p class="bad">{_esc(e)}</p>' for e in s.errors)
        sections.append(
            f'<section class="use-case" id="{_esc(s.name)}"><h2>{_esc(s.name)}</h2>'
            f'<p class="muted">{_esc(s.task)} · maturity level {s.maturity_level}</p>{errors}'
            f'<div class="grid"><div><h3>Models</h3><div class="models">{models}</div></div>'
            f"<div><h3>Data contract</h3>{contract}</div>"
            f"<div><h3>Monitoring</h3>{monitoring}</div>"
            f"<div><h3>Pending approvals</h3>{approvals}</div></div></section>"
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
.chart {{ display: block; }} .range {{ font-size: 0.8rem; color: #4a5568; }}
</style></head>
<body><h1>MLOps</h1><p>{nav} · {bundle}</p>
{"".join(sections) or '<p class="muted">no use cases</p>'}
</body></html>"""
