"""Judging a month's raw files against the use case's contract, without writing anything.

:func:`evaluate_files` runs the four steps (read, normalise, row rules, checkpoint) over a
month's raw files and returns the :class:`~mlplatform.stages.contracts.checkpoint.Evaluation`;
:func:`mlplatform.stages.contracts.results.publish` writes what it calls for. Work that
releases the GIL runs in threads alongside: hashing the files while they are parsed,
finding duplicates while the other rules are computed, and (with ``encode_snapshot``)
encoding the snapshot while the checkpoint runs.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplatform.adapters import snapshots
from mlplatform.core.spec import UseCase
from mlplatform.stages.contracts.arrays import count
from mlplatform.stages.contracts.checkpoint import Evaluation, run_checkpoint
from mlplatform.stages.contracts.context import gx_root
from mlplatform.stages.contracts.explain import explain
from mlplatform.stages.contracts.masks import check_rows, quarantine_table
from mlplatform.stages.contracts.money import MoneyFindings, money_findings
from mlplatform.stages.contracts.profile import contract_profile
from mlplatform.stages.contracts.raw import RawFile, RawRead, read_raw
from mlplatform.stages.contracts.rules import READING_NAMES, RULE_NAMES
from mlplatform.stages.contracts.threads import Clock, in_thread, timed
from mlplatform.stages.contracts.trend import rule_jumps
from mlplatform.stages.contracts.volume import volume_bounds


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
    (in memory) while the checkpoint runs; ``results.publish`` stores it only if the contract holds.
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
        use_case, month, source["digest"], profile, volume, root or gx_root()
    )
    clock.lap("checkpoint")
    evaluation = Evaluation(
        use_case=use_case.name,
        month=month,
        suite=use_case.contract.suite,
        source=source,
        rows=profile["row_count"],
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


def _source(files: Sequence[RawFile], reads: Sequence[RawRead], digests: Sequence[str]) -> dict[str, Any]:
    """Where the month came from: its file (or files, and a digest over all of them) and rows."""
    rows = sum(r.rows for r in reads)
    if len(files) == 1:
        return {"path": files[0].path, "digest": digests[0], "bytes": len(files[0].data), "rows": rows}
    listing = [
        {"path": f.path, "digest": d, "bytes": len(f.data), "rows": r.rows, "taxi_type": r.taxi_type}
        for f, r, d in zip(files, reads, digests, strict=True)
    ]
    return {
        "path": _common_folder([f.path for f in files]),
        "digest": _sha256("".join(f"{x['path']}\t{x['digest']}\n" for x in listing).encode()),
        "bytes": sum(x["bytes"] for x in listing),
        "rows": rows,
        "files": listing,
    }


def _common_folder(paths: Sequence[str]) -> str:
    folders = {p.rsplit("/", 1)[0] if "/" in p else "." for p in paths}
    return folders.pop() if len(folders) == 1 else ", ".join(paths)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
