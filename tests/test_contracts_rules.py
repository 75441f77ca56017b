"""The row rules without GX: each rule's mask, the fare arithmetic, the duplicate detector.

Mirrors ``mlplatform.stages.contracts.rules``: every rule flags exactly the rows that break it,
and nothing else, on hand-made and generated trips.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlplatform.core import generator, spec, tlc
from mlplatform.stages import contracts
from mlplatform.stages.contracts.rules import duplicated, fare_check

USE_CASE = spec.load_spec("taxi_trip_duration")
MONTH = "2024-03"


def month_table(rows: int, month: str = MONTH, seed: int = 1, kind: str = "yellow") -> pa.Table:
    return generator.generate_month(kind, month, rows, seed=seed, anomalies=False).table


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


def fare_inconsistent(table: pa.Table, month: str) -> pa.ChunkedArray:
    return fare_check(table, month).inconsistent


def _itemised_trips(rows: int, kind: str = "yellow") -> dict[str, list]:
    """Generated trips whose totals are exactly their itemised parts, surcharge columns empty."""
    trips = tlc.normalise(month_table(rows, kind=kind))
    columns = {name: trips.column(name).to_pylist() for name in trips.column_names}
    itemised = ("fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount")
    for name in tlc.SURCHARGES:
        columns[name] = [None] * rows
    columns["total_amount"] = [round(sum(columns[p][i] or 0.0 for p in itemised), 2) for i in range(rows)]
    return columns


def test_surcharges_left_out_of_their_columns_or_counted_twice_still_add_up() -> None:
    columns = _itemised_trips(10)
    columns["total_amount"][0] += 2.50 + 1.75  # flex fare: congestion and airport fee charged, not itemised
    columns["congestion_surcharge"][1] = 2.50  # itemised, and already inside extra (vendor 1)
    columns["extra"][1] += 2.50
    columns["total_amount"][1] += 2.50
    columns["total_amount"][2] += 0.75 + 2.50  # CBD toll and congestion, neither itemised
    columns["total_amount"][3] += 1.10  # no surcharge costs $1.10
    columns["congestion_surcharge"][4] = 2.75  # the green rate itemised on a yellow trip, in extra too
    columns["extra"][4] += 2.75
    columns["total_amount"][4] += 2.75
    table = pa.table(columns, schema=tlc.NORMALISED_SCHEMA)
    check = fare_check(table, "2025-03")
    assert _rows(check.inconsistent) == [3, 4]
    assert {k: v for k, v in check.readings.items() if v} == {
        "congestion_surcharge_unitemised": 2,
        "congestion_surcharge_in_extra": 1,
        "airport_fee_unitemised": 1,
        "cbd_congestion_fee_unitemised": 1,
    }
    # the same totals before the CBD toll (2025) and the airport fee (2021-04-05) do not add up
    assert _rows(fare_inconsistent(table, "2021-03")) == [0, 2, 3, 4]


def test_each_row_is_judged_by_the_schedule_in_force_at_its_own_pickup() -> None:
    """A month straddling the fare change of 2022-12-19: improvement surcharge $0.30 before, $1.00 after."""
    columns = _itemised_trips(8, kind="green")
    days = [5, 10, 18, 18, 19, 20, 28, 31]
    columns["pickup_datetime"] = [datetime(2022, 12, d, 12, 0) for d in days]
    columns["dropoff_datetime"] = [datetime(2022, 12, d, 12, 20) for d in days]
    rates = [0.30, 0.30, 0.30, 1.00, 1.00, 1.00, 0.30, 1.00]  # row 3 itemises the new rate a day early
    columns["improvement_surcharge"] = rates
    # vendor 1 leaves the improvement surcharge out of the total: every row reads "excluded"
    table = pa.table(columns, schema=tlc.NORMALISED_SCHEMA)
    check = fare_check(table, "2022-12")
    assert _rows(check.inconsistent) == [3]  # $1.00 was charged by no schedule before 2022-12-19
    assert check.readings["improvement_surcharge_excluded"] == 7  # row 6: a meter not yet re-rated
    # the same rows with the improvement surcharge in the total add up on any day
    columns["total_amount"] = [t + r for t, r in zip(columns["total_amount"], rates, strict=True)]
    table = pa.table(columns, schema=tlc.NORMALISED_SCHEMA)
    assert _rows(fare_inconsistent(table, "2022-12")) == []


def test_the_congestion_surcharge_is_owed_from_2019_02_02() -> None:
    columns = _itemised_trips(4, kind="green")
    days = [1, 1, 2, 3]
    columns["pickup_datetime"] = [datetime(2019, 2, d, 9, 0) for d in days]
    columns["dropoff_datetime"] = [datetime(2019, 2, d, 9, 30) for d in days]
    columns["total_amount"] = [t + 2.75 for t in columns["total_amount"]]  # charged, column empty
    columns["total_amount"][1] -= 2.75
    table = pa.table(columns, schema=tlc.NORMALISED_SCHEMA)
    check = fare_check(table, "2019-02")
    assert _rows(check.inconsistent) == [0]  # 2019-02-01: no congestion surcharge yet
    assert check.readings["congestion_surcharge_unitemised"] == 2


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


def test_a_rule_jumps_above_factor_times_its_trailing_median_and_the_floor() -> None:
    usual = [{"zero_distance": 0.033, "idle_trip": 0.0025}] * 3
    assert contracts.rule_jumps(usual, {"zero_distance": 0.049, "idle_trip": 0.005}, USE_CASE) == []
    [jump] = contracts.rule_jumps(usual, {"zero_distance": 0.12, "idle_trip": 0.0025}, USE_CASE)
    assert jump.startswith("zero_distance jumped to 12.00% of rows from a trailing median of 3.30%")
    # from nothing to a handful of rows is no jump (trend_jump_floor 0.2%); to 0.3% is
    assert contracts.rule_jumps(usual, {"duplicate_row": 0.0015}, USE_CASE) == []
    assert len(contracts.rule_jumps(usual, {"duplicate_row": 0.003}, USE_CASE)) == 1
    # fewer than three previous months are no usual range yet
    assert contracts.rule_jumps(usual[:2], {"zero_distance": 0.12}, USE_CASE) == []


def test_the_lake_trend_reads_passing_and_breached_months_and_skips_damaged_records(tmp_path) -> None:
    from mlplatform.adapters import snapshots
    from mlplatform.adapters.lake import Lake

    lake = Lake(tmp_path.as_uri())
    for month, n in (("2024-01", 40), ("2024-02", 44), ("2024-03", 36)):
        trips = tlc.normalise(month_table(10, month=month))
        block = {"severity": "quarantine", "rows": 4000, "rule_counts": {"zero_distance": n},
                 "reading_counts": {"congestion_surcharge_in_extra": 80}}  # fmt: skip
        snapshots.write_snapshot(
            lake, USE_CASE.name, month, trips, {"source": {"rows": 4000}, "contract": block}
        )
    breach = {"rows": 4000, "rule_counts": {"zero_distance": 900}}
    record = {"month": "2024-04", "recorded_at": "2024-05-01T00:00:00+00:00", "contract": breach}
    lake.write_json(f"quarantine/{USE_CASE.name}/month=2024-04/abc/breach.json", record)
    lake.write_bytes(f"quarantine/{USE_CASE.name}/month=2024-05/def/breach.json", b"{not json")
    trend = {(t.month, t.rule): t for t in contracts.lake_trend(lake, USE_CASE)}
    assert sorted({m for m, _ in trend}) == ["2024-01", "2024-02", "2024-03", "2024-04"]
    assert trend["2024-02", "zero_distance"].share == 44 / 4000 and not trend["2024-02", "zero_distance"].jump
    assert trend["2024-04", "zero_distance"].severity == "breach" and trend["2024-04", "zero_distance"].jump
    assert trend["2024-01", "fare_reading.congestion_surcharge_in_extra"].count == 80
    assert trend["2024-04", "fare_reading.congestion_surcharge_in_extra"].count == 0
