"""Writing a verdict to the lake: the validated snapshot, the quarantined rows, or the breach record.

:func:`publish` writes what an :class:`~mlplatform.stages.contracts.checkpoint.Evaluation`
calls for and returns the :class:`~mlplatform.stages.contracts.outcome.ContractOutcome`:
small and JSON-ready (URIs, not data), for XCom, the alert and the logs. The raw file is
never written; a breach writes nothing to ``validated/``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.stages.contracts.checkpoint import Evaluation
from mlplatform.stages.contracts.outcome import ContractOutcome, QuarantineWritten, SnapshotWritten
from mlplatform.stages.contracts.threads import Clock


def quarantine_month_folder(use_case: str, month: str) -> str:
    """The folder of every quarantined delivery of a month."""
    return f"quarantine/{use_case}/month={month}"


def quarantine_folder(use_case: str, month: str, raw_digest: str) -> str:
    """Where a raw file's quarantined rows and breach record go (one folder per delivery)."""
    return f"{quarantine_month_folder(use_case, month)}/{raw_digest}"


def publish(lake: Lake, evaluation: Evaluation) -> ContractOutcome:
    """Write what the verdict calls for; returns the outcome (small, JSON-ready: URIs, not data).

    - breach: a breach record ``breach.json`` in the quarantine folder; nothing else;
    - pass: the validated snapshot (a no-op when the identical snapshot is current), and the
      quarantined rows ``rows.parquet`` with a ``summary.json`` when some rows broke rules.
    """
    ev = evaluation
    clock = Clock()
    folder = quarantine_folder(ev.use_case, ev.month, ev.source["digest"])
    source = {**ev.source, "uri": lake.uri(ev.source["path"])}
    rule_counts = {k: v for k, v in ev.rule_counts.items() if v}
    breach_record, quarantine, snapshot = None, None, None
    encoding: dict[str, float] = {}
    if not ev.success:
        breach_record = _write_breach_record(lake, ev, folder, source)
    else:
        if ev.quarantined is not None:
            quarantine = _write_quarantine(lake, ev, folder, source, rule_counts)
        snapshot, encoding = _write_snapshot(lake, ev)
    clock.lap("write")
    ev.docs_rendered()
    clock.lap("data_docs")
    return ContractOutcome(
        use_case=ev.use_case,
        month=ev.month,
        severity=ev.severity,
        success=ev.success,
        summary=ev.summary(),
        breaches=tuple(ev.breaches),
        warnings=tuple(ev.warnings),
        rows=ev.rows,
        quarantined_rows=ev.bad_rows,
        bad_row_share=ev.bad_row_share,
        rule_counts=rule_counts,
        source=source,
        suite=ev.suite,
        data_docs_url=ev.data_docs_url,
        snapshot=snapshot,
        quarantine=quarantine,
        breach_record=breach_record,
        timings={**ev.timings, **encoding, **clock.laps},
        reading_counts={k: v for k, v in ev.reading_counts.items() if v},
        jumps=tuple(ev.jumps),
    )


def _write_breach_record(lake: Lake, ev: Evaluation, folder: str, source: dict[str, Any]) -> str:
    record = {
        "use_case": ev.use_case,
        "month": ev.month,
        "severity": "breach",
        "what_broke": ev.breaches,
        "source": source,
        "recorded_at": datetime.now(UTC).isoformat(),
        "contract": ev.contract(),
        "checks": [c.__dict__ for c in ev.checks if not c.success],
        "raw_file_kept": True,
    }
    return lake.write_json(f"{folder}/breach.json", record)


def _write_quarantine(
    lake: Lake, ev: Evaluation, folder: str, source: dict[str, Any], rule_counts: dict[str, int]
) -> QuarantineWritten:
    rows_uri = lake.write_parquet(f"{folder}/rows.parquet", ev.quarantined, compression="zstd")
    lake.write_json(
        f"{folder}/summary.json",
        {
            "use_case": ev.use_case,
            "month": ev.month,
            "source": source,
            "quarantined_rows": ev.bad_rows,
            "rule_counts": rule_counts,
            "reading_counts": {k: v for k, v in ev.reading_counts.items() if v},
            "jumps": ev.jumps,
            "data_docs_url": ev.data_docs_url,
        },
    )
    return QuarantineWritten(rows_uri, ev.bad_rows)


def _write_snapshot(lake: Lake, ev: Evaluation) -> tuple[SnapshotWritten, dict[str, float]]:
    """The validated snapshot, and the seconds its encoding took when a thread did it."""
    manifest = {
        "source": {"path": ev.source["path"], "digest": ev.source["digest"], "rows": ev.rows},
        "contract": ev.contract(),
    }
    rows: pa.Table | snapshots.Encoded = ev.valid
    encoding: dict[str, float] = {}
    if ev.encoded is not None:
        rows, seconds = ev.encoded.result()
        encoding["snapshot_encode"] = round(seconds, 3)  # in a thread, alongside the checkpoint
    snapshot, created = snapshots.write_snapshot(lake, ev.use_case, ev.month, rows, manifest)
    return SnapshotWritten(lake.uri(snapshot.data_path), snapshot.digest, snapshot.rows, created), encoding
