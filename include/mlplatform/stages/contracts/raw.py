"""Reading a month's raw files: parse each, compare its schema with the TLC format, normalise it.

Steps 1 and 2 of a validation. :func:`read_raw` never raises for bad data: what it finds
(an unreadable file, a taxi type, missing, mistyped or unexpected columns) goes into the
month's contract profile, where the checkpoint judges it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from mlplatform.core import tlc
from mlplatform.core.spec import TimezoneAware


class RawFileMissing(FileNotFoundError):
    """The month has no raw file in the lake: nothing to validate yet."""


@dataclass(frozen=True)
class RawFile:
    """One raw file of a month: where it came from, its bytes, the taxi types it may hold."""

    path: str
    data: bytes = field(repr=False)
    taxi_types: tuple[tlc.TaxiType, ...]


def _allowed_raw_types() -> dict[str, set[pa.DataType]]:
    allowed: dict[str, set[pa.DataType]] = {}
    for taxi in ("yellow", "green"):
        for generation in ("legacy", "2024", "2025"):
            for f in tlc.raw_schema(taxi, generation):
                allowed.setdefault(f.name, set()).add(f.type)
    return allowed


_ALLOWED_RAW_TYPES = _allowed_raw_types()


def _type_ok(name: str, dtype: pa.DataType) -> bool:
    allowed = _ALLOWED_RAW_TYPES.get(name)
    if allowed is None or dtype in allowed:
        return True
    if pa.types.is_null(dtype):  # a column TLC left entirely empty (green ehail_fee, 2021-2022)
        return True
    if pa.types.is_timestamp(dtype):
        return all(pa.types.is_timestamp(t) for t in allowed)
    if pa.types.is_dictionary(dtype):
        return _type_ok(name, dtype.value_type)
    if pa.types.is_binary(dtype):  # flags some writers store as bytes; the normaliser decodes them
        return any(pa.types.is_string(t) or pa.types.is_large_string(t) for t in allowed)
    return False


@dataclass
class RawRead:
    """What reading a raw file found (step 1 and 2)."""

    rows: int = 0
    taxi_type: str | None = None
    file_problem: str = ""
    missing_columns: tuple[str, ...] = ()
    mistyped_columns: tuple[str, ...] = ()
    unexpected_columns: tuple[str, ...] = ()
    schema_problem: str = ""
    evidence: str = ""
    """The columns that tell the taxi type (:func:`mlplatform.core.tlc.taxi_type_evidence`)."""
    trips: pa.Table | None = None  # normalised, when the file could be read and normalised


def read_raw(
    data: bytes,
    expected: tlc.TaxiType | Sequence[tlc.TaxiType],
    timezone_aware: TimezoneAware = "convert",
) -> RawRead:
    """Parse, inspect and normalise a raw file's bytes; never raises for bad data.

    ``expected`` is the taxi type the file must hold, or several it may hold;
    ``timezone_aware`` what zone-tagged timestamps get (see :func:`mlplatform.core.tlc.normalise`).
    """
    accepted = (expected,) if isinstance(expected, str) else tuple(expected)
    if not data:
        return RawRead(file_problem="the file is empty (zero bytes)")
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        head = data[:64].decode("utf-8", errors="replace").splitlines()[0] if data else ""
        looks = "; it looks like text/CSV" if "," in head and not data.startswith(b"PAR1") else ""
        return RawRead(file_problem=f"not a readable parquet file ({exc}){looks}")
    found = RawRead(rows=table.num_rows)
    report = tlc.inspect_schema(table.schema)
    found.taxi_type = report.taxi_type
    found.evidence = tlc.taxi_type_evidence(table.schema.names)
    found.unexpected_columns = report.unexpected
    found.missing_columns = report.missing
    if report.taxi_type is None:
        found.missing_columns = ("pickup_datetime", "dropoff_datetime", *report.missing[2:])
        found.schema_problem = "no tpep_/lpep_ pickup or dropoff column"
    found.mistyped_columns = tuple(
        f"{f.name} is {f.type} (TLC: {' or '.join(sorted(map(str, _ALLOWED_RAW_TYPES[f.name])))})"
        for f in table.schema
        if not _type_ok(f.name, f.type)
    )
    if report.taxi_type not in accepted or found.missing_columns or found.mistyped_columns:
        return found
    try:
        found.trips = tlc.normalise(table, accepted, timezone_aware)
    except tlc.SchemaError as exc:
        found.mistyped_columns = (str(exc),)
    return found
