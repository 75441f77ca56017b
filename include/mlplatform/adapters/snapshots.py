"""Validated snapshots: immutable, versioned monthly data that training and scoring read.

A snapshot is the normalised, contract-checked data of one month, addressed by month and
the SHA-256 digest of its parquet bytes::

    validated/<use case>/month=YYYY-MM/<digest>/data.parquet
    validated/<use case>/month=YYYY-MM/<digest>/manifest.json
    validated/<use case>/month=YYYY-MM/CURRENT.json      {"digest": ..., "path": ...}

Snapshot objects are written once and never changed. ``CURRENT.json`` is written last and
names the version in force, so a reader never sees a half-written snapshot, and writing
the same data again is a no-op that yields the identical snapshot.

:func:`encode` turns a table into the snapshot's bytes and digest without touching the
lake, so a caller can encode while it still decides whether the data may be stored (the
validation encodes while the contract checkpoint runs) and store it with
:func:`write_snapshot` only once it may.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlplatform.adapters.lake import Lake


@dataclass(frozen=True)
class Snapshot:
    use_case: str
    month: str
    digest: str
    manifest: dict[str, Any]

    @property
    def folder(self) -> str:
        return f"validated/{self.use_case}/month={self.month}/{self.digest}"

    @property
    def data_path(self) -> str:
        return f"{self.folder}/data.parquet"

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"])


def month_folder(use_case: str, month: str) -> str:
    """The folder of a month's validated snapshots and its ``CURRENT.json`` pointer."""
    return f"validated/{use_case}/month={month}"


@dataclass(frozen=True)
class Encoded:
    """A table encoded as snapshot bytes, with their digest: nothing stored yet."""

    data: pa.Buffer
    digest: str
    rows: int
    schema: dict[str, str]


def encode(table: pa.Table) -> Encoded:
    """The snapshot bytes of ``table`` (parquet) and their SHA-256; the same table gives the same bytes.

    Validation encodes a snapshot for every month it passes, so these settings are on its
    hot path. Dictionary encoding already shrinks the repetitive columns (codes, zones,
    surcharges, rounded money) about fivefold, and a general-purpose codec on top saves
    only a few percent (LZ4: ~3%) for ~30% more encoding time, so pages are stored
    uncompressed. Timestamps are nearly unique per trip: a dictionary would be built and
    abandoned, so they are stored plain. Min/max statistics are kept for the timestamps,
    the columns a query prunes row groups by; nothing in the platform filters on the others.
    The writer runs without the GIL, so a thread can encode while Python code runs.
    """
    timestamps = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="none",
        use_dictionary=[name for name in table.column_names if name not in timestamps],
        write_statistics=timestamps,
    )
    data = sink.getvalue()
    return Encoded(
        data=data,
        digest=hashlib.sha256(data).hexdigest(),
        rows=table.num_rows,
        schema={f.name: str(f.type) for f in table.schema},
    )


def write_snapshot(
    lake: Lake, use_case: str, month: str, table: pa.Table | Encoded, manifest: dict[str, Any]
) -> tuple[Snapshot, bool]:
    """Store ``table`` as the current snapshot of ``month``; returns it and whether it is new.

    ``table`` may be given already encoded (:func:`encode`). ``manifest`` holds what the
    caller knows (source file digest, contract results); the row count, schema, digest and
    creation time are added here.
    """
    encoded = table if isinstance(table, Encoded) else encode(table)
    digest = encoded.digest
    snapshot = Snapshot(use_case, month, digest, {})
    current = current_snapshot(lake, use_case, month)
    if current is not None and current.digest == digest:
        return current, False
    if not lake.exists(f"{snapshot.folder}/manifest.json"):
        full = {
            **manifest,
            "use_case": use_case,
            "month": month,
            "digest": digest,
            "rows": encoded.rows,
            "schema": encoded.schema,
            "created_at": datetime.now(UTC).isoformat(),
        }
        lake.write_bytes(snapshot.data_path, memoryview(encoded.data))
        lake.write_json(f"{snapshot.folder}/manifest.json", full)
    lake.write_json(
        f"{month_folder(use_case, month)}/CURRENT.json", {"digest": digest, "path": snapshot.data_path}
    )
    return read_snapshot(lake, use_case, month, digest), True


def read_snapshot(lake: Lake, use_case: str, month: str, digest: str) -> Snapshot:
    """A snapshot by its address (month and digest)."""
    folder = f"{month_folder(use_case, month)}/{digest}"
    if not lake.exists(f"{folder}/manifest.json"):
        raise FileNotFoundError(f"no snapshot {digest[:12]} of {use_case} for {month} in {lake.uri(folder)}")
    return Snapshot(use_case, month, digest, lake.read_json(f"{folder}/manifest.json"))


def current_snapshot(lake: Lake, use_case: str, month: str) -> Snapshot | None:
    """The snapshot in force for ``month``, or ``None`` when the month has none yet."""
    pointer = f"{month_folder(use_case, month)}/CURRENT.json"
    if not lake.exists(pointer):
        return None
    return read_snapshot(lake, use_case, month, lake.read_json(pointer)["digest"])


def current_snapshots(lake: Lake, use_case: str) -> list[Snapshot]:
    """The current snapshot of every month that has one, oldest month first."""
    months = sorted(
        e.path.split("/")[2].removeprefix("month=")
        for e in lake.list(f"validated/{use_case}")
        if e.path.endswith("/CURRENT.json")
    )
    return [s for m in months if (s := current_snapshot(lake, use_case, m)) is not None]


def read_table(lake: Lake, snapshot: Snapshot, columns: list[str] | None = None) -> pa.Table:
    return lake.read_parquet(snapshot.data_path, columns=columns)
