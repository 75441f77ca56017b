"""Judging a month's raw files against the use case's contract, without writing anything.

:func:`evaluate_files` (:func:`evaluate` for one file's bytes) runs the four steps over a
month's raw files and returns the :class:`Evaluation`, the verdict on the month:

1. **Read** each file and compare its schema with the TLC format (:func:`.raw.read_raw`);
2. **normalise** it; the month is their rows together, the ``taxi_type`` column keeping
   which file each came from;
3. **row rules** over all rows (:func:`.rules.check_rows`);
4. **checkpoint**: the month's contract profile validated by the use case's checkpoint
   (:func:`.suite.run_checkpoint`).

:func:`explain` turns the failed checks into English: each sentence names the thing that is
wrong (a file, a column, a count) and, where there is one, the command that fixes it; the
sentences end up in the outcome, the breach record, the Slack alert and the ``mlplatform
validate`` summary. :func:`mlplatform.stages.contracts.outcome.publish` writes what the
evaluation calls for.

Work that releases the GIL runs in threads alongside: hashing the files while they are
parsed, finding duplicates while the other rules are computed, and (with
``encode_snapshot``) encoding the snapshot while the checkpoint runs. :class:`Clock` records
the seconds per step that the outcome's ``timings`` report.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplatform.adapters import snapshots
from mlplatform.core.records import Record
from mlplatform.core.spec import UseCase
from mlplatform.stages.contracts.raw import RawFile, RawRead, read_raw
from mlplatform.stages.contracts.rules import (
    READING_NAMES,
    RULE_NAMES,
    MoneyFindings,
    VolumeBounds,
    check_rows,
    count,
    in_thread,
    money_findings,
    quarantine_table,
    volume_bounds,
)
from mlplatform.stages.contracts.suite import (
    NONE,
    Check,
    ContractProfile,
    contract_profile,
    gx_root,
    run_checkpoint,
)
from mlplatform.stages.contracts.trend import rule_jumps


@dataclass(frozen=True)
class SourceFile(Record):
    """One raw file of a month delivered as several (its taxi type's trips)."""

    path: str
    digest: str
    bytes: int
    rows: int
    taxi_type: str | None


@dataclass(frozen=True)
class RawSource(Record):
    """Where a month came from: the lineage the snapshot manifest, the breach record and the
    outcome carry.

    ``path`` and ``digest`` are the raw file's, or for a month of several files their common
    folder and a digest over the ``files`` listing; ``uri`` is filled in once the lake that
    holds the files is known (:func:`.outcome.publish`).
    """

    omitted_when_none: ClassVar[tuple[str, ...]] = ("files", "uri")

    path: str
    digest: str
    bytes: int
    rows: int
    files: tuple[SourceFile, ...] | None = None
    uri: str | None = None


@dataclass(frozen=True)
class ContractVerdict(Record):
    """The ``contract`` block of the snapshot manifest and the breach record (training gates
    on ``success``); only the rules and readings that occurred are listed."""

    success: bool
    severity: str
    suite: str
    bad_row_share: float
    quarantined_rows: int
    rows: int
    rule_counts: dict[str, int]
    rule_shares: dict[str, float]
    reading_counts: dict[str, int]
    volume: VolumeBounds
    breaches: tuple[str, ...]
    warnings: tuple[str, ...]
    jumps: tuple[str, ...]
    statistics: dict[str, int | float | None]  # GX's counts are ints, its percentages floats
    data_docs_url: str | None


@dataclass
class Evaluation:
    """The verdict on one raw month, and what to write."""

    use_case: str
    month: str
    suite: str
    source: RawSource
    rows: int
    rule_counts: dict[str, int]
    reading_counts: dict[str, int]
    """Rows ``fare_inconsistent`` accepted under each fare reading (:data:`.rules.FARE_READINGS`)."""
    bad_rows: int
    bad_row_share: float
    volume: VolumeBounds
    breaches: list[str]
    warnings: list[str]
    checks: list[Check]
    statistics: dict[str, float | None]
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

    def contract(self) -> ContractVerdict:
        """The ``contract`` block of the snapshot manifest (training gates on ``success``)."""
        return ContractVerdict(
            success=self.success,
            severity=self.severity,
            suite=self.suite,
            bad_row_share=self.bad_row_share,
            quarantined_rows=self.bad_rows,
            rows=self.rows,
            rule_counts={k: v for k, v in self.rule_counts.items() if v},
            rule_shares=self.rule_shares(),
            reading_counts={k: v for k, v in self.reading_counts.items() if v},
            volume=self.volume,
            breaches=tuple(self.breaches),
            warnings=tuple(self.warnings),
            jumps=tuple(self.jumps),
            statistics=self.statistics,
            data_docs_url=self.data_docs_url,
        )

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
            f"  source  {self.source.path} ({self.rows:,} rows, sha256 {self.source.digest[:12]})",
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


def evaluate(
    data: bytes,
    use_case: UseCase,
    month: str,
    *,
    source_path: str,
    history: Sequence[int] = (),
    root: Path | None = None,
    encode_snapshot: bool = False,
) -> Evaluation:
    """Check one raw file's bytes against the use case's contract (nothing is written).

    The file may hold any taxi type the use case lists; see :func:`evaluate_files`.
    """
    raw = RawFile(source_path, data, use_case.data.taxi_types)
    return evaluate_files([raw], use_case, month, history=history, root=root, encode_snapshot=encode_snapshot)


def evaluate_files(
    files: Sequence[RawFile],
    use_case: UseCase,
    month: str,
    *,
    history: Sequence[int] = (),
    root: Path | None = None,
    encode_snapshot: bool = False,
    rule_history: Sequence[Mapping[str, float]] = (),
) -> Evaluation:
    """Check a month's raw files (one per taxi type) against the use case's contract.

    Each file is read and normalised on its own; the month is their trips together (the
    ``taxi_type`` column says which file a row came from), judged as one: row rules, the
    volume against history and the bad-row share cover all of them, and a problem in any
    file breaches the month. Nothing is written.

    ``rule_history`` holds the rule shares of the previous validated months (oldest first):
    a rule whose share jumps far above their median is a warning (:func:`.trend.rule_jumps`).

    With ``encode_snapshot``, a thread encodes the rows that would be validated as a snapshot
    (in memory) while the checkpoint runs; ``outcome.publish`` stores it only if the contract holds.
    """
    if not files:
        raise ValueError(f"no raw file to validate for {use_case.name} {month}")
    clock = Clock()
    hashing = [in_thread(_sha256, f.data) for f in files]  # alongside the parse: hashlib releases the GIL
    reads = [read_raw(f.data, f.taxi_types, use_case.data.timezone_aware) for f in files]
    digests = [h.result() for h in hashing]
    clock.lap("read_and_normalise")
    checked = _check_rows(reads, use_case, month, encode_snapshot)
    clock.lap("row_rules")
    volume = volume_bounds(use_case, history)
    profile = contract_profile(
        files, reads, use_case, checked.rule_counts, checked.bad_row_share, checked.money
    )
    source = _source(files, reads, digests)
    checks, stats, docs_url, docs = run_checkpoint(
        use_case, month, source.digest, profile, volume, root or gx_root()
    )
    clock.lap("checkpoint")
    evaluation = Evaluation(
        use_case=use_case.name,
        month=month,
        suite=use_case.contract.suite,
        source=source,
        rows=profile.row_count,
        rule_counts=checked.rule_counts,
        reading_counts=checked.reading_counts,
        bad_rows=checked.bad_rows,
        bad_row_share=checked.bad_row_share,
        volume=volume,
        breaches=[],
        warnings=[],
        checks=checks,
        statistics=stats,
        data_docs_url=docs_url,
        valid=checked.valid,
        quarantined=checked.quarantined,
        encoded=checked.encoded,
        docs=docs,
        timings=clock.laps,
        outside_pickup_months=checked.outside_pickup_months,
    )
    evaluation.breaches, evaluation.warnings = explain(evaluation, use_case, profile)
    if not evaluation.breaches:
        evaluation.jumps = rule_jumps(rule_history, evaluation.rule_shares(), use_case)
    return evaluation


@dataclass
class _RowCheck:
    """Step 3 over the month: what the row rules found, and the rows on each side."""

    rule_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULE_NAMES, 0))
    reading_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(READING_NAMES, 0))
    money: MoneyFindings = field(default_factory=MoneyFindings)
    bad_rows: int = 0
    bad_row_share: float = 0.0
    valid: pa.Table | None = None
    quarantined: pa.Table | None = None
    encoded: Future[tuple[snapshots.Encoded, float]] | None = None
    outside_pickup_months: dict[str, int] = field(default_factory=dict)


