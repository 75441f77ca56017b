"""The Slack alert a validation outcome calls for, built with :mod:`mlplatform.adapters.alerts`.

A breach alerts (nothing validated, the breach record and Data Docs linked), a quarantine
warns with the share per rule, notices inform; a clean pass only logs. The validate DAG's
``report`` task sends what :func:`alert_for` returns.
"""

from __future__ import annotations

from mlplatform.adapters.alerts import Alert
from mlplatform.stages.contracts.outcome import ContractOutcome


def alert_for(outcome: ContractOutcome, log_url: str | None = None) -> Alert | None:
    """The Slack alert an outcome calls for: breach, quarantine summary, notice; none on a clean pass."""
    name, month, severity = outcome.use_case, outcome.month, outcome.severity
    source = outcome.source
    fields = {
        "Use case": name,
        "Month": month,
        "Suite": outcome.suite,
        "Rows": f"{outcome.rows:,}",
        "Quarantined": f"{outcome.quarantined_rows:,} ({outcome.bad_row_share:.2%})",
        "Raw file": f"`{source['path']}` (sha256 {source['digest'][:12]})",
    }
    links = {"Data Docs": outcome.data_docs_url, "Task log": log_url}
    if severity == "breach":
        return Alert(
            title=f"{name} {month}: data contract breached, nothing validated",
            severity="breach",
            lines=(
                *(f"• {b}" for b in outcome.breaches),
                "The raw file is kept as delivered; nothing was written to validated/. "
                f"Breach record: `{outcome.breach_record}`",
            ),
            fields=fields,
            links=links,
        )
    if severity == "quarantine":
        counts = outcome.rule_counts
        rows_uri = outcome.quarantine.rows_uri if outcome.quarantine else None
        return Alert(
            title=f"{name} {month}: {outcome.quarantined_rows:,} rows quarantined, month validated",
            severity="warning",
            lines=(
                *(f"• {rule}: {n:,} rows ({n / outcome.rows:.2%})" for rule, n in counts.items()),
                *(f"• notice: {w}" for w in outcome.warnings),
                f"Quarantined rows: `{rows_uri}`",
            ),
            fields=fields,
            links={**links, "Snapshot": outcome.snapshot.uri if outcome.snapshot else None},
        )
    if outcome.warnings:
        return Alert(
            title=f"{name} {month}: month validated with notices",
            severity="info",
            lines=tuple(f"• {w}" for w in outcome.warnings),
            fields=fields,
            links=links,
        )
    return None
