"""The NYC TLC trip-record format: schemas, taxi zones, and one reader for every year.

TLC publishes one parquet file per month and taxi type. Column names differ between
yellow (``tpep_*``) and green (``lpep_*``) taxis, and the Arrow types changed over the
years: files up to 2023 carry int64 vendor and location ids, double passenger counts and
rate codes, ``string`` flags and a lower-case ``airport_fee``; files from 2024 carry int32
ids, int64 counts, ``large_string`` flags and ``Airport_fee``; 2025 adds
``cbd_congestion_fee``. A column TLC left entirely empty in a month may be typed ``null``
(green files of 2021 and 2022 carry ``ehail_fee: null``). :func:`normalise` turns any of
them into one schema (:data:`NORMALISED_SCHEMA`) with explicit casts and the trip duration
computed; the ``taxi_type`` column keeps which kind of taxi each trip came from, so green
and yellow months can be read into one table.

TLC timestamps are naive New York wall-clock times. Some writers tag them with a zone
(Spark writes ``timestamp[us, tz=UTC]`` instants): :func:`normalise` converts those to New
York wall-clock time, or rejects them when the use case says so (``data.timezone_aware``).

TLC names its files ``<type>_tripdata_YYYY-MM.parquet``; :func:`parse_file_name` is the one
reader of that pattern (the month of a file is the one its name ends with).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplatform.core import months

if TYPE_CHECKING:
    from mlplatform.core.spec import TimezoneAware

TaxiType = Literal["yellow", "green"]
TAXI_TYPES: tuple[TaxiType, ...] = ("yellow", "green")
Generation = Literal["legacy", "2024", "2025"]
NEW_YORK = "America/New_York"
"""TLC's time zone: every trip timestamp is a naive wall-clock time there."""

FILE_NAME = re.compile(
    rf"(?<![A-Za-z0-9])(?P<kind>[a-z]+)_tripdata_(?P<month>{months.MONTH_PATTERN})\.parquet$"
)
"""TLC's file name, ``<type>_tripdata_YYYY-MM.parquet``, anchored at the end: a prefix such as
``backfill-2024-01_`` does not change the month."""


@dataclass(frozen=True)
class FileName:
    """What a TLC file name says: the kind of trip records and the month."""

    kind: str
    month: str

    @property
    def taxi_type(self) -> TaxiType | None:
        """The taxi type when the kind is one this platform reads (yellow, green)."""
        return next((t for t in TAXI_TYPES if t == self.kind), None)


def parse_file_name(name: str) -> FileName | None:
    """The kind and month a TLC file name (``green_tripdata_2021-01.parquet``) says; ``None`` if not one."""
    found = FILE_NAME.search(name)
    return None if found is None else FileName(found["kind"], found["month"])


def file_name(taxi_type: str, month: str) -> str:
    """TLC's name for the month's file of ``taxi_type``: ``<type>_tripdata_YYYY-MM.parquet``."""
    return f"{taxi_type}_tripdata_{months.check(month)}.parquet"


