"""The TLC-format generator: the shape of real months, exact schema, determinism, known noise
floor, drift, corruption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlplatform.core import generator, tlc

REAL = Path(__file__).parent / "fixtures" / "real_tlc"
REAL_MONTHS = ["2021-01", "2021-02", "2021-03"]


@pytest.fixture(scope="module", params=REAL_MONTHS)
def real_and_generated(request: pytest.FixtureRequest) -> tuple[pa.Table, pa.Table, dict, dict]:
    """A real green month and a generated one of the same size, with their shape figures."""
    real = pq.read_table(REAL / f"green_tripdata_{request.param}.parquet")
    made = generator.generate_month("green", request.param, real.num_rows, seed=0, anomalies=True).table
    shapes = [generator.shape_summary(tlc.normalise(t)) for t in (real, made)]
    return real, made, *shapes


def test_generated_green_months_look_like_the_real_ones(real_and_generated) -> None:
    _, _, real, made = real_and_generated
    for figure in ("median_duration_min", "median_distance_mi"):
        assert made[figure] == pytest.approx(real[figure], rel=0.2), figure
    # The busiest pickup zones are the same ones (East and Central Harlem lead).
    assert made["top_pickup_zones"][:3] == real["top_pickup_zones"][:3]
    assert len(set(made["top_pickup_zones"]) & set(real["top_pickup_zones"])) >= 8
    assert made["top_pickup_zone_share"] == pytest.approx(real["top_pickup_zone_share"], rel=0.25)
    assert made["distinct_zone_pairs"] == pytest.approx(real["distinct_zone_pairs"], rel=0.35)
    assert made["blank_code_share"] == pytest.approx(real["blank_code_share"], abs=0.05)


def test_anomaly_shares_are_of_the_real_order(real_and_generated) -> None:
    _, _, real, made = real_and_generated
    assert made["zero_distance_share"] == pytest.approx(real["zero_distance_share"], rel=0.25)
    assert real["under_1_min_share"] / 3 <= made["under_1_min_share"] <= real["under_1_min_share"] * 3
    # Real trips over two hours are mostly meters idling in traffic or at a kerb: a tail the
    # generator's small duration noise (NOISE_SIGMA) reproduces only in part. Same order.
    assert real["over_120_min_share"] / 10 <= made["over_120_min_share"] <= real["over_120_min_share"] * 10


def test_schema_is_the_real_files_of_the_same_period(real_and_generated) -> None:
    real, made, _, _ = real_and_generated
    assert made.schema.remove_metadata() == real.schema.remove_metadata()
    for name in real.schema.names:  # the same columns are empty together (records with blank codes)
        real_nulls = real.column(name).null_count / len(real)
        made_nulls = made.column(name).null_count / len(made)
        assert made_nulls == pytest.approx(real_nulls, abs=0.05), name


def test_later_green_months_are_mostly_metered_street_hails() -> None:
    made = generator.generate_month("green", "2023-02", 60_000, anomalies=True)
    shape = generator.shape_summary(tlc.normalise(made.table))
    # TLC's 2023-02 green month: median 11.5 min and 1.9 mi, zone 74 first with 18% of pickups.
    assert shape["median_duration_min"] == pytest.approx(11.5, rel=0.2)
    assert shape["median_distance_mi"] == pytest.approx(1.9, rel=0.2)
    assert shape["top_pickup_zones"][0] == 74 and shape["top_pickup_zone_share"] > 0.12
    assert shape["blank_code_share"] < 0.1


def test_months_are_clean_unless_anomalies_are_asked_for() -> None:
    clean = tlc.normalise(generator.generate_month("green", "2021-01", 20_000, seed=1).table)
    real_like = tlc.normalise(
        generator.generate_month("green", "2021-01", 20_000, seed=1, anomalies=True).table
    )
    assert zero_distance_share(clean) == 0
    assert 0.02 < zero_distance_share(real_like) < 0.05  # real 2021 green months: 3.2-3.3%


def zero_distance_share(trips: pa.Table) -> float:
    return float(np.mean(trips.column("trip_distance").to_numpy() == 0))


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
    assert hourly.loc[17] > 1.3 * hourly.loc[3]  # rush hour is slower than the night
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


@pytest.mark.parametrize(("taxi_type", "month"), [("yellow", "2024-03"), ("green", "2021-02")])
def test_noise_floor_is_reported_and_exact(taxi_type: str, month: str) -> None:
    made = generator.generate_month(taxi_type, month, 30_000, seed=2, anomalies=True)
    trips = tlc.normalise(made.table)
    best = generator.expected_duration_minutes(trips)
    rmse = float(np.sqrt(np.mean((trips.column("duration_min").to_numpy() - best) ** 2)))
    assert rmse == pytest.approx(made.noise_floor_rmse, rel=1e-9)
    meta = generator.read_generator_metadata(made.table.schema)
    assert meta["noise_floor_rmse"] == made.noise_floor_rmse
    assert json.dumps(meta)  # JSON in the parquet metadata


def test_the_expectation_is_the_conditional_mean() -> None:
    """Residuals average to zero within every slice the features define, zero distances included."""
    made = generator.generate_month("yellow", "2024-03", 200_000, seed=4, anomalies=True)
    trips = tlc.normalise(made.table)
    residual = trips.column("duration_min").to_numpy() - generator.expected_duration_minutes(trips)
    zero = trips.column("trip_distance").to_numpy() == 0
    hour = trips.column("pickup_datetime").to_pandas().dt.hour.to_numpy()
    for mask in (zero, ~zero, hour == 3, hour == 17):
        assert abs(residual[mask].mean()) < 4 * residual[mask].std() / np.sqrt(mask.sum()) + 0.05


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
