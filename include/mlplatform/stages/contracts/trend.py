"""The trend of each row rule: month by month, the share of rows it quarantined, and its jumps.

One :class:`RuleTrend` per month × rule (and per month × fare reading, named
``fare_reading.<reading>``), oldest month first, from either source:

- :func:`lake_trend`: the contract outcomes stored in the lake, the ``contract`` block of
  each month's current snapshot manifest, or of its breach record when the newest delivery
  breached (the MLOps page charts these records);
- :func:`folder_trend`: a folder of TLC files, each month validated in memory by the row
  rules (nothing written, no checkpoint).

:func:`rule_jumps` is the warning the validate stage raises when a rule's share jumps above
``contract.trend_jump_factor`` times its trailing median of previous months (and above
``contract.trend_jump_floor``): a change in the data worth a look, not a breach.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import tlc
from mlplatform.core.spec import UseCase
from mlplatform.stages.contracts.raw import read_raw
from mlplatform.stages.contracts.rules import HISTORY_MONTHS, READING_NAMES, RULE_NAMES, check_rows, count

MIN_HISTORY_MONTHS = 3
"""Previous months a trailing median needs before a jump is judged: real months differ by
more than the factor now and then (green 2021-02 quarantines 4.8x the fare_inconsistent share
of 2021-01: $5.00 tips added twice by one vendor), and one such month is no usual range."""
READING_PREFIX = "fare_reading."
"""How a fare reading is named among a trend's rules: ``fare_reading.improvement_surcharge_excluded``."""


@dataclass(frozen=True)
class MonthCounts:
    """A month's contract outcome as the trend needs it: rows, and the rows per rule and reading."""

    month: str
    rows: int
    rule_counts: Mapping[str, int]
    reading_counts: Mapping[str, int] = field(default_factory=dict)
    severity: str = "pass"
    jumps: tuple[str, ...] = ()

    @property
    def rule_shares(self) -> dict[str, float]:
        return {k: n / self.rows for k, n in self.rule_counts.items() if self.rows}

    @classmethod
    def from_contract(cls, month: str, block: Mapping[str, Any], rows: Any = None) -> MonthCounts:
        """Read the ``contract`` block a snapshot manifest or breach record stores."""
        counts = {str(k): int(v) for k, v in dict(block.get("rule_counts") or {}).items()}
        rows = block.get("rows", rows)
        if not isinstance(rows, int):
            rows = (block.get("statistics") or {}).get("row_count", 0)
        return cls(
            month=month,
            rows=int(rows or 0),
            rule_counts=counts,
            reading_counts={str(k): int(v) for k, v in dict(block.get("reading_counts") or {}).items()},
            severity=str(block.get("severity") or "pass"),
            jumps=tuple(str(j) for j in block.get("jumps") or ()),
        )


@dataclass(frozen=True)
class RuleTrend:
    """One rule (or fare reading) in one month: the rows it quarantined (or explained) and their share."""

    month: str
    rule: str
    rows: int
    count: int
    share: float
    severity: str
    """The month's contract verdict: ``pass``, ``quarantine`` or ``breach``."""
    jump: bool = False
    """The share jumped above the rule's trailing median (see :func:`rule_jumps`)."""


def trend(months: Iterable[MonthCounts], use_case: UseCase) -> list[RuleTrend]:
    """One record per month × rule, and per month × fare reading seen in any month; oldest first.

    A rule's ``jump`` is the warning its month raised when validated (stored in its outcome),
    or what :func:`rule_jumps` finds against the previous months that were not breached.
    """
    ordered = sorted(months, key=lambda m: m.month)
    readings = [r for r in READING_NAMES if any(m.reading_counts.get(r) for m in ordered)]
    records: list[RuleTrend] = []
    for i, m in enumerate(ordered):
        previous = [p.rule_shares for p in ordered[:i] if p.severity != "breach"]  # as validation reads it
        jumped = {rule for rule, _ in _jumped(previous, m.rule_shares, use_case)}
        jumped |= {rule for rule in RULE_NAMES if any(j.startswith(f"{rule} jumped") for j in m.jumps)}
        for rule in RULE_NAMES:
            n = int(m.rule_counts.get(rule, 0))
            records.append(RuleTrend(m.month, rule, m.rows, n, _share(n, m.rows), m.severity, rule in jumped))
        for reading in readings:
            n = int(m.reading_counts.get(reading, 0))
            records.append(
                RuleTrend(m.month, READING_PREFIX + reading, m.rows, n, _share(n, m.rows), m.severity)
            )
    return records


def _share(n: int, rows: int) -> float:
    return n / rows if rows else 0.0


