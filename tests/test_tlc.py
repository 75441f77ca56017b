"""One reader normalises green and yellow TLC files of every schema generation."""

from __future__ import annotations

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
