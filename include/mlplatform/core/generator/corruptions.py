"""Corruption knobs: raw months broken the way bad deliveries break them.

:data:`CORRUPTIONS` damage rows and schemas (``corrupt``); :data:`FILE_CORRUPTIONS` damage
the file itself (``corrupted_bytes``). The data contract must catch every one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _set_column(table: pa.Table, name: str, values: pa.Array | np.ndarray) -> pa.Table:
    index = table.schema.get_field_index(name)
    array = values if isinstance(values, pa.Array) else pa.array(values)
    return table.set_column(index, pa.field(name, array.type), array)


def _pick(table: pa.Table, rate: float, seed: int) -> np.ndarray:
    return cast(np.ndarray, np.random.default_rng(seed).random(table.num_rows) < rate)


def _col(table: pa.Table, *candidates: str) -> str:
    return next(c for c in candidates if c in table.schema.names)


def _pickup(t: pa.Table) -> str:
    return _col(t, "tpep_pickup_datetime", "lpep_pickup_datetime")


def _dropoff(t: pa.Table) -> str:
    return _col(t, "tpep_dropoff_datetime", "lpep_dropoff_datetime")


def _shift_pickups(t: pa.Table, mask: np.ndarray, delta_days: int) -> pa.Table:
    delta = np.where(mask, delta_days * 86_400_000_000, 0)
    out = t
    for name in (_pickup(t), _dropoff(t)):
        us = t.column(name).cast(pa.int64()).to_numpy() + delta
        out = _set_column(out, name, pa.array(us).cast(t.schema.field(name).type))
    return out


def _scale(t: pa.Table, name: str, mask: np.ndarray, factor: float) -> pa.Table:
    values = t.column(name).to_numpy(zero_copy_only=False).astype(float)
    return _set_column(
        t, name, pa.array(np.where(mask, values * factor, values)).cast(t.schema.field(name).type)
    )


def _swap_times(t: pa.Table, mask: np.ndarray) -> pa.Table:
    pick, drop = t.column(_pickup(t)), t.column(_dropoff(t))
    p, d = pick.cast(pa.int64()).to_numpy(), drop.cast(pa.int64()).to_numpy()
    t = _set_column(t, _pickup(t), pa.array(np.where(mask, d, p)).cast(pick.type))
    return _set_column(t, _dropoff(t), pa.array(np.where(mask, p, d)).cast(drop.type))


def _null_burst(t: pa.Table, mask: np.ndarray) -> pa.Table:
    for name in ("trip_distance", "PULocationID", "DOLocationID", "fare_amount"):
        column = t.column(name).combine_chunks()
        t = _set_column(
            t,
            name,
            pa.array(
                column.to_pylist(), column.type, mask=mask | column.is_null().to_numpy(zero_copy_only=False)
            ),
        )
    return t


def _non_utf8(t: pa.Table, mask: np.ndarray) -> pa.Table:
    flags = t.column("store_and_fwd_flag").to_pylist()
    raw = [
        b"\xff\xfeN" if m else (None if f is None else f.encode()) for f, m in zip(flags, mask, strict=True)
    ]
    return _set_column(t, "store_and_fwd_flag", pa.array(raw, pa.binary()))


def _duplicate(t: pa.Table, mask: np.ndarray) -> pa.Table:
    return pa.concat_tables([t, t.filter(pa.array(mask))])


CORRUPTIONS: dict[str, Callable[[pa.Table, float, int], pa.Table]] = {
    "missing_column": lambda t, r, s: t.drop_columns(["trip_distance"]),
    "renamed_column": lambda t, r, s: t.rename_columns(
        ["PU_Location" if n == "PULocationID" else n for n in t.schema.names]
    ),
    "wrong_type": lambda t, r, s: _set_column(
        t, "fare_amount", pc.cast(t.column("fare_amount"), pa.string())
    ),
    "all_null_column": lambda t, r, s: _set_column(t, "trip_distance", pa.nulls(t.num_rows, pa.float64())),
    "negative_distance": lambda t, r, s: _scale(t, "trip_distance", _pick(t, r, s), -1.0),
    "dropoff_before_pickup": lambda t, r, s: _swap_times(t, _pick(t, r, s)),
    "other_year": lambda t, r, s: _shift_pickups(t, _pick(t, r, s), -365),
    "future_dates": lambda t, r, s: _shift_pickups(t, _pick(t, r, s), 3 * 365),
    "duplicate_rows": lambda t, r, s: _duplicate(t, _pick(t, r, s)),
    "unknown_zones": lambda t, r, s: _scale(t, "PULocationID", _pick(t, r, s), 10.0),
    "outliers": lambda t, r, s: _scale(t, "trip_distance", _pick(t, r, s), 1000.0),
    "null_burst": lambda t, r, s: _null_burst(t, _pick(t, r, s)),
    "non_utf8_flags": lambda t, r, s: _non_utf8(t, _pick(t, r, s)),
    "extra_columns": lambda t, r, s: t.append_column("surprise_column", pa.array(np.zeros(t.num_rows))),
}
"""Row- and schema-level corruptions: ``CORRUPTIONS[kind](table, rate, seed)``.

``rate`` is the share of rows affected where that applies. File-level damage (empty,
zero-byte, truncated, CSV under a .parquet name, the wrong taxi type, 10x or 0.1x volume)
is made by writing the file differently; see :func:`write_corrupted`.
"""

FILE_CORRUPTIONS = ("empty_file", "zero_byte", "truncated", "csv_as_parquet")


def corrupt(table: pa.Table, kind: str, rate: float = 0.05, seed: int = 0) -> pa.Table:
    """Apply one of :data:`CORRUPTIONS` to a raw table."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; known: {', '.join(sorted(CORRUPTIONS))}")
    return CORRUPTIONS[kind](table, rate, seed)


def corrupted_bytes(table: pa.Table, kind: str) -> bytes:
    """The bytes of a damaged file: one of :data:`FILE_CORRUPTIONS`."""
    import io

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if kind == "zero_byte":
        return b""
    buffer = io.BytesIO()
    if kind == "csv_as_parquet":
        pacsv.write_csv(table, buffer)
        return buffer.getvalue()
    pq.write_table(table.slice(0, 0) if kind == "empty_file" else table, buffer)
    data = buffer.getvalue()
    if kind == "truncated":
        return data[: len(data) // 2]
    if kind == "empty_file":
        return data
    raise ValueError(f"unknown file corruption {kind!r}; known: {', '.join(FILE_CORRUPTIONS)}")
