"""One reader normalises green and yellow TLC files of every schema generation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlplatform.core import generator, tlc

GENERATIONS = [("legacy", "2022-06"), ("2024", "2023-06"), ("2025", "2025-02")]
REAL = Path(__file__).parent / "fixtures" / "real_tlc"


@pytest.mark.parametrize("taxi_type", ["yellow", "green"])
@pytest.mark.parametrize(("generation", "month"), GENERATIONS)
def test_every_generation_normalises(tmp_path, taxi_type: str, generation: str, month: str) -> None:
    made = generator.generate_month(taxi_type, month, 2_000, seed=3)
    path = tmp_path / f"{taxi_type}_tripdata_{month}.parquet"
    pq.write_table(made.table, path)

    raw = pq.read_table(path)
    assert raw.schema.remove_metadata() == tlc.raw_schema(taxi_type, generation)
    normalised = tlc.normalise(raw)
    assert normalised.schema == tlc.NORMALISED_SCHEMA
    assert normalised.num_rows == 2_000
    assert set(normalised.column("taxi_type").to_pylist()) == {taxi_type}
    durations = normalised.column("duration_min").to_numpy()
    assert (durations > 0).all()
    # The duration is dropoff minus pickup, in minutes.
    row = normalised.slice(0, 1).to_pylist()[0]
    assert row["duration_min"] == pytest.approx(
        (row["dropoff_datetime"] - row["pickup_datetime"]).seconds / 60
    )


def test_type_generations_differ_as_tlc_published_them() -> None:
    legacy, modern = tlc.raw_schema("yellow", "legacy"), tlc.raw_schema("yellow", "2024")
    assert legacy.field("PULocationID").type == pa.int64()
    assert modern.field("PULocationID").type == pa.int32()
    assert legacy.field("store_and_fwd_flag").type == pa.string()
    assert modern.field("store_and_fwd_flag").type == pa.large_string()
    assert legacy.field("passenger_count").type == pa.float64()
    assert "airport_fee" in legacy.names and "Airport_fee" in modern.names
    assert "cbd_congestion_fee" in tlc.raw_schema("yellow", "2025").names
    assert "lpep_pickup_datetime" in tlc.raw_schema("green", "2024").names


def test_legacy_double_counts_cast_exactly() -> None:
    made = generator.generate_month("green", "2022-03", 500, seed=1)
    counts = made.table.column("passenger_count")
    assert counts.type == pa.float64()
    normalised = tlc.normalise(made.table)
    assert normalised.column("passenger_count").to_pylist() == [
        None if v is None else int(v) for v in counts.to_pylist()
    ]


def test_fractional_value_in_integer_column_is_an_error() -> None:
    table = generator.generate_month("green", "2022-03", 10, seed=1).table
    index = table.schema.get_field_index("RatecodeID")
    table = table.set_column(index, "RatecodeID", pa.array(np.full(10, 1.5)))
    with pytest.raises(tlc.SchemaError, match="rate_code_id"):
        tlc.normalise(table)


def test_timezone_aware_timestamps_become_naive_local() -> None:
    table = generator.generate_month("yellow", "2024-01", 10, seed=1).table
    name = "tpep_pickup_datetime"
    aware = table.column(name).cast(pa.timestamp("us", tz="America/New_York"))
    normalised = tlc.normalise(table.set_column(table.schema.get_field_index(name), name, aware))
    assert normalised.column("pickup_datetime").type == pa.timestamp("us")


def with_pickups(instants: list[datetime], unit_tz: pa.DataType) -> pa.Table:
    """A small yellow table whose pickups (and dropoffs, 10 minutes later) are these instants."""
    table = generator.generate_month("yellow", "2024-01", len(instants), seed=1).table
    for name, offset in (("tpep_pickup_datetime", 0), ("tpep_dropoff_datetime", 600)):
        column = pa.array([t + timedelta(seconds=offset) for t in instants], unit_tz)
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def test_utc_instants_as_spark_writes_them_become_new_york_wall_clock() -> None:
    """Winter (EST, UTC-5) and summer (EDT, UTC-4): the same instant TLC would write as local time."""
    instants = [datetime(2024, 1, 15, 17, 0, tzinfo=UTC), datetime(2024, 7, 1, 16, 30, tzinfo=UTC)]
    trips = tlc.normalise(with_pickups(instants, pa.timestamp("us", tz="UTC")))
    assert trips.column("pickup_datetime").to_pylist() == [
        datetime(2024, 1, 15, 12),
        datetime(2024, 7, 1, 12, 30),
    ]
    assert trips.column("duration_min").to_pylist() == [10.0, 10.0]


def test_naive_timestamps_are_new_york_wall_clock_as_they_are() -> None:
    naive = [datetime(2024, 1, 15, 12), datetime(2024, 7, 1, 12, 30)]
    trips = tlc.normalise(with_pickups(naive, pa.timestamp("us")), timezone_aware="reject")
    assert trips.column("pickup_datetime").to_pylist() == naive


def test_a_use_case_may_reject_zone_tagged_timestamps() -> None:
    table = with_pickups([datetime(2024, 1, 15, 17, 0, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))
    with pytest.raises(tlc.SchemaError, match=r"timestamp\[us, tz=UTC\].*data.timezone_aware: reject"):
        tlc.normalise(table, timezone_aware="reject")


@pytest.mark.parametrize(
    ("name", "kind", "month"),
    [
        ("yellow_tripdata_2024-03.parquet", "yellow", "2024-03"),
        ("backfill-2024-01_yellow_tripdata_2024-03.parquet", "yellow", "2024-03"),
        ("green_tripdata_2021-01.parquet", "green", "2021-01"),
        ("fhvhv_tripdata_2024-02.parquet", "fhvhv", "2024-02"),
    ],
)
def test_the_month_of_a_tlc_file_name_is_the_one_it_ends_with(name: str, kind: str, month: str) -> None:
    assert tlc.parse_file_name(name) == tlc.FileName(kind, month)
    assert tlc.parse_file_name(f"/some/folder/{name}") == tlc.FileName(kind, month)


@pytest.mark.parametrize(
    "name",
    [
        "2024-03.parquet",
        "yellow_tripdata_2024-13.parquet",
        "yellow_tripdata_2024-03.csv",
        "yellow_2024-03.parquet",
    ],
)
def test_names_that_are_not_tlc_file_names_say_no_month(name: str) -> None:
    assert tlc.parse_file_name(name) is None


def test_file_name_is_what_parse_file_name_reads() -> None:
    assert tlc.parse_file_name(tlc.file_name("green", "2021-01")) == tlc.FileName("green", "2021-01")
    assert tlc.FileName("fhv", "2024-01").taxi_type is None


def test_missing_required_column_is_named() -> None:
    table = generator.generate_month("yellow", "2024-01", 10).table.drop_columns(["trip_distance"])
    with pytest.raises(tlc.SchemaError, match="trip_distance"):
        tlc.normalise(table)


def test_wrong_taxi_type_is_reported() -> None:
    table = generator.generate_month("yellow", "2024-01", 10).table
    with pytest.raises(tlc.SchemaError, match="expected green taxi data but the file has yellow"):
        tlc.normalise(table, expected="green")


def test_a_file_may_hold_any_of_several_taxi_types() -> None:
    table = generator.generate_month("green", "2024-01", 10).table
    assert set(tlc.normalise(table, ("yellow", "green")).column("taxi_type").to_pylist()) == {"green"}
    with pytest.raises(tlc.SchemaError, match="expected yellow taxi data but the file has green"):
        tlc.normalise(table, ("yellow",))


def test_real_green_months_with_a_null_typed_column_normalise() -> None:
    """TLC's own 2021 green files: int64 ids, double codes, ``ehail_fee`` typed ``null``."""
    for month, rows in (("2021-01", 76_518), ("2021-02", 64_572), ("2021-03", 83_827)):
        raw = pq.read_table(REAL / f"green_tripdata_{month}.parquet")
        assert raw.schema.field("ehail_fee").type == pa.null()
        assert raw.schema.field("payment_type").type == pa.float64()
        trips = tlc.normalise(raw, "green")
        assert trips.schema == tlc.NORMALISED_SCHEMA and trips.num_rows == rows
        assert trips.column("ehail_fee").null_count == rows
        assert set(trips.column("taxi_type").to_pylist()) == {"green"}
        assert trips.column("payment_type").to_pylist()[:3] == [
            None if v is None else int(v) for v in raw.column("payment_type").to_pylist()[:3]
        ]


