"""Writing a verdict to the lake: the validated snapshot, the quarantined rows, or the breach record.

:func:`publish` writes what an :class:`~mlplatform.stages.contracts.checkpoint.Evaluation`
calls for and returns the outcome: small and JSON-ready (URIs, not data), for XCom, the
alert and the logs. The raw file is never written; a breach writes nothing to
``validated/``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.stages.contracts.checkpoint import Evaluation
from mlplatform.stages.contracts.threads import Clock


def quarantine_folder(use_case: str, month: str, raw_digest: str) -> str:
    """Where a raw file's quarantined rows and breach record go (one folder per delivery)."""
    return f"quarantine/{use_case}/month={month}/{raw_digest}"


def publish(lake: Lake, evaluation: Evaluation) -> dict[str, Any]:
    """Write what the verdict calls for; returns the outcome (small, JSON-ready: URIs, not data).

    - breach: a breach record ``breach.json`` in the quarantine folder; nothing else;
    - pass: the validated snapshot (a no-op when the identical snapshot is current), and the
      quarantined rows ``rows.parquet`` with a ``summary.json`` when some rows broke rules.
    """
    ev = evaluation
    clock = Clock()
    folder = quarantine_folder(ev.use_case, ev.month, ev.source["digest"])
    outcome = _outcome(lake, ev)
    encoding: dict[str, float] = {}
    if not ev.success:
        outcome["breach_record"] = _write_breach_record(lake, ev, folder, outcome["source"])
    else:
        if ev.quarantined is not None:
            outcome["quarantine"] = _write_quarantine(lake, ev, folder, outcome)
        outcome["snapshot"], encoding = _write_snapshot(lake, ev)
    clock.lap("write")
    ev.docs_rendered()
    clock.lap("data_docs")
    outcome["timings"] = {**ev.timings, **encoding, **clock.laps}
    return outcome


def _outcome(lake: Lake, ev: Evaluation) -> dict[str, Any]:
    """The outcome before anything is written."""
    return {
        "use_case": ev.use_case,
        "month": ev.month,
        "severity": ev.severity,
        "success": ev.success,
        "summary": ev.summary(),
        "breaches": ev.breaches,
        "warnings": ev.warnings,
        "rows": ev.rows,
        "quarantined_rows": ev.bad_rows,
        "bad_row_share": ev.bad_row_share,
        "rule_counts": {k: v for k, v in ev.rule_counts.items() if v},
        "source": {**ev.source, "uri": lake.uri(ev.source["path"])},
        "suite": ev.suite,
        "data_docs_url": ev.data_docs_url,
        "snapshot": None,
        "quarantine": None,
        "breach_record": None,
        "timings": ev.timings,
    }


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


def _write_quarantine(lake: Lake, ev: Evaluation, folder: str, outcome: dict[str, Any]) -> dict[str, Any]:
    rows_uri = lake.write_parquet(f"{folder}/rows.parquet", ev.quarantined, compression="zstd")
    lake.write_json(
        f"{folder}/summary.json",
        {
            "use_case": ev.use_case,
            "month": ev.month,
            "source": outcome["source"],
            "quarantined_rows": ev.bad_rows,
            "rule_counts": outcome["rule_counts"],
            "data_docs_url": ev.data_docs_url,
        },
    )
    return {"rows_uri": rows_uri, "rows": ev.bad_rows}


def _write_snapshot(lake: Lake, ev: Evaluation) -> tuple[dict[str, Any], dict[str, float]]:
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
    written = {
        "uri": lake.uri(snapshot.data_path),
        "digest": snapshot.digest,
        "rows": snapshot.rows,
        "created": created,
    }
    return written, encoding
