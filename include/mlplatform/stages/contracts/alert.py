"""The Slack alert a validation outcome calls for, built with :mod:`mlplatform.adapters.alerts`.

Slack hears of a month only when someone should act: a breach (nothing validated, the
breach record and Data Docs linked), or a rule whose quarantine share jumped far above its
trailing median (a warning naming the rule, :mod:`.trend`). A month whose quarantine stays
within its usual range, and its notices, stay in the stored outcome (the snapshot
manifest's ``contract`` block, which the MLOps page shows) and the task log: every real
month quarantines a few percent, and a message each month teaches people to ignore them.
The validate DAG's ``report`` task sends what :func:`alert_for` returns.
"""

from __future__ import annotations

from mlplatform.adapters.alerts import Alert
from mlplatform.stages.contracts.outcome import ContractOutcome


def alert_for(outcome: ContractOutcome, log_url: str | None = None) -> Alert | None:
    """The Slack alert an outcome calls for: a breach or a jump warning; ``None`` for a usual month."""
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
    if outcome.jumps:
        counts = outcome.rule_counts
        rows_uri = outcome.quarantine.rows_uri if outcome.quarantine else None
        return Alert(
            title=f"{name} {month}: a row rule's quarantine share jumped, month validated",
            severity="warning",
            lines=(
                *(f"• {j}" for j in outcome.jumps),
                *(f"• {rule}: {n:,} rows ({n / outcome.rows:.2%})" for rule, n in counts.items()),
                f"Quarantined rows: `{rows_uri}`",
            ),
            fields=fields,
            links={**links, "Snapshot": outcome.snapshot.uri if outcome.snapshot else None},
        )
    return None