def test_unexpected_columns_are_reported_and_dropped() -> None:
    table = generator.generate_month("yellow", "2024-01", 10).table
    table = table.append_column("surprise", pa.array(range(10)))
    assert tlc.inspect_schema(table.schema).unexpected == ("surprise",)
    assert "surprise" not in tlc.normalise(table).schema.names


def test_non_utf8_binary_flags_are_decoded() -> None:
    table = generator.generate_month("yellow", "2024-01", 20, seed=2).table
    table = generator.corrupt(table, "non_utf8_flags", rate=0.5, seed=1)
    flags = tlc.normalise(table).column("store_and_fwd_flag").to_pylist()
    assert any(f is not None and "\ufffd" in f for f in flags)


def test_zones_and_boroughs() -> None:
    counts = {b: int((tlc.ZONE_BOROUGH[1:] == b).sum()) for b in tlc.BOROUGHS}
    assert counts == {
        "EWR": 1,
        "Manhattan": 69,
        "Brooklyn": 61,
        "Queens": 69,
        "Bronx": 43,
        "Staten Island": 20,
        "Unknown": 2,
    }
    assert list(tlc.borough_of(np.array([132, 138, 1, 161, 999]))) == [
        "Queens",
        "Queens",
        "EWR",
        "Manhattan",
        "Unknown",
    ]


def test_the_columns_that_tell_the_taxi_type_are_named() -> None:
    yellow = tlc.raw_schema("yellow", "2024").names
    green = tlc.raw_schema("green", "legacy").names
    assert tlc.taxi_type_evidence(yellow) == (
        "tpep_pickup_datetime, tpep_dropoff_datetime, Airport_fee (yellow columns)"
    )
    assert tlc.taxi_type_evidence(green) == (
        "lpep_pickup_datetime, lpep_dropoff_datetime, trip_type, ehail_fee (green columns)"
    )
    assert tlc.taxi_type_evidence(["trip_distance"]) == ""