def _check_rows(reads: Sequence[RawRead], use_case: UseCase, month: str, encode_snapshot: bool) -> _RowCheck:
    """The row rules over the trips of every readable file, together (none readable: nothing to check)."""
    readable = [r.trips for r in reads if r.trips is not None]
    checked = _RowCheck()
    if not readable:
        return checked
    trips = pa.concat_tables(readable)
    found = check_rows(trips, use_case, month)
    hits = found.masks
    checked.rule_counts = {name: count(hit) for name, hit in hits.items()}
    checked.reading_counts = found.readings
    checked.money = money_findings(trips, month)
    bad = functools.reduce(pc.or_, hits.values())
    checked.bad_rows = count(bad)
    checked.outside_pickup_months = pickup_months(trips, hits["pickup_outside_month"])
    checked.valid = trips.filter(pc.invert(bad)) if checked.bad_rows else trips
    if encode_snapshot:
        checked.encoded = in_thread(timed(snapshots.encode), checked.valid)
    if checked.bad_rows:
        masks = {name: hit.to_numpy() for name, hit in hits.items()}
        starts = np.cumsum([0] + [t.num_rows for t in readable])  # each file's first row
        checked.quarantined = quarantine_table(trips, masks, bad.to_numpy(), starts.tolist())
    checked.bad_row_share = checked.bad_rows / trips.num_rows if trips.num_rows else 0.0
    return checked


