"""Validated snapshots: immutable, versioned monthly data that training and scoring read.

A snapshot is the normalised, contract-checked data of one month, addressed by month and
the SHA-256 digest of its parquet bytes::

    validated/<use case>/month=YYYY-MM/<digest>/data.parquet
    validated/<use case>/month=YYYY-MM/<digest>/manifest.json
    validated/<use case>/month=YYYY-MM/CURRENT.json      {"digest": ..., "path": ...}

Snapshot objects are written once and never changed. ``CURRENT.json`` is written last and
names the version in force, so a reader never sees a half-written snapshot, and writing
the same data again is a no-op that yields the identical snapshot.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlplatform.lake import Lake


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


def _month_folder(use_case: str, month: str) -> str:
    return f"validated/{use_case}/month={month}"


def write_snapshot(
    lake: Lake, use_case: str, month: str, table: pa.Table, manifest: dict[str, Any]
) -> tuple[Snapshot, bool]:
    """Store ``table`` as the current snapshot of ``month``; returns it and whether it is new.

    ``manifest`` holds what the caller knows (source file digest, contract results); the
    row count, schema, digest and creation time are added here.
    """
    buffer = io.BytesIO()
    # LZ4: about three times faster to write than zstd for a month of trips, at ~15% more bytes;
    # validation writes a snapshot for every month it passes, so the write is on its hot path.
    pq.write_table(table, buffer, compression="lz4")
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
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
            "rows": table.num_rows,
            "schema": {f.name: str(f.type) for f in table.schema},
            "created_at": datetime.now(UTC).isoformat(),
        }
        lake.write_bytes(snapshot.data_path, data)
        lake.write_json(f"{snapshot.folder}/manifest.json", full)
    lake.write_json(
        f"{_month_folder(use_case, month)}/CURRENT.json", {"digest": digest, "path": snapshot.data_path}
    )
    return read_snapshot(lake, use_case, month, digest), True


def read_snapshot(lake: Lake, use_case: str, month: str, digest: str) -> Snapshot:
    """A snapshot by its address (month and digest)."""
    folder = f"{_month_folder(use_case, month)}/{digest}"
    if not lake.exists(f"{folder}/manifest.json"):
        raise FileNotFoundError(f"no snapshot {digest[:12]} of {use_case} for {month} in {lake.uri(folder)}")
    return Snapshot(use_case, month, digest, lake.read_json(f"{folder}/manifest.json"))


def current_snapshot(lake: Lake, use_case: str, month: str) -> Snapshot | None:
    """The snapshot in force for ``month``, or ``None`` when the month has none yet."""
    pointer = f"{_month_folder(use_case, month)}/CURRENT.json"
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
