"""The outcome of validating a month: the verdict written to the lake, and what the validate
stage hands the alert, the DAG and XCom.

:func:`validate_month` is what the validate DAG's ``check_contract`` task runs: the raw file
of every taxi type the use case lists that has landed, the volume and rule history, then
:func:`~mlplatform.stages.contracts.evaluation.evaluate_files` and :func:`publish`.
:func:`publish` writes what the evaluation calls for: the validated snapshot and the
quarantined rows, or the breach record (the raw file is never written; a breach writes
nothing to ``validated/``).

:class:`ContractOutcome` is what it returns: small and JSON-ready (URIs, not data), a
:class:`~mlplatform.core.records.Record` whose ``to_dict`` is the XCom and log form and
``from_dict`` reads it back (the validate DAG's ``report`` and ``announce`` tasks receive it
from XCom). :func:`alert_for` is the Slack alert an outcome calls for.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import pyarrow as pa

from mlplatform.adapters import snapshots
from mlplatform.adapters.alerts import Alert
from mlplatform.adapters.lake import Lake
from mlplatform.core.records import Record
from mlplatform.core.spec import UseCase
from mlplatform.core.tlc import TaxiType
from mlplatform.stages.contracts.evaluation import Clock, Evaluation, RawSource, evaluate_files
from mlplatform.stages.contracts.raw import RawFile, RawFileMissing
from mlplatform.stages.contracts.rules import history_row_counts
from mlplatform.stages.contracts.trend import history_rule_shares


@dataclass(frozen=True)
class SnapshotWritten(Record):
    """The validated snapshot a passing month points ``CURRENT.json`` at."""

    uri: str
    digest: str
    rows: int
    created: bool
    """False when the identical snapshot was already current (nothing new to announce)."""


@dataclass(frozen=True)
class QuarantineWritten(Record):
    """The rows a passing month set aside, with their reasons."""

    rows_uri: str
    rows: int


@dataclass(frozen=True)
class ContractOutcome(Record):
    """A month judged against its contract, and what was written for it.

    ``source`` is the lineage of the raw delivery as the breach record carries it (with the
    ``uri`` of the raw file or folder).
    """

    use_case: str
    month: str
    severity: str
    success: bool
    summary: str
    breaches: tuple[str, ...]
    warnings: tuple[str, ...]
    rows: int
    quarantined_rows: int
    bad_row_share: float
    rule_counts: Mapping[str, int]
    source: RawSource
    suite: str
    data_docs_url: str | None
    snapshot: SnapshotWritten | None = None
    quarantine: QuarantineWritten | None = None
    breach_uri: str | None = None
    """Where the breach record (``breach.json``) of a breached month was written."""
    timings: Mapping[str, float] = field(default_factory=dict)
    reading_counts: Mapping[str, int] = field(default_factory=dict)
    """Rows ``fare_inconsistent`` accepted under each fare reading (only readings that occurred)."""
    jumps: tuple[str, ...] = ()
    """Rules whose quarantine share jumped far above their trailing median: a warning, not a breach."""

    def breach_message(self) -> str:
        """Why the month failed, where the evidence is and that the raw file is kept (one paragraph)."""
        return (
            f"{self.use_case} {self.month} breached contract {self.suite}: "
            + "; ".join(self.breaches)
            + f". Nothing was validated; the raw file {self.source.uri} is kept. "
            f"Breach record: {self.breach_uri}. Data Docs: {self.data_docs_url}"
        )

    def new_snapshot(self) -> SnapshotWritten | None:
        """The snapshot this validation made current; ``None`` when the identical snapshot already
        was, or nothing was validated (then there is nothing to announce)."""
        return self.snapshot if self.snapshot is not None and self.snapshot.created else None

    def nothing_new(self) -> str:
        """Why a validation without a :meth:`new_snapshot` announces nothing (one line)."""
        current = self.snapshot.digest[:12] if self.snapshot else "?"
        return f"snapshot {current} of {self.month} was already current: nothing new to announce"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Read an outcome back from XCom or JSON, also in the form that named ``breach_uri``
        ``breach_record`` (outcomes written before the rename)."""
        if "breach_record" in data and "breach_uri" not in data:
            data = {**data, "breach_uri": data["breach_record"]}
        return super().from_dict(data)


# -- the validate stage ----------------------------------------------------------------------


def raw_paths(use_case: UseCase, month: str) -> dict[TaxiType, str]:
    """Lake path of the month's raw file for each taxi type the use case lists."""
    return {t: Lake.raw_path(use_case.data.dataset, t, month) for t in use_case.data.taxi_types}