def pickup_months(trips: pa.Table, outside: pa.ChunkedArray, top: int = 3) -> dict[str, int]:
    """How many of the ``outside`` rows' pickups fall in each month (the ``top`` months, most first)."""
    if not count(outside):
        return {}
    pickups = trips.column("pickup_datetime").filter(outside)
    keys = pc.add(pc.multiply(pc.year(pickups), 100), pc.month(pickups))  # 202403 for 2024-03
    counted = sorted(
        ((int(c["counts"]), int(c["values"])) for c in pc.value_counts(keys).to_pylist() if c["values"]),
        reverse=True,
    )
    return {f"{key // 100:04d}-{key % 100:02d}": n for n, key in counted[:top]}


def _source(files: Sequence[RawFile], reads: Sequence[RawRead], digests: Sequence[str]) -> RawSource:
    """Where the month came from: its file (or files, and a digest over all of them) and rows."""
    rows = sum(r.rows for r in reads)
    if len(files) == 1:
        return RawSource(files[0].path, digests[0], len(files[0].data), rows)
    listing = tuple(
        SourceFile(f.path, d, len(f.data), r.rows, r.taxi_type)
        for f, r, d in zip(files, reads, digests, strict=True)
    )
    return RawSource(
        path=_common_folder([f.path for f in files]),
        digest=_sha256("".join(f"{x.path}\t{x.digest}\n" for x in listing).encode()),
        bytes=sum(x.bytes for x in listing),
        rows=rows,
        files=listing,
    )


def _common_folder(paths: Sequence[str]) -> str:
    folders = {p.rsplit("/", 1)[0] if "/" in p else "." for p in paths}
    return folders.pop() if len(folders) == 1 else ", ".join(paths)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- English for a failed contract ------------------------------------------------------------


