"""The outcome of validating a month: what the validate stage hands the alert, the DAG and XCom.

:class:`ContractOutcome` is small and JSON-ready (URIs, not data). Its ``to_dict`` is the
XCom and log form, with the keys in the order they were always written; ``from_dict``
reads it back (the validate DAG's ``report`` and ``announce`` tasks receive it from XCom).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SnapshotWritten:
    """The validated snapshot a passing month points ``CURRENT.json`` at."""

    uri: str
    digest: str
    rows: int
    created: bool
    """False when the identical snapshot was already current (nothing new to announce)."""

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "digest": self.digest, "rows": self.rows, "created": self.created}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SnapshotWritten:
        return cls(str(data["uri"]), str(data["digest"]), int(data["rows"]), bool(data["created"]))


@dataclass(frozen=True)
class QuarantineWritten:
    """The rows a passing month set aside, with their reasons."""

    rows_uri: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"rows_uri": self.rows_uri, "rows": self.rows}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuarantineWritten:
        return cls(str(data["rows_uri"]), int(data["rows"]))


@dataclass(frozen=True)
class ContractOutcome:
    """A month judged against its contract, and what was written for it.

    ``source`` is the lineage of the raw delivery as the manifest and the breach record
    carry it (``path``, ``digest``, ``bytes``, ``rows``, ``uri``; ``files`` for a month of
    several files), passed through unchanged.
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
    source: Mapping[str, Any]
    suite: str
    data_docs_url: str | None
    snapshot: SnapshotWritten | None = None
    quarantine: QuarantineWritten | None = None
    breach_record: str | None = None
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
            + f". Nothing was validated; the raw file {self.source.get('uri')} is kept. "
            f"Breach record: {self.breach_record}. Data Docs: {self.data_docs_url}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The XCom and JSON form (the keys and order every earlier run wrote)."""
        return {
            "use_case": self.use_case,
            "month": self.month,
            "severity": self.severity,
            "success": self.success,
            "summary": self.summary,
            "breaches": list(self.breaches),
            "warnings": list(self.warnings),
            "rows": self.rows,
            "quarantined_rows": self.quarantined_rows,
            "bad_row_share": self.bad_row_share,
            "rule_counts": dict(self.rule_counts),
            "source": dict(self.source),
            "suite": self.suite,
            "data_docs_url": self.data_docs_url,
            "snapshot": None if self.snapshot is None else self.snapshot.to_dict(),
            "quarantine": None if self.quarantine is None else self.quarantine.to_dict(),
            "breach_record": self.breach_record,
            "timings": dict(self.timings),
            "reading_counts": dict(self.reading_counts),
            "jumps": list(self.jumps),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContractOutcome:
        """Read an outcome back from XCom or JSON."""
        snapshot, quarantine = data.get("snapshot"), data.get("quarantine")
        return cls(
            use_case=str(data["use_case"]),
            month=str(data["month"]),
            severity=str(data["severity"]),
            success=bool(data["success"]),
            summary=str(data.get("summary", "")),
            breaches=tuple(data.get("breaches", ())),
            warnings=tuple(data.get("warnings", ())),
            rows=int(data["rows"]),
            quarantined_rows=int(data.get("quarantined_rows", 0)),
            bad_row_share=float(data.get("bad_row_share", 0.0)),
            rule_counts=dict(data.get("rule_counts") or {}),
            source=dict(data["source"]),
            suite=str(data["suite"]),
            data_docs_url=data.get("data_docs_url"),
            snapshot=None if snapshot is None else SnapshotWritten.from_dict(snapshot),
            quarantine=None if quarantine is None else QuarantineWritten.from_dict(quarantine),
            breach_record=data.get("breach_record"),
            timings=dict(data.get("timings") or {}),
            reading_counts={str(k): int(v) for k, v in dict(data.get("reading_counts") or {}).items()},
            jumps=tuple(data.get("jumps") or ()),
        )