_MONEY = (
    "fare_amount",
    "extra",
    "mta_tax",
    "tip_amount",
    "tolls_amount",
    "improvement_surcharge",
    "total_amount",
    "congestion_surcharge",
)
SURCHARGES = ("improvement_surcharge", "congestion_surcharge", "airport_fee", "cbd_congestion_fee")
"""Per-trip surcharges TLC itemises in their own columns (normalised names), each named as its
rate in :class:`mlplatform.core.fares.FareSchedule`."""
FARE_PARTS = ("fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "ehail_fee", *SURCHARGES)
"""The normalised columns whose sum ``total_amount`` is (the fare and everything added to it)."""
_TS = pa.timestamp("us")


def raw_schema(taxi_type: TaxiType, generation: Generation) -> pa.Schema:
    """The exact Arrow schema TLC publishes for ``taxi_type`` in ``generation``."""
    modern = generation != "legacy"
    i_id = pa.int32() if modern else pa.int64()
    i_count = pa.int64() if modern else pa.float64()
    flag = pa.large_string() if modern else pa.string()
    d = pa.float64()
    if taxi_type == "yellow":
        fields = [
            ("VendorID", i_id),
            ("tpep_pickup_datetime", _TS),
            ("tpep_dropoff_datetime", _TS),
            ("passenger_count", i_count),
            ("trip_distance", d),
            ("RatecodeID", i_count),
            ("store_and_fwd_flag", flag),
            ("PULocationID", i_id),
            ("DOLocationID", i_id),
            ("payment_type", pa.int64()),
            *[(m, d) for m in _MONEY],
            ("Airport_fee" if modern else "airport_fee", d),
        ]
    else:
        fields = [
            ("VendorID", i_id),
            ("lpep_pickup_datetime", _TS),
            ("lpep_dropoff_datetime", _TS),
            ("store_and_fwd_flag", flag),
            ("RatecodeID", i_count),
            ("PULocationID", i_id),
            ("DOLocationID", i_id),
            ("passenger_count", i_count),
            ("trip_distance", d),
            *[(m, d) for m in _MONEY[:5]],
            ("ehail_fee", d if modern else pa.null()),  # legacy files type the empty column null
            ("improvement_surcharge", d),
            ("total_amount", d),
            ("payment_type", pa.int64() if modern else d),
            ("trip_type", pa.int64() if modern else d),
            ("congestion_surcharge", d),
        ]
    if generation == "2025":
        fields.append(("cbd_congestion_fee", d))
    return pa.schema(fields)


def generation_for_month(month: str) -> Generation:
    """The schema generation TLC used for files of ``month`` (YYYY-MM).

    ``legacy``: files up to 2022 (int64 ids, double codes); ``2024``: from 2023 on, TLC's
    files carry int32 ids, int64 codes and large_string flags; ``2025`` adds the CBD fee.
    """
    if month >= "2025-01":
        return "2025"
    return "2024" if month >= "2023-01" else "legacy"


NORMALISED_SCHEMA = pa.schema(
    [
        ("taxi_type", pa.string()),
        ("vendor_id", pa.int32()),
        ("pickup_datetime", _TS),
        ("dropoff_datetime", _TS),
        ("passenger_count", pa.int32()),
        ("trip_distance", pa.float64()),
        ("rate_code_id", pa.int32()),
        ("store_and_fwd_flag", pa.string()),
        ("pu_location_id", pa.int32()),
        ("do_location_id", pa.int32()),
        ("payment_type", pa.int32()),
        *[(m, pa.float64()) for m in _MONEY],
        ("airport_fee", pa.float64()),
        ("cbd_congestion_fee", pa.float64()),
        ("ehail_fee", pa.float64()),
        ("trip_type", pa.int32()),
        ("duration_min", pa.float64()),
    ]
)

# Raw name (either taxi type, any year) -> normalised name.
_RENAMES = {
    "VendorID": "vendor_id",
    "tpep_pickup_datetime": "pickup_datetime",
    "lpep_pickup_datetime": "pickup_datetime",
    "tpep_dropoff_datetime": "dropoff_datetime",
    "lpep_dropoff_datetime": "dropoff_datetime",
    "RatecodeID": "rate_code_id",
    "PULocationID": "pu_location_id",
    "DOLocationID": "do_location_id",
    "Airport_fee": "airport_fee",
    **{c: c for c in ("passenger_count", "trip_distance", "store_and_fwd_flag", "payment_type", *_MONEY)},
    **{c: c for c in ("airport_fee", "cbd_congestion_fee", "ehail_fee", "trip_type")},
}
# Columns every file of a taxi type has in every year; the rest may be absent (null).
_REQUIRED = (
    "vendor_id",
    "pickup_datetime",
    "dropoff_datetime",
    "passenger_count",
    "trip_distance",
    "rate_code_id",
    "pu_location_id",
    "do_location_id",
    "payment_type",
    "fare_amount",
    "total_amount",
)


class SchemaError(ValueError):
    """A file does not have the shape of a TLC trip-record file."""


@dataclass(frozen=True)
class SchemaReport:
    """How a raw file's schema compares with the TLC format."""

    taxi_type: TaxiType | None
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.taxi_type is not None and not self.missing


def _accepted(expected: TaxiType | Collection[TaxiType] | None) -> tuple[TaxiType, ...]:
    """``expected`` as a tuple of taxi types (empty: any)."""
    if expected is None:
        return ()
    return (expected,) if isinstance(expected, str) else tuple(expected)


def inspect_schema(
    schema: pa.Schema, expected: TaxiType | Collection[TaxiType] | None = None
) -> SchemaReport:
    """Detect the taxi type from column names and list missing and unexpected columns.

    Without tpep_/lpep_ columns the type is ``expected`` when that names exactly one.
    """
    names = set(schema.names)
    if {"tpep_pickup_datetime", "tpep_dropoff_datetime"} & names:
        taxi_type: TaxiType | None = "yellow"
    elif {"lpep_pickup_datetime", "lpep_dropoff_datetime"} & names:
        taxi_type = "green"
    else:
        accepted = _accepted(expected)
        taxi_type = accepted[0] if len(accepted) == 1 else None
    normalised = {_RENAMES[n] for n in names if n in _RENAMES}
    missing = tuple(c for c in _REQUIRED if c not in normalised)
    unexpected = tuple(sorted(n for n in names if n not in _RENAMES))
    return SchemaReport(taxi_type, missing, unexpected)


TELLTALE_COLUMNS: dict[TaxiType, tuple[str, ...]] = {
    "yellow": ("tpep_pickup_datetime", "tpep_dropoff_datetime", "airport_fee", "Airport_fee"),
    "green": ("lpep_pickup_datetime", "lpep_dropoff_datetime", "trip_type", "ehail_fee"),
}
"""Columns only one taxi type's files carry (TLC's data dictionaries): the schema tells the type."""


def taxi_type_evidence(names: Collection[str]) -> str:
    """Which columns say what taxi type a file holds, in words (``""`` when none does)."""
    said = []
    for kind, telltale in TELLTALE_COLUMNS.items():
        found = [c for c in telltale if c in names]
        if found:
            said.append(f"{', '.join(found)} ({kind} columns)")
    return "; ".join(said)


def normalise(
    table: pa.Table,
    expected: TaxiType | Collection[TaxiType] | None = None,
    timezone_aware: TimezoneAware = "convert",
) -> pa.Table:
    """Turn a raw TLC table of any taxi type and year into :data:`NORMALISED_SCHEMA`.

    Columns are renamed and cast explicitly (a ``null``-typed empty column becomes nulls of
    the normalised type); optional columns a file lacks become nulls; unexpected columns
    are dropped (see :func:`inspect_schema` to report them). ``expected`` is a taxi type or
    several (``None``: any). Naive timestamps are New York wall-clock times as TLC writes
    them; zone-tagged ones are converted to New York wall-clock time (``convert``) or
    rejected (``reject``). Raises :class:`SchemaError` naming the column when a required
    column is missing, the taxi type is not an ``expected`` one, a timestamp carries a zone
    under ``reject``, or a value cannot be cast without loss.
    """
    report = inspect_schema(table.schema, expected)
    if report.taxi_type is None:
        raise SchemaError(
            "cannot tell the taxi type: no tpep_/lpep_ pickup or dropoff column "
            f"(columns: {', '.join(table.schema.names) or 'none'})"
        )
    accepted = _accepted(expected)
    if accepted and report.taxi_type not in accepted:
        raise SchemaError(
            f"expected {' or '.join(accepted)} taxi data but the file has {report.taxi_type} columns"
        )
    if report.missing:
        raise SchemaError(f"{report.taxi_type} file lacks required column(s): {', '.join(report.missing)}")

    by_name = {}
    for raw_name in table.schema.names:
        if (name := _RENAMES.get(raw_name)) is not None:
            by_name[name] = table.column(raw_name)
    n = table.num_rows
    columns = []
    for field in NORMALISED_SCHEMA:
        if field.name == "taxi_type":
            columns.append(pa.repeat(pa.scalar(report.taxi_type, pa.string()), n))
        elif field.name == "duration_min":
            seconds = pc.cast(pc.subtract(columns[3], columns[2]), pa.int64())
            columns.append(pc.divide(pc.cast(seconds, pa.float64()), 60_000_000.0))
        elif field.name in by_name:
            columns.append(_cast(_new_york_wall_clock(by_name[field.name], field, timezone_aware), field))
        else:
            columns.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(columns, schema=NORMALISED_SCHEMA)


def _new_york_wall_clock(column: pa.ChunkedArray, field: pa.Field, mode: TimezoneAware) -> pa.ChunkedArray:
    """A zone-tagged timestamp column as naive New York wall-clock time (TLC's convention).

    The tagged values are instants (Spark writes UTC); the same instants seen in New York
    are the times TLC would have written. Under ``reject`` a tagged column is an error.
    """
    source = column.type
    if not (pa.types.is_timestamp(field.type) and pa.types.is_timestamp(source) and source.tz):
        return column
    if mode == "reject":
        raise SchemaError(
            f"column {field.name} is {source}: TLC timestamps are naive New York wall-clock times and "
            "this use case rejects zone-tagged ones (data.timezone_aware: reject); re-deliver the file "
            "with naive timestamps, or set data.timezone_aware: convert"
        )
    return pc.local_timestamp(column.cast(pa.timestamp(source.unit, tz=NEW_YORK)))


def _cast(column: pa.ChunkedArray, field: pa.Field) -> pa.ChunkedArray:
    source = column.type
    try:
        if pa.types.is_string(field.type) and pa.types.is_binary(source):
            return pa.chunked_array(
                [pa.array([_decode(v) for v in chunk.to_pylist()], pa.string()) for chunk in column.chunks],
                pa.string(),
            )
        return column.cast(field.type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(f"column {field.name}: cannot cast {source} to {field.type}: {exc}") from None


def _decode(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


# --- Taxi zones --------------------------------------------------------------------------

# The TLC zone map has 265 ids. Borough membership below follows the TLC zone lookup for
# Manhattan, Brooklyn, the Bronx, Staten Island and the airports; the remaining ids are Queens,
# and 264/265 are the "unknown" and "outside NYC" ids.
# fmt: off
_BOROUGH_IDS = {
    "EWR": (1,),
    "Manhattan": (
        4, 12, 13, 24, 41, 42, 43, 45, 48, 50, 68, 74, 75, 79, 87, 88, 90, 100, 103, 104, 105, 107, 113,
        114, 116, 120, 125, 127, 128, 137, 140, 141, 142, 143, 144, 148, 151, 152, 153, 158, 161, 162,
        163, 164, 166, 170, 186, 194, 202, 209, 211, 224, 229, 230, 231, 232, 233, 234, 236, 237, 238,
        239, 243, 244, 246, 249, 261, 262, 263,
    ),
    "Staten Island": (
        5, 6, 23, 44, 84, 99, 109, 110, 115, 118, 156, 172, 176, 187, 204, 206, 214, 221, 245, 251,
    ),
    "Bronx": (
        3, 18, 20, 31, 32, 46, 47, 51, 58, 59, 60, 69, 78, 81, 94, 119, 126, 136, 147, 159, 167, 168,
        169, 174, 182, 183, 184, 185, 199, 200, 208, 212, 213, 220, 235, 240, 241, 242, 247, 248, 250,
        254, 259,
    ),
    "Brooklyn": (
        11, 14, 17, 21, 22, 25, 26, 29, 33, 34, 35, 36, 37, 39, 40, 49, 52, 54, 55, 61, 62, 63, 65, 66,
        67, 71, 72, 76, 77, 80, 85, 89, 91, 97, 106, 108, 111, 112, 123, 133, 149, 150, 154, 155, 165,
        177, 178, 181, 188, 189, 190, 195, 210, 217, 222, 225, 227, 228, 255, 256, 257,
    ),
    "Unknown": (264, 265),
}
# fmt: on
N_ZONES = 265
AIRPORT_ZONES = {1: "EWR", 132: "JFK", 138: "LGA"}
BOROUGHS = ("EWR", "Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island", "Unknown")


def _borough_table() -> np.ndarray:
    table = np.full(N_ZONES + 1, "Queens", dtype=object)
    table[0] = "Unknown"
    for borough, ids in _BOROUGH_IDS.items():
        table[list(ids)] = borough
    return table


ZONE_BOROUGH = _borough_table()
"""``ZONE_BOROUGH[location_id]`` is the borough name (index 0 is unused, "Unknown")."""


def borough_of(location_ids: np.ndarray) -> np.ndarray:
    """Borough names for an array of location ids (out-of-range ids map to "Unknown")."""
    ids = np.asarray(location_ids, dtype=np.int64)
    safe = np.where((ids >= 1) & (ids <= N_ZONES), ids, 0)
    return ZONE_BOROUGH[safe]
