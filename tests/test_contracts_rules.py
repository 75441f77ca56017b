"""The row rules without GX: each rule's mask, the fare arithmetic, the duplicate detector.

Mirrors ``mlplatform.stages.contracts.rules``, ``masks`` and ``duplicates``: every rule
flags exactly the rows that break it, and nothing else, on hand-made and generated trips.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlplatform.core import generator, spec, tlc
from mlplatform.stages import contracts
from mlplatform.stages.contracts.duplicates import duplicated
from mlplatform.stages.contracts.masks import fare_inconsistent

USE_CASE = spec.load_spec("taxi_trip_duration")
MONTH = "2024-03"


def month_table(rows: int, month: str = MONTH, seed: int = 1, kind: str = "yellow") -> pa.Table:
    return generator.generate_month(kind, month, rows, seed=seed).table


def test_the_month_window_is_the_calendar_month_widened_by_the_tolerance() -> None:
    def us(*day: int) -> int:
        return int(datetime(*day, tzinfo=UTC).timestamp()) * 1_000_000

    assert contracts.month_window_us("2024-02", 0) == (us(2024, 2, 1), us(2024, 3, 1))  # a leap year
    slack = 5_400_000_000  # 1.5 h
    assert contracts.month_window_us("2024-12", 1.5) == (us(2024, 12, 1) - slack, us(2025, 1, 1) + slack)
    with pytest.raises(ValueError, match="'2024-13'"):
        contracts.month_window_us("2024-13", 0)


def test_each_row_rule_flags_exactly_the_rows_that_break_it() -> None:
    tolerant = USE_CASE.model_copy(
        update={"contract": USE_CASE.contract.model_copy(update={"pickup_tolerance_hours": 6.0})}
    )
    trips = tlc.normalise(month_table(200))
    columns = {name: trips.column(name).to_pylist() for name in trips.column_names}
    for name in ("pickup_datetime", "dropoff_datetime"):  # as microseconds, to edit them
        columns[name] = trips.column(name).cast(pa.int64()).to_pylist()
    start_us = contracts.month_window_us(MONTH, 0)[0]
    broken = {
        "missing_key": (0, "fare_amount", None),
        "pickup_outside_month": (1, "pickup_datetime", start_us - 7 * 3_600_000_000),
        "implausible_duration": (2, "duration_min", 721.0),
        "implausible_distance": (3, "trip_distance", -0.5),
        "unknown_zone": (4, "do_location_id", 266),
        "unknown_payment_type": (5, "payment_type", 7),
        "unknown_rate_code": (6, "rate_code_id", 7),
        "unknown_vendor": (7, "vendor_id", 3),
        "fare_inconsistent": (8, "total_amount", 999.0),
        "invalid_store_and_fwd_flag": (9, "store_and_fwd_flag", "\ufffdN"),
        "zero_distance": (13, "trip_distance", 0.0),
        "idle_trip": (14, "duration_min", 61.0),
        "negative_fare": (15, "fare_amount", -columns["fare_amount"][15]),
    }
    for row, name, value in broken.values():
        columns[name][row] = value
    columns["trip_distance"][14] = 2.0  # 61 minutes for 2 miles: under 2 mph
    columns["trip_distance"][2] = 30.0  # 721 minutes, but not idle
    columns["total_amount"][15] += 2 * columns["fare_amount"][15]  # a refund: its total still adds up
    columns["pickup_datetime"][10] = start_us - 5 * 3_600_000_000  # inside the 6 h tolerance
    columns["pickup_datetime"][11] = columns["dropoff_datetime"][11]  # zero duration
    for name in ("pickup_datetime", "dropoff_datetime"):
        columns[name] = pa.array(columns[name], pa.int64()).cast(pa.timestamp("us"))
    table = pa.table(columns, schema=tlc.NORMALISED_SCHEMA)
    table = pa.concat_tables([table, table.slice(12, 1)])  # row 200 repeats row 12
    masks = contracts.row_rule_masks(table, tolerant, MONTH)
    flagged = {name: np.flatnonzero(mask).tolist() for name, mask in masks.items()}
    expected = {name: [row] for name, (row, _, _) in broken.items()}
    assert flagged == expected | {"dropoff_not_after_pickup": [11], "duplicate_row": [200]}


def test_a_nan_key_is_missing_and_breaks_no_other_rule() -> None:
    trips = tlc.normalise(month_table(50))
    columns = {name: trips.column(name) for name in trips.column_names}
    for name, changes in {
        "fare_amount": {0: float("nan"), 1: -5.0},
        "total_amount": {1: float("nan")},
        "trip_distance": {2: float("nan")},
    }.items():
        values = columns[name].to_pylist()
        for row, value in changes.items():
            values[row] = value
        columns[name] = pa.array(values, pa.float64())
    masks = contracts.row_rule_masks(pa.table(columns, schema=tlc.NORMALISED_SCHEMA), USE_CASE, MONTH)
    assert {name: np.flatnonzero(m).tolist() for name, m in masks.items() if m.any()} == {
        "missing_key": [0, 1, 2]
    }


def test_surcharges_left_out_of_their_columns_or_counted_twice_still_add_up() -> None:
    trips = tlc.normalise(month_table(10))
    columns = {name: trips.column(name).to_pylist() for name in trips.column_names}
    itemised = ("fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "improvement_surcharge")
    base = [sum(columns[p][i] or 0.0 for p in itemised) for i in range(10)]
    for name in contracts.SURCHARGE_RATES:
        columns[name] = [None] * 10
    columns["total_amount"] = [round(b, 2) for b in base]
    columns["total_amount"][0] += 2.50 + 1.75  # flex fare: congestion and airport fee charged, not itemised
    columns["congestion_surcharge"][1] = 2.75  # itemised, and already inside extra (green vendor 1)
    columns["extra"][1] += 2.75
    columns["total_amount"][1] += 2.75
    columns["total_amount"][2] += 0.75 + 2.50  # CBD toll and congestion, neither itemised
    columns["total_amount"][3] += 1.10  # no surcharge costs $1.10
    table = pa.table(columns, schema=tlc.NORMALISED_SCHEMA)
    assert _rows(fare_inconsistent(table, "2025-03")) == [3]
    # the same totals before the CBD toll (2025) and the $1.75 airport fee (2022-12) do not add up
    assert _rows(fare_inconsistent(table, "2021-03")) == [0, 2, 3]


def _rows(mask: pa.ChunkedArray) -> list[int]:
    return np.flatnonzero(mask.to_numpy()).tolist()


@pytest.mark.parametrize("rows", [0, 1, 2, 5_000, 200_000])
@pytest.mark.parametrize("distinct", [40, 10**12])
def test_duplicates_are_the_rows_pandas_finds_repeated(rows: int, distinct: int) -> None:
    """Few distinct values: most rows repeat or differ in one key only; many: a few copied rows repeat."""
    rng = np.random.default_rng(rows)
    keys = [
        rng.integers(0, distinct, rows).astype(np.int64),  # timestamps as microseconds
        rng.integers(0, 3, rows).astype(np.int32),
        rng.integers(0, 3, rows).astype(np.float64) / 4,
    ]
    if rows > 2:
        copied = rng.integers(0, rows // 2, rows // 100 + 1)
        for key in keys:
            key[rows - copied.size :] = key[copied]
    expected = pd.DataFrame(dict(enumerate(keys))).duplicated(keep="first").to_numpy()
    assert np.array_equal(duplicated(keys), expected)
    if rows > 2:
        assert 0 < expected.sum() < rows


def test_a_clean_generated_month_breaks_no_rule() -> None:
    masks = contracts.row_rule_masks(tlc.normalise(month_table(20_000)), USE_CASE, MONTH)
    assert {name: int(m.sum()) for name, m in masks.items() if m.any()} == {}
