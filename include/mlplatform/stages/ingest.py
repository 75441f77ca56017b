"""Landing raw TLC months in the lake's raw zone, generated, real, or from the source.

Raw objects are written once. Landing the same bytes again is a no-op; landing different
bytes for a month that already has a file is refused unless ``replace`` is asked for, and
then the previous delivery is kept under ``superseded/`` first, so raw data is never lost.

The ingest DAG lands months from a source prefix (:func:`source_prefix`: TLC's public
download location by default, or any ``s3://``, ``file://`` or ``https://`` folder holding
files named as TLC names them). TLC publishes a month weeks after it ends:
:func:`published` says which files are there yet, :func:`deadline` when a month that has not
arrived is late, and :func:`land_from_source` lands what is there, never replacing a file.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from mlplatform.adapters import settings
from mlplatform.adapters.lake import Lake
from mlplatform.core import generator, months, tlc

# TLC's public download location (the links on its trip-record data page).
TLC_SOURCE = "https://d37ci6vzurychx.cloudfront.net/trip-data"
# TLC has published each month within about two months of its end.
DEFAULT_DEADLINE_DAYS = 75


class LandingError(RuntimeError):
    """A raw file cannot be landed as asked."""


@dataclass(frozen=True)
class Landed:
    path: str
    digest: str
    rows: int
    changed: bool  # False when the identical file was already there

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def land_bytes(
    lake: Lake, dataset: str, taxi_type: tlc.TaxiType, month: str, data: bytes, replace: bool = False
) -> Landed:
    """Put one raw monthly file into ``raw/<dataset>/month=<month>/``."""
    path = Lake.raw_path(dataset, taxi_type, month)
    digest = hashlib.sha256(data).hexdigest()
    try:
        rows = pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows
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


def source_prefix() -> str:
    """Where new raw months are published (``MLPLATFORM_RAW_SOURCE_URI``; TLC's by default)."""
    return settings.get("MLPLATFORM_RAW_SOURCE_URI").strip() or TLC_SOURCE


def deadline_days() -> float:
    """Days after a month's end by which its raw files are due (``MLPLATFORM_RAW_DEADLINE_DAYS``)."""
    raw = settings.get("MLPLATFORM_RAW_DEADLINE_DAYS").strip() or str(DEFAULT_DEADLINE_DAYS)
    try:
        days = float(raw)
    except ValueError:
        raise ValueError(f"MLPLATFORM_RAW_DEADLINE_DAYS must be a number of days, got {raw!r}") from None
    if days < 0:
        raise ValueError(f"MLPLATFORM_RAW_DEADLINE_DAYS must not be negative, got {raw!r}")
    return days


def deadline(month: str, days: float) -> datetime:
    """When ``month``'s raw data is late: ``days`` after the month ends (UTC)."""
    end = datetime.strptime(months.shift(months.check(month), 1), "%Y-%m").replace(tzinfo=UTC)
    return end + timedelta(days=days)


def source_uri(prefix: str, taxi_type: tlc.TaxiType, month: str) -> str:
    return f"{prefix.rstrip('/')}/{tlc.file_name(taxi_type, month)}"


def published(prefix: str, taxi_types: Sequence[tlc.TaxiType], month: str) -> list[tlc.TaxiType]:
    """The taxi types whose file for ``month`` is at the source now."""
    import fsspec

    found = []
    for taxi_type in taxi_types:
        fs, path = fsspec.core.url_to_fs(source_uri(prefix, taxi_type, month))
        if fs.exists(path):
            found.append(taxi_type)
    return found


def land_from_source(
    lake: Lake, dataset: str, prefix: str, taxi_types: Sequence[tlc.TaxiType], month: str
) -> list[Landed]:
    """Land every listed type's file for ``month`` that is at the source; never replaces one.

    Raises :class:`LandingError` when the source holds a different file than the one landed
    before (a correction is landed on purpose, with ``mlplatform ingest --replace``).
    """
    import fsspec

    landed = []
    for taxi_type in published(prefix, taxi_types, month):
        with fsspec.open(source_uri(prefix, taxi_type, month), "rb") as source:
            data = source.read()
        landed.append(land_bytes(lake, dataset, taxi_type, month, data))
    return landed
