"""The TLC-format generator: exact schema, determinism, known noise floor, drift, corruption."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from mlplatform import generator, tlc


def test_same_seed_same_file() -> None:
    a = generator.generate_month("yellow", "2024-03", 5_000, seed=7).table
    b = generator.generate_month("yellow", "2024-03", 5_000, seed=7).table
    c = generator.generate_month("yellow", "2024-03", 5_000, seed=8).table
    assert a.equals(b)
    assert not a.equals(c)


def test_pickups_fall_inside_the_month() -> None:
    table = tlc.normalise(generator.generate_month("green", "2024-02", 20_000, seed=1).table)
    months = {(d.year, d.month) for d in table.column("pickup_datetime").to_pylist()}
    assert months == {(2024, 2)}


def test_structure_is_realistic() -> None:
    made = generator.generate_month("yellow", "2024-03", 50_000, seed=1)
    trips = tlc.normalise(made.table).to_pandas()
    pu_borough = tlc.borough_of(trips.pu_location_id.to_numpy())
    assert (pu_borough == "Manhattan").mean() > 0.6  # yellow cabs are a Manhattan business
    assert trips.pu_location_id.isin([132, 138]).mean() > 0.03  # and airports
    assert trips.pu_location_id.between(1, 265).all() and trips.do_location_id.between(1, 265).all()
    hourly = (
        trips.groupby(trips.pickup_datetime.dt.hour).duration_min.median()
        / trips.groupby(trips.pickup_datetime.dt.hour).trip_distance.median()
    )
    assert hourly.loc[17] > 1.5 * hourly.loc[3]  # rush hour is slower than the night
    # Fares follow distance and time.
    assert (
        np.corrcoef(trips.fare_amount[trips.rate_code_id == 1], trips.trip_distance[trips.rate_code_id == 1])[
            0, 1
        ]
        > 0.9
    )
    money = ["fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "improvement_surcharge"]
    parts = trips[[*money, "congestion_surcharge", "airport_fee", "cbd_congestion_fee"]].fillna(0).sum(axis=1)
    assert np.allclose(parts, trips.total_amount, atol=0.02)
    assert (trips.tip_amount[trips.payment_type != 1] == 0).all()  # only card tips are recorded


def test_noise_floor_is_reported_and_exact() -> None:
    made = generator.generate_month("yellow", "2024-03", 30_000, seed=2)
    trips = tlc.normalise(made.table)
    best = generator.expected_duration_minutes(trips)
    rmse = float(np.sqrt(np.mean((trips.column("duration_min").to_numpy() - best) ** 2)))
    assert rmse == pytest.approx(made.noise_floor_rmse, rel=1e-9)
    meta = generator.read_generator_metadata(made.table.schema)
    assert meta["noise_floor_rmse"] == made.noise_floor_rmse
    assert json.dumps(meta)  # JSON in the parquet metadata


def test_congestion_drift_slows_trips_without_moving_features() -> None:
    base = tlc.normalise(generator.generate_month("yellow", "2024-03", 20_000, seed=1).table).to_pandas()
    slow = tlc.normalise(
        generator.generate_month(
            "yellow", "2024-03", 20_000, seed=1, drift=generator.Drift(congestion=1.3)
        ).table
    ).to_pandas()
    assert slow.duration_min.mean() > 1.2 * base.duration_min.mean()
    assert slow.trip_distance.mean() == pytest.approx(base.trip_distance.mean(), rel=0.02)


def test_covariate_drift_moves_the_zone_mix() -> None:
    drift = generator.Drift(outer_borough_shift=0.8, trip_length=1.5)
    base = tlc.normalise(generator.generate_month("yellow", "2024-03", 20_000, seed=1).table)
    moved = tlc.normalise(generator.generate_month("yellow", "2024-03", 20_000, seed=1, drift=drift).table)
    share = lambda t: (tlc.borough_of(t.column("pu_location_id").to_numpy()) == "Manhattan").mean()  # noqa: E731
    assert share(moved) < share(base) - 0.2
    assert np.mean(moved.column("trip_distance")) > np.mean(base.column("trip_distance"))


def test_bad_knobs_are_rejected() -> None:
    with pytest.raises(ValueError, match="congestion"):
        generator.Drift(congestion=0)
    with pytest.raises(ValueError, match="month must be YYYY-MM"):
        generator.generate_month("yellow", "March", 10)
    with pytest.raises(ValueError, match="taxi_type"):
        generator.generate_month("fhv", "2024-01", 10)


@pytest.mark.parametrize("kind", sorted(generator.CORRUPTIONS))
def test_every_corruption_changes_the_data(kind: str) -> None:
    table = generator.generate_month("yellow", "2024-03", 2_000, seed=1).table
    broken = generator.corrupt(table, kind, rate=0.1, seed=1)
    assert not broken.equals(table)


@pytest.mark.parametrize("kind", generator.FILE_CORRUPTIONS)
def test_file_corruptions_are_not_valid_tlc_files(kind: str) -> None:
    import io

    import pyarrow.parquet as pq

    table = generator.generate_month("yellow", "2024-03", 500, seed=1).table
    data = generator.corrupted_bytes(table, kind)
    if kind == "empty_file":
        assert pq.read_table(io.BytesIO(data)).num_rows == 0
    else:
        with pytest.raises(pa.ArrowInvalid):
            pq.read_table(io.BytesIO(data))