def rule_jumps(
    history: Sequence[Mapping[str, float]], shares: Mapping[str, float], use_case: UseCase
) -> list[str]:
    """A warning per rule whose share jumped above its trailing median of previous months.

    ``history`` holds the previous months' rule shares (oldest first; the latest
    :data:`~.rules.HISTORY_MONTHS` count); with fewer than :data:`MIN_HISTORY_MONTHS`, no jump.
    A jump is a share above ``contract.trend_jump_factor`` times the median and above
    ``contract.trend_jump_floor``.
    """
    c = use_case.contract
    return [
        f"{rule} jumped to {share:.2%} of rows from a trailing median of {median:.2%} over the previous "
        f"{min(len(history), HISTORY_MONTHS)} months (more than contract.trend_jump_factor "
        f"{c.trend_jump_factor:g}x): look at what changed in the data"
        for rule, (share, median) in _jumped(history, shares, use_case)
    ]


def _jumped(
    history: Sequence[Mapping[str, float]], shares: Mapping[str, float], use_case: UseCase
) -> list[tuple[str, tuple[float, float]]]:
    recent = list(history)[-HISTORY_MONTHS:]
    if len(recent) < MIN_HISTORY_MONTHS:
        return []
    c = use_case.contract
    found = []
    for rule in RULE_NAMES:
        share = float(shares.get(rule, 0.0))
        median = float(statistics.median(float(h.get(rule, 0.0)) for h in recent))
        if share > max(c.trend_jump_floor, c.trend_jump_factor * median):
            found.append((rule, (share, median)))
    return found


def history_rule_shares(lake: Lake, use_case: UseCase, month: str) -> list[dict[str, float]]:
    """The rule shares of the latest validated months before ``month``, oldest first."""
    earlier = [m for m in lake_months(lake, use_case) if m.month < month and m.severity != "breach"]
    return [m.rule_shares for m in earlier[-HISTORY_MONTHS:]]


def lake_months(lake: Lake, use_case: UseCase) -> list[MonthCounts]:
    """Each month's newest stored contract outcome, oldest month first.

    Passing months come from their current snapshot's manifest, breached ones from their
    breach records; when a month has both, the newer one counts.
    """
    found: dict[str, tuple[str, MonthCounts]] = {}
    for snapshot in snapshots.current_snapshots(lake, use_case.name):
        manifest = snapshot.manifest
        block = manifest.get("contract") or {}
        rows = (manifest.get("source") or {}).get("rows", snapshot.rows)
        found[snapshot.month] = (
            str(manifest.get("created_at") or ""),
            MonthCounts.from_contract(snapshot.month, block, rows),
        )
    for entry in lake.list(f"quarantine/{use_case.name}"):
        if not entry.path.endswith("/breach.json"):
            continue
        try:
            record = lake.read_json(entry.path)
        except ValueError:  # a damaged record is not a month's outcome; the others still count
            continue
        if not isinstance(record, dict):
            continue
        month = str(record.get("month") or entry.path.split("/")[2].removeprefix("month="))
        recorded = str(record.get("recorded_at") or "")
        block = {"severity": "breach", **(record.get("contract") or {})}
        if month not in found or recorded > found[month][0]:
            found[month] = (recorded, MonthCounts.from_contract(month, block))
    return [found[m][1] for m in sorted(found)]


def lake_trend(lake: Lake, use_case: UseCase) -> list[RuleTrend]:
    """The trend of the contract outcomes stored in the lake."""
    return trend(lake_months(lake, use_case), use_case)


def folder_months(folder: Path, use_case: UseCase) -> list[MonthCounts]:
    """Each month of a folder of TLC files (``<type>_tripdata_YYYY-MM.parquet``), judged in memory.

    Files of the use case's taxi types are read; a month of several types is judged as one.
    Files that cannot be read or normalised count as a breached month with no rows.
    """
    by_month: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        name = tlc.parse_file_name(path.name)
        if name is not None and name.taxi_type in use_case.data.taxi_types and path.is_file():
            by_month.setdefault(name.month, []).append(path)
    months = []
    for month, paths in sorted(by_month.items()):
        reads = [
            read_raw(p.read_bytes(), use_case.data.taxi_types, use_case.data.timezone_aware) for p in paths
        ]
        tables = [r.trips for r in reads if r.trips is not None]
        if len(tables) < len(reads) or not tables:
            months.append(MonthCounts(month, sum(r.rows for r in reads), {}, severity="breach"))
            continue
        trips = pa.concat_tables(tables)
        found = check_rows(trips, use_case, month)
        counts = {name: count(hit) for name, hit in found.masks.items()}
        bad = count(functools.reduce(pc.or_, found.masks.values())) / max(trips.num_rows, 1)
        verdict = "breach" if bad > use_case.contract.max_bad_row_share else "quarantine" if bad else "pass"
        months.append(MonthCounts(month, trips.num_rows, counts, found.readings, verdict))
    return months


def folder_trend(folder: Path, use_case: UseCase) -> list[RuleTrend]:
    """The trend of a folder of TLC files, each month judged in memory."""
    return trend(folder_months(folder, use_case), use_case)
