"""Step 4: the checkpoint run over the month's contract profile, and the evaluation record.

:func:`run_checkpoint` validates the profile with the use case's checkpoint and starts
rendering the result's Data Docs page in a thread. :class:`Evaluation` is the verdict on
a month: what was checked and found, the rows to validate or quarantine, and the contract
block the snapshot manifest carries (training gates on its ``success``).
"""

from __future__ import annotations

import json
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from mlplatform.adapters import snapshots
from mlplatform.core.spec import UseCase
from mlplatform.stages.contracts.context import DATA_DOCS_SITE, checkpoint_name, open_context
from mlplatform.stages.contracts.threads import in_thread


@dataclass
class Check:
    """One expectation's outcome."""

    check: str
    severity: str
    success: bool
    observed: Any
    rule: str


@dataclass
class Evaluation:
    """The verdict on one raw month, and what to write."""

    use_case: str
    month: str
    suite: str
    source: dict[str, Any]
    rows: int
    rule_counts: dict[str, int]
    reading_counts: dict[str, int]
    """Rows ``fare_inconsistent`` accepted under each fare reading (:data:`.rules.FARE_READINGS`)."""
    bad_rows: int
    bad_row_share: float
    volume: dict[str, Any]
    breaches: list[str]
    warnings: list[str]
    checks: list[Check]
    statistics: dict[str, Any]
    data_docs_url: str | None
    valid: pa.Table | None = field(default=None, repr=False)
    quarantined: pa.Table | None = field(default=None, repr=False)
    encoded: Future[tuple[snapshots.Encoded, float]] | None = field(default=None, repr=False)
    """``valid`` being encoded as a snapshot, and the seconds that took (``encode_snapshot``)."""
    docs: Future[Any] | None = field(default=None, repr=False)
    """Data Docs for this result, rendered in a thread while the rest of the step runs."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent in each step."""
    outside_pickup_months: dict[str, int] = field(default_factory=dict)
    """Pickups outside the month, by the month they fall in (most first): a month named wrongly shows here."""
    jumps: list[str] = field(default_factory=list)
    """Rules whose share jumped far above their trailing median (warnings: :mod:`.trend`)."""

    def docs_rendered(self) -> None:
        """Wait until the result's Data Docs page exists (its link is in every alert)."""
        if self.docs is not None:
            self.docs.result()

    @property
    def success(self) -> bool:
        """The contract holds: nothing breached (rows may still have been quarantined)."""
        return not self.breaches

    @property
    def severity(self) -> str:
        """``breach``, ``quarantine`` (passed, some rows set aside) or ``pass``."""
        if self.breaches:
            return "breach"
        return "quarantine" if self.bad_rows else "pass"

    def contract(self) -> dict[str, Any]:
        """The ``contract`` block of the snapshot manifest (training gates on ``success``)."""
        return {
            "success": self.success,
            "severity": self.severity,
            "suite": self.suite,
            "bad_row_share": self.bad_row_share,
            "quarantined_rows": self.bad_rows,
            "rows": self.rows,
            "rule_counts": {k: v for k, v in self.rule_counts.items() if v},
            "rule_shares": self.rule_shares(),
            "reading_counts": {k: v for k, v in self.reading_counts.items() if v},
            "volume": self.volume,
            "breaches": self.breaches,
            "warnings": self.warnings,
            "jumps": self.jumps,
            "statistics": self.statistics,
            "data_docs_url": self.data_docs_url,
        }

    def rule_shares(self) -> dict[str, float]:
        """Share of the month's rows each rule quarantined (rules that hit nothing left out)."""
        return {k: round(n / self.rows, 6) for k, n in self.rule_counts.items() if n and self.rows}

    def summary(self) -> str:
        """A few lines a person reads first: the verdict, the source, the quarantine share per rule."""
        verdict = {
            "pass": "PASSED",
            "quarantine": f"PASSED with {self.bad_rows:,} rows quarantined ({self.bad_row_share:.2%})",
            "breach": "BREACHED: nothing validated",
        }[self.severity]
        lines = [
            f"{self.use_case} {self.month}: contract {self.suite} {verdict}",
            f"  source  {self.source.get('path')} ({self.rows:,} rows, sha256 {self.source['digest'][:12]})",
        ]
        lines += [f"  BREACH  {b}" for b in self.breaches]
        if self.bad_rows:
            lines += [
                f"  rows    {n:>9,}  {n / self.rows:>6.2%}  {name}"
                for name, n in self.rule_counts.items()
                if n
            ]
        lines += [
            f"  reading {n:>9,}  {n / self.rows:>6.2%}  fare_reading.{name}"
            for name, n in self.reading_counts.items()
            if n
        ]
        lines += [f"  JUMP    {j}" for j in self.jumps]
        lines += [f"  notice  {w}" for w in self.warnings]
        if self.data_docs_url:
            lines.append(f"  docs    {self.data_docs_url}")
        return "\n".join(lines)


def run_checkpoint(
    use_case: UseCase, month: str, digest: str, profile: dict[str, Any], volume: dict[str, Any], root: Path
) -> tuple[list[Check], dict[str, Any], str | None, Future[Any]]:
    """Validate ``profile`` with the use case's checkpoint.

    Returns the checks, their statistics, the result's Data Docs URL and the future of its
    page, which a thread renders while the step writes its outputs.
    """
    import pandas as pd
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.exceptions.exceptions import DataContextError

    context = open_context(root)
    try:
        checkpoint = context.checkpoints.get(checkpoint_name(use_case))
    except DataContextError:
        raise FileNotFoundError(
            f"no checkpoint {checkpoint_name(use_case)} in {root}: the use case is new or its "
            "contract changed; run `mlplatform contracts sync` and commit "
            "great_expectations/"
        ) from None
    result = checkpoint.run(
        batch_parameters={"dataframe": pd.DataFrame([profile])},
        expectation_parameters={"volume_min_rows": volume["min_rows"], "volume_max_rows": volume["max_rows"]},
        run_id=RunIdentifier(run_name=f"{use_case.name}-{month}-{digest[:12]}", run_time=datetime.now(UTC)),
    )
    identifier, validation = next(iter(result.run_results.items()))
    checks = _checks(validation)
    docs = in_thread(
        lambda: context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=[identifier])
    )
    urls = context.get_docs_sites_urls(
        resource_identifier=identifier, site_names=[DATA_DOCS_SITE], only_if_exists=False
    )
    docs_url = next((u["site_url"] for u in urls if u.get("site_url")), None)
    return checks, _plain(dict(validation.statistics)), docs_url, docs


def _checks(validation: Any) -> list[Check]:
    """Each expectation's outcome, named and graded by its ``meta``."""
    checks = []
    for r in validation.results:
        meta = r.expectation_config.meta or {}
        observed = r.result.get("observed_value", r.result.get("partial_unexpected_list"))
        if r.exception_info and r.exception_info.get("raised_exception"):
            observed = f"error: {r.exception_info.get('exception_message')}"
        checks.append(
            Check(
                check=meta.get("check", r.expectation_config.type),
                severity=meta.get("severity", "breach"),
                success=bool(r.success),
                observed=_plain(observed),
                rule=meta.get("rule", ""),
            )
        )
    return checks


def _plain(value: Any) -> Any:
    """JSON-ready copy (numpy scalars and the like become plain numbers and strings)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
