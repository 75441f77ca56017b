"""Landing raw TLC months in the lake's raw zone, generated or real.

Raw objects are written once. Landing the same bytes again is a no-op; landing different
bytes for a month that already has a file is refused unless ``replace`` is asked for, and
then the previous delivery is kept under ``superseded/`` first, so raw data is never lost.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import pyarrow.parquet as pq

from mlplatform.adapters.lake import Lake
from mlplatform.core import generator, tlc


class LandingError(RuntimeError):
    """A raw file cannot be landed as asked."""


@dataclass(frozen=True)
class Landed:
    path: str
    digest: str
    rows: int
    changed: bool  # False when the identical file was already there


def land_bytes(
    lake: Lake, dataset: str, taxi_type: tlc.TaxiType, month: str, data: bytes, replace: bool = False
) -> Landed:
    """Put one raw monthly file into ``raw/<dataset>/month=<month>/``."""
    path = Lake.raw_path(dataset, taxi_type, month)
    digest = hashlib.sha256(data).hexdigest()
    try:
        rows = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
    except Exception:
        rows = -1  # not readable parquet: landed as delivered, the contract will say why
    if lake.exists(path):
        existing = lake.digest(path)
        if existing == digest:
            return Landed(path, digest, rows, changed=False)
        if not replace:
            raise LandingError(
                f"{lake.uri(path)} already holds a different delivery (sha256 {existing[:12]}); "
                "pass replace=True (--replace) to supersede it; the old file is kept under superseded/"
            )
        folder = path.rsplit("/", 1)[0]
        lake.write_bytes(f"{folder}/superseded/{existing}.parquet", lake.read_bytes(path))
    lake.write_bytes(path, data)
    return Landed(path, digest, rows, changed=True)


def land_generated(
    lake: Lake,
    dataset: str,
    taxi_type: tlc.TaxiType,
    month: str,
    rows: int,
    seed: int = 0,
    drift: generator.Drift = generator.Drift(),
    replace: bool = False,
) -> tuple[Landed, generator.GeneratedMonth]:
    """Generate a month and land it."""
    made = generator.generate_month(taxi_type, month, rows, seed=seed, drift=drift)
    buffer = io.BytesIO()
    pq.write_table(made.table, buffer)
    return land_bytes(lake, dataset, taxi_type, month, buffer.getvalue(), replace=replace), made
