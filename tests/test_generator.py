"""The TLC-format generator: the shape of real months, TLC's pathologies at their calibrated
shares and quarantined by the contract, itemisation by the fare table of each regime, exact
schema, determinism, known noise floor, drift, corruption."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlplatform.core import fares, generator, spec, tlc
from mlplatform.core.generator import defects
from mlplatform.stages import contracts

REPO = Path(__file__).resolve().parents[1]
REAL = Path(__file__).parent / "fixtures" / "real_tlc"
REAL_MONTHS = ["2021-01", "2021-02", "2021-03"]
MONEY = ["fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "improvement_surcharge"]
SURCHARGES = ["congestion_surcharge", "airport_fee", "cbd_congestion_fee"]


@pytest.fixture(scope="module", params=REAL_MONTHS)
def real_and_generated(
    request: pytest.FixtureRequest,
) -> tuple[pa.Table, pa.Table, generator.MonthShape, generator.MonthShape]:
    """A real green month and a generated one of the same size, with their shape figures."""
    real = pq.read_table(REAL / f"green_tripdata_{request.param}.parquet")
    made = generator.generate_month("green", request.param, real.num_rows, seed=0).table
    shapes = [generator.shape_summary(tlc.normalise(t)) for t in (real, made)]
    return real, made, *shapes


def test_generated_green_months_look_like_the_real_ones(real_and_generated) -> None:
    _, _, real, made = real_and_generated
    for figure in ("median_duration_min", "median_distance_mi"):
        assert getattr(made, figure) == pytest.approx(getattr(real, figure), rel=0.2), figure
    # The busiest pickup zones are the same ones (East and Central Harlem lead).
    assert made.top_pickup_zones[:3] == real.top_pickup_zones[:3]
    assert len(set(made.top_pickup_zones) & set(real.top_pickup_zones)) >= 8
    assert made.top_pickup_zone_share == pytest.approx(real.top_pickup_zone_share, rel=0.25)
    assert made.distinct_zone_pairs == pytest.approx(real.distinct_zone_pairs, rel=0.35)
    assert made.blank_code_share == pytest.approx(real.blank_code_share, abs=0.05)


def test_anomaly_shares_are_of_the_real_order(real_and_generated) -> None:
    _, _, real, made = real_and_generated
    assert made.zero_distance_share == pytest.approx(real.zero_distance_share, rel=0.25)
    assert real.under_1_min_share / 3 <= made.under_1_min_share <= real.under_1_min_share * 3
    # Real trips over two hours are mostly meters idling in traffic or at a kerb: a tail the
    # generator's small duration noise (NOISE_SIGMA) reproduces only in part. Same order.
    assert real.over_120_min_share / 10 <= made.over_120_min_share <= real.over_120_min_share * 10


def test_schema_is_the_real_files_of_the_same_period(real_and_generated) -> None:
    real, made, _, _ = real_and_generated
    assert made.schema.remove_metadata() == real.schema.remove_metadata()
    for name in real.schema.names:  # the same columns are empty together (records with blank codes)
        real_nulls = real.column(name).null_count / len(real)
        made_nulls = made.column(name).null_count / len(made)
        assert made_nulls == pytest.approx(real_nulls, abs=0.05), name


def test_later_green_months_are_mostly_metered_street_hails() -> None:
    made = generator.generate_month("green", "2023-02", 60_000)
    shape = generator.shape_summary(tlc.normalise(made.table))
    # TLC's 2023-02 green month: median 11.5 min and 1.9 mi, zone 74 first with 18% of pickups.
    assert shape.median_duration_min == pytest.approx(11.5, rel=0.2)
    assert shape.median_distance_mi == pytest.approx(1.9, rel=0.2)
    assert shape.top_pickup_zones[0] == 74 and shape.top_pickup_zone_share > 0.12
    assert shape.blank_code_share < 0.1


def pathology_masks(trips: pd.DataFrame, month: str) -> dict[str, np.ndarray]:
    """Each pathology as the contract sees it (its rules' definitions, on normalised trips)."""
    minutes = trips["duration_min"].to_numpy()
    miles = trips["trip_distance"].to_numpy()
    return {
        "zero_distance": miles == 0,
        "refund": trips["fare_amount"].to_numpy() < 0,
        "meter_left_running": (minutes > 60) & (miles / (minutes / 60) < 2),
        "previous_month": (trips["pickup_datetime"] < pd.Timestamp(f"{month}-01")).to_numpy(),
    }


def calibrated_shares(trips: pd.DataFrame, taxi_type: str) -> dict[str, float]:
    """The share of each pathology the calibration sets for these records (their regime and service)."""
    pickup_us = trips["pickup_datetime"].to_numpy().astype("datetime64[us]").astype(np.int64)
    regime = defects.regime_codes(defects.schedule_codes(taxi_type, pickup_us))
    blank = trips["payment_type"].isna().to_numpy()
    if taxi_type == "yellow":
        blank = np.zeros(len(trips), bool)  # flex fares are street hails: the coded shares
    zero = defects.share(regime, "zero_distance", blank)
    if taxi_type == "yellow":
        zero = np.full(len(trips), generator.world().yellow_zero_distance_share)
    return {
        "zero_distance": float(zero.mean()),
        "refund": float(defects.share(regime, "refund", blank).mean()),
        "meter_left_running": float(defects.share(regime, "meter_left_running", blank).mean()),
        "previous_month": float(defects.share(regime, "previous_month").mean()),
    }


@pytest.mark.parametrize(
    ("taxi_type", "month"),
    [("green", "2021-02"), ("green", "2023-01"), ("green", "2025-03"), ("yellow", "2024-03")],
)
def test_each_pathology_is_at_its_calibrated_share(taxi_type: str, month: str) -> None:
    rows = 300_000
    trips = tlc.normalise(generator.generate_month(taxi_type, month, rows, seed=5).table).to_pandas()
    found = {name: int(mask.sum()) for name, mask in pathology_masks(trips, month).items()}
    expected = calibrated_shares(trips, taxi_type)
    for name in ("zero_distance", "refund", "meter_left_running"):
        # Binomial counts: within five standard deviations of the calibrated share (meters
        # left running also count zero-distance trips over an hour, a few per 100,000).
        mean = expected[name] * rows
        assert abs(found[name] - mean) < 5 * np.sqrt(mean) + 0.0002 * rows, (name, found[name], mean)
    # A few a month (real months: 0-3 in 65,000-85,000 rows).
    assert 0 < found["previous_month"] <= 5 * expected["previous_month"] * rows + 5


def test_regimes_take_the_shares_of_their_own_real_months() -> None:
    """Pickups under each rate of fare draw the figures measured on real months of that rate."""
    pickups = np.array(["2019-06-01", "2022-12-18", "2022-12-19", "2025-06-01"], dtype="datetime64[us]")
    regime = defects.regime_codes(defects.schedule_codes("green", pickups.astype(np.int64)))
    assert regime.tolist() == [0, 0, 1, 1]
    coded = np.zeros(4, bool)
    # Street hails of green 2021-01..03, then of 2023-01 (tests/fixtures/real_tlc).
    assert defects.share(regime, "zero_distance", coded).tolist() == [0.04815, 0.04815, 0.05004, 0.05004]
    assert defects.share(regime, "meter_left_running", coded).tolist() == [
        0.00481,
        0.00481,
        0.00567,
        0.00567,
    ]
    assert defects.share(regime, "refund", coded).tolist() == [0.00315, 0.00315, 0.00268, 0.00268]
    sources = {r.fares_from: list(r.set_by) for r in defects.regimes()}
    assert sources == {
        "2012-09-04": [f"green_tripdata_{m}.parquet" for m in REAL_MONTHS],
        "2022-12-19": ["green_tripdata_2023-01.parquet"],
    }
    table = defects.calibration_table()
    assert {row.figure for row in table} >= {
        "zero_distance",
        "refund",
        "meter_left_running",
        "previous_month",
    }
    assert all(row.set_by and row.values for row in table)


def test_refunds_are_negative_in_every_money_part() -> None:
    trips = tlc.normalise(generator.generate_month("green", "2023-01", 100_000, seed=2).table).to_pandas()
    refunds = trips[trips["fare_amount"] < 0]
    assert len(refunds) > 100
    coded = refunds[refunds["payment_type"].notna()]
    assert set(coded["payment_type"]) <= {3, 4} and (coded["payment_type"] == 3).mean() > 0.6
    assert (refunds[["mta_tax", "improvement_surcharge", "total_amount"]] <= 0).all().all()
    assert (refunds["improvement_surcharge"] < 0).all() and (refunds["extra"] <= 0).all()
    parts = refunds[[*MONEY, *SURCHARGES]].fillna(0).sum(axis=1)
    assert np.allclose(parts, refunds["total_amount"], atol=0.011)


def test_clean_months_hold_no_pathology() -> None:
    for taxi_type, month in (("green", "2021-01"), ("green", "2023-01"), ("yellow", "2025-02")):
        made = generator.generate_month(taxi_type, month, 100_000, seed=1, clean=True)
        trips = tlc.normalise(made.table).to_pandas()
        assert {name: int(m.sum()) for name, m in pathology_masks(trips, month).items()} == dict.fromkeys(
            ("zero_distance", "refund", "meter_left_running", "previous_month"), 0
        )
        # Nor any itemisation quirk: every total is the sum of its parts, every rate the table's.
        parts = trips[[*MONEY, *SURCHARGES]].fillna(0).sum(axis=1)
        assert np.allclose(parts, trips["total_amount"], atol=0.011)
        schedule = fares.schedule_at(taxi_type, pd.Timestamp(f"{month}-15"))
        assert set(trips["improvement_surcharge"]) == {schedule.improvement_surcharge}
        assert made.metadata.clean is True
    # The earlier spelling still works.
    assert generator.generate_month("green", "2021-01", 2_000, seed=1, anomalies=False).metadata.clean


@pytest.mark.parametrize(
    ("taxi_type", "month"),
    [
        ("green", "2021-03"),
        ("green", "2023-06"),
        ("green", "2025-02"),
        ("yellow", "2021-06"),
        ("yellow", "2025-02"),
    ],
)
def test_itemisation_follows_the_fare_table_in_force(taxi_type: str, month: str) -> None:
    trips = tlc.normalise(
        generator.generate_month(taxi_type, month, 30_000, seed=3, clean=True).table
    ).to_pandas()
    s = fares.schedule_at(taxi_type, pd.Timestamp(f"{month}-15"))
    metered = trips[trips["rate_code_id"] == 1]
    units = (metered["fare_amount"] - s.initial_charge) / s.per_unit
    assert np.allclose(units, units.round(), atol=1e-6) and (units >= 0).all()  # initial charge + units
    assert (trips.loc[trips["rate_code_id"] == 2, "fare_amount"] == s.jfk_flat_fare).all()
    assert set(trips["mta_tax"]) <= {0.0, s.mta_tax}
    assert set(trips["improvement_surcharge"]) == {s.improvement_surcharge}
    assert set(trips["congestion_surcharge"].dropna()) <= {0.0, s.congestion_surcharge}
    assert set(trips["cbd_congestion_fee"].fillna(0)) <= {0.0, s.cbd_congestion_fee}
    if taxi_type == "yellow":
        airport = trips["pu_location_id"].isin([132, 138])
        fees = set(trips.loc[airport, "airport_fee"].dropna())  # flex-fare records leave it empty
        assert fees == {0.0, s.airport_fee} or fees == {s.airport_fee}
        assert (trips.loc[~airport, "airport_fee"].fillna(0) == 0).all()
    hour = trips["pickup_datetime"].dt.hour
    night = metered[(hour[metered.index] >= 20) | (hour[metered.index] < 6)]
    no_lga = night[~night["pu_location_id"].eq(138) & ~night["do_location_id"].eq(138)]
    assert set(no_lga["extra"]) == {s.night_surcharge}
    if s.cbd_congestion_fee:
        assert (trips["cbd_congestion_fee"] == s.cbd_congestion_fee).mean() > 0.05


def test_a_month_straddling_a_fare_change_is_itemised_by_both() -> None:
    trips = tlc.normalise(
        generator.generate_month("yellow", "2022-12", 20_000, seed=1, clean=True).table
    ).to_pandas()
    after = trips["pickup_datetime"] >= pd.Timestamp(fares.FARE_CHANGE_2022)
    assert set(trips.loc[~after, "improvement_surcharge"]) == {0.30}
    assert set(trips.loc[after, "improvement_surcharge"]) == {1.00}
    assert set(trips.loc[after & (trips["rate_code_id"] == 2), "fare_amount"]) == {70.0}


def test_green_vendors_itemise_with_their_real_quirks() -> None:
    """Where the real months show a quirk, the generated month shows it at about that share."""
    before = tlc.normalise(generator.generate_month("green", "2021-02", 100_000, seed=4).table).to_pandas()
    before = before[before["fare_amount"] >= 0]
    street_v1 = before[(before["vendor_id"] == 1) & before["payment_type"].notna()]
    charged = street_v1[street_v1["congestion_surcharge"] == 2.75]
    residual = (charged["total_amount"] - charged[[*MONEY, "congestion_surcharge"]].sum(axis=1)).round(2)
    assert len(charged) > 200 and (residual == -2.75).all()  # in extra as well, counted once
    blank = before[before["payment_type"].isna()]
    blank_residual = (blank["total_amount"] - blank[MONEY].sum(axis=1)).round(2)
    assert 0.001 < (blank_residual == 2.75).mean() < 0.05  # real: 1.4% of blank-code records

    after = tlc.normalise(generator.generate_month("green", "2023-01", 100_000, seed=4).table).to_pandas()
    after = after[after["fare_amount"] >= 0]
    street_v1 = after[
        (after["vendor_id"] == 1) & after["payment_type"].notna() & (after["rate_code_id"] == 1)
    ]
    assert (street_v1["mta_tax"] == 1.5).mean() == pytest.approx(0.984, abs=0.02)  # real: 98.4%
    vendor2 = after[after["vendor_id"] == 2]
    assert (vendor2["improvement_surcharge"] == 0.3).mean() == pytest.approx(0.067, abs=0.01)  # stale meters
    later = tlc.normalise(generator.generate_month("green", "2024-01", 20_000, seed=4).table).to_pandas()
    assert (later["improvement_surcharge"].abs() == 1.0).all()  # meters all set by then


@pytest.fixture(scope="module")
def gx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gx") / "great_expectations"
    shutil.copytree(REPO / "great_expectations", root, ignore=shutil.ignore_patterns("uncommitted"))
    return root


RULE_OF = {
    "zero_distance": "zero_distance",
    "refund": "negative_fare",
    "meter_left_running": "idle_trip",
    "previous_month": "pickup_outside_month",
}


@pytest.mark.parametrize(
    ("taxi_type", "month"), [("green", "2021-02"), ("green", "2023-01"), ("yellow", "2025-02")]
)
def test_the_generated_month_passes_the_contract_with_its_pathologies_quarantined(
    taxi_type: str, month: str, gx_root: Path
) -> None:
    use_case = spec.load_spec("taxi_trip_duration")
    made = generator.generate_month(taxi_type, month, 200_000, seed=6)
    buffer = io.BytesIO()
    pq.write_table(made.table, buffer)
    verdict = contracts.evaluate(
        buffer.getvalue(), use_case, month, source_path=tlc.file_name(taxi_type, month), root=gx_root
    )
    assert not verdict.breaches, verdict.breaches
    assert 0 < verdict.bad_row_share < use_case.contract.max_bad_row_share
    trips = tlc.normalise(made.table).to_pandas()
    expected = calibrated_shares(trips, taxi_type)
    for pathology, mask in pathology_masks(trips, month).items():
        assert verdict.rule_counts.get(RULE_OF[pathology], 0) >= mask.sum(), pathology
        # Each pathology is there, but trips begun the month before are rare under the 2012
        # fares (one in 224,917 real rows): under one expected in this month.
        assert mask.sum() > 0 or expected[pathology] * len(trips) < 3, pathology

    clean = generator.generate_month(taxi_type, month, 50_000, seed=6, clean=True)
    buffer = io.BytesIO()
    pq.write_table(clean.table, buffer)
    verdict = contracts.evaluate(
        buffer.getvalue(), use_case, month, source_path=tlc.file_name(taxi_type, month), root=gx_root
    )
    assert not verdict.breaches and verdict.bad_rows == 0, verdict.rule_counts


@pytest.mark.parametrize(
    ("taxi_type", "month", "clean"),
    [("yellow", "2024-03", False), ("green", "2023-01", False), ("green", "2021-02", True)],
)
def test_same_seed_same_file(taxi_type: str, month: str, clean: bool) -> None:
    a = generator.generate_month(taxi_type, month, 5_000, seed=7, clean=clean).table
    b = generator.generate_month(taxi_type, month, 5_000, seed=7, clean=clean).table
    c = generator.generate_month(taxi_type, month, 5_000, seed=8, clean=clean).table
    assert a.equals(b)
    assert not a.equals(c)


def test_pickups_fall_inside_the_month() -> None:
    table = tlc.normalise(generator.generate_month("green", "2024-02", 20_000, seed=1, clean=True).table)
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
    made = generator.generate_month(taxi_type, month, 30_000, seed=2, clean=True)
    trips = tlc.normalise(made.table)
    best = generator.expected_duration_minutes(trips)
    rmse = float(np.sqrt(np.mean((trips.column("duration_min").to_numpy() - best) ** 2)))
    assert rmse == pytest.approx(made.noise_floor_rmse, rel=1e-9)
    # With TLC's pathologies the floor leaves out the meters left running (no travel time);
    # zero distances, counted, raise it.
    real_like = generator.generate_month(taxi_type, month, 30_000, seed=2)
    assert made.noise_floor_rmse < real_like.noise_floor_rmse < 2 * made.noise_floor_rmse
    meta = generator.read_generator_metadata(made.table.schema)
    assert meta is not None and meta.noise_floor_rmse == made.noise_floor_rmse
    assert json.dumps(meta.to_dict())  # JSON in the parquet metadata


def test_the_expectation_is_the_conditional_mean() -> None:
    """Residuals average to zero within every slice the features define, zero distances included."""
    made = generator.generate_month("yellow", "2024-03", 200_000, seed=4)
    trips = tlc.normalise(made.table)
    residual = trips.column("duration_min").to_numpy() - generator.expected_duration_minutes(trips)
    zero = trips.column("trip_distance").to_numpy() == 0
    hour = trips.column("pickup_datetime").to_pandas().dt.hour.to_numpy()
    # Meters left running carry no travel time: the expectation is over the others.
    idle = pathology_masks(trips.to_pandas(), "2024-03")["meter_left_running"] & ~zero
    for mask in (zero & ~idle, ~zero & ~idle, (hour == 3) & ~idle, (hour == 17) & ~idle):
        assert abs(residual[mask].mean()) < 4 * residual[mask].std() / np.sqrt(mask.sum()) + 0.05


def test_congestion_drift_slows_trips_without_moving_features() -> None:
    base = tlc.normalise(generator.generate_month("yellow", "2024-03", 20_000, seed=1).table).to_pandas()
    slow = tlc.normalise(
        generator.generate_month(
            "yellow", "2024-03", 20_000, seed=1, drift=generator.Drift(congestion=1.3)
        ).table
    ).to_pandas()
    # Medians: meters left running (hours long) are in both months, and not slowed.
    assert slow.duration_min.median() > 1.2 * base.duration_min.median()
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


def test_mlplatform_generate_clean_leaves_the_pathologies_out(tmp_path: Path) -> None:
    import subprocess
    import sys

    def generate(*flags: str) -> pd.DataFrame:
        out = tmp_path / f"green{len(flags)}.parquet"
        command = ["generate", "--kind", "green", "--month", "2023-01", "--rows", "20000", "--out", str(out)]
        result = subprocess.run(
            [sys.executable, "-m", "mlplatform", *command, *flags, "--json"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        return tlc.normalise(pq.read_table(out)).to_pandas()

    real_like, clean = generate(), generate("--clean")
    assert pathology_masks(real_like, "2023-01")["refund"].any()
    assert not any(mask.any() for mask in pathology_masks(clean, "2023-01").values())
