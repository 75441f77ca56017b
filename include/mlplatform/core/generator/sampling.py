"""Sampling one month of trips: pickup times, zone pairs, distances, durations; and its shape.

:func:`generate_month` draws from the calibrated :mod:`~mlplatform.core.generator.world`
and writes the records in TLC's format (:mod:`~mlplatform.core.generator.fares` fills in
the codes and the fare). The same seed always gives the same file; the noise floor (the
RMSE of the best possible prediction) is recorded in the file's metadata.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, cast

import numpy as np
import pyarrow as pa

from mlplatform.core import tlc
from mlplatform.core.generator import pathologies
from mlplatform.core.generator.fares import money_and_codes, publication_schema, to_arrow
from mlplatform.core.generator.world import (
    NO_DRIFT,
    NO_TRIP_MINUTES,
    NOISE_SIGMA,
    Drift,
    base_minutes,
    borough_codes,
    expected_minutes,
    world,
)

METADATA_KEY = b"mlplatform.core.generator"
"""Schema metadata key of what the generator recorded (kept as written in existing files)."""
GREEN_BLANK_SHARE_FROM_2022 = 0.05
"""Share of green records with blank codes from 2022 on. The calibration months (2021) hold
47% of them (a dispatched service with its own zone mix); later green files are almost all
metered street hails: their published medians (about 11.5 min, 1.9 mi) and busiest zone (74,
about 18% of pickups) are those of the metered records alone. An assumed round figure."""

# Yellow volume by hour of day (weekday), the familiar TLC daily profile.
# fmt: off
_YELLOW_HOUR_WEIGHTS = np.array(
    [
        2.2, 1.4, 0.9, 0.6, 0.5, 0.7, 1.6, 3.0, 4.0, 4.2, 4.1, 4.3, 4.6, 4.7, 5.0, 5.4, 5.6, 6.1, 6.6,
        6.2, 5.6, 5.3, 4.8, 3.6
    ]
)
# fmt: on
_TRIP_LENGTH_SCALE_MILES = 3.5
"""``Drift.trip_length`` reweights pairs as a gravity model whose reach grows by that factor."""


@dataclass(frozen=True)
class GeneratedMonth:
    """What :func:`generate_month` made."""

    table: pa.Table
    taxi_type: tlc.TaxiType
    month: str
    seed: int
    drift: Drift
    noise_floor_rmse: float
    metadata: dict[str, Any] = field(default_factory=dict)


def _month_bounds(month: str) -> tuple[datetime, int]:
    try:
        start = datetime.strptime(month, "%Y-%m")
    except ValueError:
        raise ValueError(f"month must be YYYY-MM, got {month!r}") from None
    return start, calendar.monthrange(start.year, start.month)[1]


def _sample_pickup_times(rng: np.random.Generator, taxi_type: str, month: str, n: int) -> np.ndarray:
    """Pickup times in microseconds since the epoch, naive local time."""
    start, days = _month_bounds(month)
    weekday_of = (start.weekday() + np.arange(days)) % 7
    if taxi_type == "green":
        hourly = world().hourly
        per_day = np.where(weekday_of >= 5, hourly["weekend"].sum(), hourly["weekday"].sum())
        day = rng.choice(days, size=n, p=per_day / per_day.sum())
        weekend = weekday_of[day] >= 5
        cdf = {k: np.cumsum(v) / v.sum() for k, v in hourly.items()}
        u = rng.random(n)
        hour = np.where(weekend, np.searchsorted(cdf["weekend"], u), np.searchsorted(cdf["weekday"], u))
        hour = np.minimum(hour, 23)
    else:
        day = rng.integers(0, days, n)
        weekday = weekday_of[day]
        hour = rng.choice(24, size=n, p=_YELLOW_HOUR_WEIGHTS / _YELLOW_HOUR_WEIGHTS.sum())
        # Weekend mornings are quieter: move a third of them to the evening.
        late = (weekday >= 5) & (hour >= 6) & (hour <= 10) & (rng.random(n) < 0.35)
        hour = np.where(late, hour + 12, hour)
    seconds = rng.integers(0, 3600, n)
    epoch = calendar.timegm(start.timetuple())  # TLC times are naive local: store them as such
    return cast(np.ndarray, (epoch + day * 86_400 + hour * 3600 + seconds).astype(np.int64) * 1_000_000)


def _pair_probabilities(taxi_type: str, service: str, drift: Drift) -> np.ndarray:
    w = world()
    p = w.od[taxi_type, service].copy()
    if drift.outer_borough_shift:
        manhattan = borough_codes() == tlc.BOROUGHS.index("Manhattan")
        p[manhattan] *= 1.0 - drift.outer_borough_shift
        p[~manhattan] *= 1.0 + 4.0 * drift.outer_borough_shift
    if drift.trip_length != 1.0:
        stretch = (1.0 - 1.0 / drift.trip_length) / _TRIP_LENGTH_SCALE_MILES
        p *= np.exp(np.minimum(w.miles * stretch, 50.0))
    return cast(np.ndarray, (p / p.sum()).ravel())


def _sample_pairs(
    rng: np.random.Generator, taxi_type: str, service: np.ndarray, drift: Drift
) -> tuple[np.ndarray, np.ndarray]:
    size = tlc.N_ZONES + 1
    flat = np.zeros(len(service), dtype=np.int64)
    names = ("coded", "blank") if taxi_type == "green" else ("coded",)
    for code, name in enumerate(names):
        rows = np.flatnonzero(service == code)
        if rows.size:
            cdf = np.cumsum(_pair_probabilities(taxi_type, name, drift))
            flat[rows] = np.minimum(np.searchsorted(cdf, rng.random(rows.size) * cdf[-1]), cdf.size - 1)
    return flat // size, flat % size


def _blank_share(taxi_type: str, month: str) -> float:
    if taxi_type == "yellow":
        return float(world().yellow["blank_share"])
    return world().green["blank_share"] if month < "2022-01" else GREEN_BLANK_SHARE_FROM_2022


@dataclass(frozen=True)
class _Trips:
    """The trips of a month before their codes and fares: what the duration depends on."""

    pickup_us: np.ndarray
    dropoff_us: np.ndarray
    pu: np.ndarray
    do: np.ndarray
    recorded: np.ndarray  # the distance the record shows (0 for an odometer gap)
    duration_min: np.ndarray  # the trip's, before a meter left running stood
    hour: np.ndarray
    weekend: np.ndarray
    blank: np.ndarray
    noise_floor: float


def _distances(
    rng: np.random.Generator,
    taxi_type: str,
    pu: np.ndarray,
    do: np.ndarray,
    blank: np.ndarray,
    regime: np.ndarray,
    drift: Drift,
) -> tuple[np.ndarray, np.ndarray]:
    """Road distances driven (within the zone pair's spread), and each record's chance of an
    odometer gap (a recorded zero): green at its fare regime's share, yellow at its own."""
    w, n = world(), len(pu)
    typical = w.miles[pu, do] * drift.trip_length
    sigma = np.where(pu == do, w.distance_sigma["same_zone"], w.distance_sigma["other"])
    spread = np.exp(np.clip(rng.normal(0.0, 1.0, n), -3.0, 3.0) * sigma)
    distance = np.round(np.clip(typical * spread, 0.01, None), 2)
    if taxi_type == "green":
        zero_share = pathologies.share(regime, "zero_distance", blank)
    else:
        zero_share = np.full(n, w.yellow["zero_distance_share"])
    return distance, zero_share


def _midnight_us(month: str) -> int:
    start, _ = _month_bounds(month)
    return calendar.timegm(start.timetuple()) * 1_000_000


def _trips(rng: np.random.Generator, taxi_type: str, month: str, n: int, drift: Drift, clean: bool) -> _Trips:
    pickup_us = _sample_pickup_times(rng, taxi_type, month, n)
    regime = pathologies.regime_codes(pathologies.schedule_codes(taxi_type, pickup_us))
    real = not clean  # TLC's pathologies are drawn
    before = real & (rng.random(n) < pathologies.share(regime, "previous_month"))
    # Begun in the last hour before the month (hour 23 of its eve), filed by the dropoff after
    # midnight: the pickup time within that hour is set once the trip's length is known.
    pickup_us = np.where(before, _midnight_us(month) - 1_800_000_000, pickup_us)
    blank = rng.random(n) < _blank_share(taxi_type, month)
    # Green records with blank codes are another service (their own zones and trip lengths).
    pu, do = _sample_pairs(rng, taxi_type, (blank & (taxi_type == "green")).astype(int), drift)
    distance, zero_share = _distances(rng, taxi_type, pu, do, blank, regime, drift)
    # Odometer gaps: a zero distance for a trip that was driven, or a no-trip.
    zero = real & (rng.random(n) < zero_share)
    no_trip = zero & (rng.random(n) < world().green["anomalies"]["no_trip_share_of_zero_distance"])
    recorded = np.where(zero, 0.0, distance)

    hour = (pickup_us // 3_600_000_000) % 24
    weekday = ((pickup_us // 86_400_000_000) + 3) % 7  # 1970-01-01 was a Thursday (3)
    weekend = weekday >= 5
    yellow = taxi_type == "yellow"
    base = base_minutes(distance, hour, weekend, pu, do, drift.congestion, yellow)
    noise = rng.normal(0.0, NOISE_SIGMA, n)
    trip_min = np.where(no_trip, rng.uniform(*NO_TRIP_MINUTES, n), base * np.exp(noise))
    trip_s = np.maximum(np.round(trip_min * 60).astype(np.int64), 1)
    ahead_s = np.clip(np.floor(rng.random(n) * np.minimum(trip_s, 3540)), 1, np.maximum(trip_s - 1, 1))
    pickup_us = np.where(before, _midnight_us(month) - ahead_s.astype(np.int64) * 1_000_000, pickup_us)
    # Meters left running: the record lasts hours; the fare is the trip's.
    idle = (
        real & ~no_trip & ~before & (rng.random(n) < pathologies.share(regime, "meter_left_running", blank))
    )
    idle_min = pathologies.meter_left_running_minutes(rng, regime, recorded)
    duration_min = np.where(idle, idle_min, trip_min)
    seconds = np.maximum(np.round(duration_min * 60).astype(np.int64), 1)
    dropoff_us = pickup_us + seconds * 1_000_000
    observed = (dropoff_us - pickup_us) / 60_000_000
    expected = expected_minutes(recorded, hour, weekend, pu, do, drift, yellow)
    trips = ~idle  # a meter left running says nothing about travel time
    noise_floor = float(np.sqrt(np.mean((observed[trips] - expected[trips]) ** 2))) if trips.any() else 0.0
    return _Trips(pickup_us, dropoff_us, pu, do, recorded, trip_min, hour, weekend, blank, noise_floor)


def generate_month(
    taxi_type: tlc.TaxiType,
    month: str,
    rows: int,
    seed: int = 0,
    drift: Drift = NO_DRIFT,
    generation: tlc.Generation | None = None,
    *,
    clean: bool = False,
    anomalies: bool | None = None,
) -> GeneratedMonth:
    """Generate one month of trips as a table in TLC's raw format.

    By default the month holds TLC's own pathologies at the shares of real months of the
    same fare regime (:mod:`~mlplatform.core.generator.pathologies`): zero distances,
    refunds and voids, meters left running, trips begun the month before, and the green
    vendors' itemisation quirks; the contract quarantines each by its rule. ``clean=True``
    leaves them all out (noise-floor studies). ``anomalies`` is the earlier spelling:
    ``anomalies=False`` is ``clean=True``.

    The noise floor is over every record but the meters left running, which carry no
    travel time (the contract quarantines them as ``idle_trip``).
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if taxi_type not in ("yellow", "green"):
        raise ValueError(f"taxi_type must be 'yellow' or 'green', got {taxi_type!r}")
    _month_bounds(month)  # validates the month
    if anomalies is not None:
        clean = not anomalies
    generation = generation or tlc.generation_for_month(month)
    rng = np.random.default_rng([seed, int(month.replace("-", "")), 0 if taxi_type == "yellow" else 1])
    t = _trips(rng, taxi_type, month, rows, drift, clean)
    record = {
        "pickup_us": t.pickup_us,
        "pu": t.pu,
        "do": t.do,
        "distance": t.recorded,
        "minutes": t.duration_min,
    }
    record.update(hour=t.hour, weekend=t.weekend, blank=t.blank)
    columns = money_and_codes(rng, taxi_type, record, clean)
    columns.update(pickup=t.pickup_us, dropoff=t.dropoff_us, pu=t.pu, do=t.do, distance=t.recorded)
    table = to_arrow(columns, publication_schema(taxi_type, month, generation))
    meta = {
        "taxi_type": taxi_type,
        "month": month,
        "rows": rows,
        "seed": seed,
        "drift": asdict(drift),
        "noise_sigma": NOISE_SIGMA,
        "noise_floor_rmse": t.noise_floor,
        "generation": generation,
        "clean": clean,
        "calibration": [s["file"] for s in world().green["source"]],
        "pathologies_set_by": sorted({f for r in pathologies.regimes() for f in r["set_by"]}),
    }
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
    return GeneratedMonth(table, taxi_type, month, seed, drift, t.noise_floor, meta)


def shape_summary(trips: pa.Table, top: int = 10) -> dict[str, Any]:
    """The figures that say whether a month looks like NYC: medians, busiest zones, anomalies.

    ``trips`` is normalised (:func:`mlplatform.core.tlc.normalise`); real and generated months
    are summarised the same way, so the figures compare directly.
    """
    n = trips.num_rows
    minutes = trips.column("duration_min").to_numpy(zero_copy_only=False)
    miles = trips.column("trip_distance").fill_null(np.nan).to_numpy(zero_copy_only=False)
    pu = trips.column("pu_location_id").to_numpy(zero_copy_only=False)
    do = trips.column("do_location_id").to_numpy(zero_copy_only=False)
    zones, counts = np.unique(pu, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    blank = trips.column("payment_type").is_null().to_numpy(zero_copy_only=False)
    return {
        "rows": n,
        "median_duration_min": round(float(np.median(minutes)), 2),
        "median_distance_mi": round(float(np.nanmedian(miles)), 2),
        "top_pickup_zones": [int(z) for z in zones[order]],
        "top_pickup_zone_share": round(float(counts[order[0]] / n), 4),
        "distinct_zone_pairs": int(np.unique(pu.astype(np.int64) * 1000 + do).size),
        "zero_distance_share": round(float(np.mean(miles == 0)), 4),
        "under_1_min_share": round(float(np.mean(minutes < 1)), 4),
        "over_120_min_share": round(float(np.mean((minutes > 120) & (minutes <= 720))), 5),
        "blank_code_share": round(float(np.mean(blank)), 4),
    }


def read_generator_metadata(schema: pa.Schema) -> dict[str, Any] | None:
    """What the generator recorded in a file's metadata, or ``None`` for other files."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else None