def explain(ev: Evaluation, use_case: UseCase, profile: ContractProfile) -> tuple[list[str], list[str]]:
    """Human sentences for the failed checks: what broke and what to do about it."""
    failed = {c.check for c in ev.checks if not c.success}
    breaches: list[str] = []
    unreadable = profile.file_problem != NONE
    if "file_problem" in failed:
        breaches.append(f"unreadable file: {profile.file_problem}; re-deliver the month as TLC parquet")
    if "taxi_type" in failed:
        breaches.append(
            f"wrong taxi type: the file holds {profile.unlisted_taxi_type}; land each taxi type's "
            f"file under its own name (mlplatform ingest FILE --use-case {use_case.name} --month {ev.month})"
        )
    if "missing_columns" in failed:
        renamed = (
            f" (unexpected columns: {profile.unexpected_columns})"
            if profile.unexpected_columns != NONE
            else ""
        )
        breaches.append(f"schema broken: required column(s) missing: {profile.missing_columns}{renamed}")
    if "mistyped_columns" in failed:
        breaches.append(f"schema broken: column type(s) TLC never used: {profile.mistyped_columns}")
    if "all_null_columns" in failed:
        breaches.append(f"key column(s) entirely empty: {profile.all_null_columns}")
    if "money_units" in failed:
        breaches.append(profile.money_units)
    if "row_count" in failed and not unreadable:
        breaches.append("the file has no rows")
    elif "volume" in failed and not unreadable:
        v = ev.volume
        breaches.append(
            f"volume far off history: {ev.rows:,} rows, allowed {v.min_rows:,}..{v.max_rows:,} "
            f"({use_case.contract.volume_band[0]}x..{use_case.contract.volume_band[1]}x the median "
            f"{v.median_rows:,.0f} of the previous {v.history_months} months)"
        )
    if "bad_row_share" in failed:
        top = sorted(((n, k) for k, n in ev.rule_counts.items() if n), reverse=True)[:3]
        breaches.append(
            f"too many bad rows: {ev.bad_rows:,} of {ev.rows:,} ({ev.bad_row_share:.1%}) break row rules, "
            f"above the {use_case.contract.max_bad_row_share:.1%} allowed; most: "
            + ", ".join(f"{k} {n:,} ({n / ev.rows:.1%})" for n, k in top)
        )
    if mismatch := month_mismatch(ev):
        (breaches if "bad_row_share" in failed else []).append(mismatch)
    for c in ev.checks:  # an expectation that could not be evaluated is a breach too
        if isinstance(c.observed, str) and c.observed.startswith("error:") and c.severity == "breach":
            breaches.append(f"contract check {c.check} could not run: {c.observed}")
    warnings = []
    if mismatch and "bad_row_share" not in failed:
        warnings.append(mismatch)
    if "misnamed_files" in failed:
        warnings.append(f"file named as the other taxi type: {profile.misnamed_files}")
    if "empty_surcharge_columns" in failed:
        warnings.append(f"surcharge column empty: {profile.empty_surcharge_columns}")
    if "unexpected_columns" in failed:
        warnings.append(f"unexpected column(s) dropped: {profile.unexpected_columns}")
    return breaches, warnings


def month_mismatch(ev: Evaluation) -> str | None:
    """A sentence when most pickups fall in another month than the one validated; else ``None``.

    Real months have a few pickups outside (trips begun the evening before); a month whose
    pickups are mostly elsewhere was named or landed under the wrong month.
    """
    if not ev.outside_pickup_months:
        return None
    other, n = next(iter(ev.outside_pickup_months.items()))
    inside = ev.rows - ev.rule_counts.get("pickup_outside_month", 0)
    if n <= inside:
        return None
    return (
        f"month mismatch: the data's pickups are in {other} ({n:,} of {ev.rows:,} rows), not in "
        f"{ev.month}, the month it was named or landed as; check the file name "
        "(<type>_tripdata_YYYY-MM.parquet), --month, or the month it was ingested under"
    )


# -- step timings ------------------------------------------------------------------------------


def timed(fn: Callable[..., Any]) -> Callable[..., tuple[Any, float]]:
    """``fn`` returning its result and the seconds it took."""

    @functools.wraps(fn)
    def timed(*args: Any) -> tuple[Any, float]:
        started = time.perf_counter()
        return fn(*args), time.perf_counter() - started

    return timed


class Clock:
    """Seconds per step, for logs and the benchmark."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.laps[step] = round(now - self._last, 3)
        self._last = now