def validate_month(lake: Lake, use_case: UseCase, month: str, root: Path | None = None) -> ContractOutcome:
    """Validate the month's raw files in the lake and write the results (see :func:`publish`).

    The month is every listed taxi type whose raw file has landed (one is enough). Raises
    :class:`RawFileMissing` when none has.
    """
    # A run killed mid-write leaves hidden temp files; the next run of the month sweeps them.
    lake.sweep(snapshots.month_folder(use_case.name, month))
    lake.sweep(quarantine_month_folder(use_case.name, month))
    paths = raw_paths(use_case, month)
    started = time.perf_counter()
    present = {t: p for t, p in paths.items() if lake.exists(p)}
    if not present:
        raise RawFileMissing(
            f"no raw file for {use_case.name} {month} at {' or '.join(lake.uri(p) for p in paths.values())}: "
            f"land one first (mlplatform ingest FILE --use-case {use_case.name} --month {month})"
        )
    files = [RawFile(p, lake.read_bytes(p), (t,)) for t, p in present.items()]
    history = history_row_counts(lake, use_case, month)
    rule_history = history_rule_shares(lake, use_case, month)
    fetched = round(time.perf_counter() - started, 3)
    evaluation = evaluate_files(
        files, use_case, month, history=history, root=root, encode_snapshot=True, rule_history=rule_history
    )
    outcome = publish(lake, evaluation)
    return dataclasses.replace(outcome, timings={"fetch": fetched, **outcome.timings})


# -- writing the verdict to the lake ---------------------------------------------------------


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
    folder = quarantine_folder(ev.use_case, ev.month, ev.source.digest)
    source = dataclasses.replace(ev.source, uri=lake.uri(ev.source.path))
    rule_counts = {k: v for k, v in ev.rule_counts.items() if v}
    breach_uri, quarantine, snapshot = None, None, None
    encoding: dict[str, float] = {}
    if not ev.success:
        breach_uri = _write_breach_record(lake, ev, folder, source)
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
        breach_uri=breach_uri,
        timings={**ev.timings, **encoding, **clock.laps},
        reading_counts={k: v for k, v in ev.reading_counts.items() if v},
        jumps=tuple(ev.jumps),
    )


def _write_breach_record(lake: Lake, ev: Evaluation, folder: str, source: RawSource) -> str:
    record = {
        "use_case": ev.use_case,
        "month": ev.month,
        "severity": "breach",
        "what_broke": ev.breaches,
        "source": source.to_dict(),
        "recorded_at": datetime.now(UTC).isoformat(),
        "contract": ev.contract().to_dict(),
        "checks": [c.__dict__ for c in ev.checks if not c.success],
        "raw_file_kept": True,
    }
    return lake.write_json(f"{folder}/breach.json", record)


def _write_quarantine(
    lake: Lake, ev: Evaluation, folder: str, source: RawSource, rule_counts: dict[str, int]
) -> QuarantineWritten:
    rows_uri = lake.write_parquet(f"{folder}/rows.parquet", ev.quarantined, compression="zstd")
    lake.write_json(
        f"{folder}/summary.json",
        {
            "use_case": ev.use_case,
            "month": ev.month,
            "source": source.to_dict(),
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
        "source": {"path": ev.source.path, "digest": ev.source.digest, "rows": ev.rows},
        "contract": ev.contract().to_dict(),
    }
    rows: pa.Table | snapshots.Encoded = ev.valid
    encoding: dict[str, float] = {}
    if ev.encoded is not None:
        rows, seconds = ev.encoded.result()
        encoding["snapshot_encode"] = round(seconds, 3)  # in a thread, alongside the checkpoint
    snapshot, created = snapshots.write_snapshot(lake, ev.use_case, ev.month, rows, manifest)
    return SnapshotWritten(lake.uri(snapshot.data_path), snapshot.digest, snapshot.rows, created), encoding


# -- the Slack alert -------------------------------------------------------------------------


# Slack hears of a month only when someone should act: a breach (nothing validated, the
# breach record and Data Docs linked), or a rule whose quarantine share jumped far above its
# trailing median (a warning naming the rule, :mod:`.trend`). A month whose quarantine stays
# within its usual range, and its notices, stay in the stored outcome (the snapshot
# manifest's ``contract`` block, which the MLOps page shows) and the task log: every real
# month quarantines a few percent, and a message each month teaches people to ignore them.


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
        "Raw file": f"`{source.path}` (sha256 {source.digest[:12]})",
    }
    links = {"Data Docs": outcome.data_docs_url, "Task log": log_url}
    if severity == "breach":
        return Alert(
            title=f"{name} {month}: data contract breached, nothing validated",
            severity="breach",
            lines=(
                *(f"• {b}" for b in outcome.breaches),
                "The raw file is kept as delivered; nothing was written to validated/. "
                f"Breach record: `{outcome.breach_uri}`",
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
