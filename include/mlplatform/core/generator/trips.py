"""A generated month's trips: sampled, itemised, and laid out as TLC's file.

:func:`generate_month` draws pickup times, zone pairs, distances and durations from the
calibrated :mod:`~mlplatform.core.generator.world`, then the codes (vendor, rate code,
payment type, passengers, flags, following the calibrated mixes) and the money, and writes
the records in TLC's format of the month's publication period. The same seed always gives
the same file; the noise floor (the RMSE of the best possible prediction) is recorded in
the file's metadata, and :func:`shape_summary` describes a month's shape.

Money follows TLC's fare table (:mod:`mlplatform.core.fares`): each record is itemised by
the schedule in force at its pickup (initial charge and units for distance and slow time,
night and peak surcharges in ``extra``, MTA tax, improvement, congestion and CBD
surcharges, the airport fee on yellow airport pickups, JFK flat fare, Newark surcharge),
so a month that straddles a fare change is itemised by both. Records with blank codes (flex
or dispatched trips) leave the driver-entered fields and their surcharges blank. Unless a
month is clean, TLC's own pathologies (refunds and voids, meters left running, trips begun
the month before, the green vendors' itemisation quirks) appear at the shares of real
months of the same regime (:mod:`~mlplatform.core.generator.defects`).
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import numpy as np
import pyarrow as pa

from mlplatform.core import fares, tlc
from mlplatform.core.generator import defects
from mlplatform.core.generator.world import (
    AIRPORTS,
    NO_DRIFT,
    NO_TRIP_MINUTES,
    NOISE_SIGMA,
    Drift,
    base_minutes,
    borough_codes,
    expected_minutes,
    world,
)
from mlplatform.core.records import Record

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
class GeneratorMetadata(Record):
    """What the generator records in a file's schema metadata: how the month was made."""

    taxi_type: tlc.TaxiType
    month: str
    rows: int
    seed: int
    drift: Drift
    noise_sigma: float
    noise_floor_rmse: float
    generation: tlc.Generation
    clean: bool
    calibration: tuple[str, ...]
    """The real files the world was fitted on."""
    pathologies_set_by: tuple[str, ...]
    """The real files that set the shares of TLC's own pathologies."""


@dataclass(frozen=True)
class GeneratedMonth:
    """What :func:`generate_month` made."""

    table: pa.Table
    taxi_type: tlc.TaxiType
    month: str
    seed: int
    drift: Drift
    noise_floor_rmse: float
    metadata: GeneratorMetadata


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
        return world().yellow_blank_share
    return world().green_blank_share if month < "2022-01" else GREEN_BLANK_SHARE_FROM_2022


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
        zero_share = defects.share(regime, "zero_distance", blank)
    else:
        zero_share = np.full(n, w.yellow_zero_distance_share)
    return distance, zero_share


def _midnight_us(month: str) -> int:
    start, _ = _month_bounds(month)
    return calendar.timegm(start.timetuple()) * 1_000_000


def _trips(rng: np.random.Generator, taxi_type: str, month: str, n: int, drift: Drift, clean: bool) -> _Trips:
    pickup_us = _sample_pickup_times(rng, taxi_type, month, n)
    regime = defects.regime_codes(defects.schedule_codes(taxi_type, pickup_us))
    real = not clean  # TLC's pathologies are drawn
    before = real & (rng.random(n) < defects.share(regime, "previous_month"))
    # Begun in the last hour before the month (hour 23 of its eve), filed by the dropoff after
    # midnight: the pickup time within that hour is set once the trip's length is known.
    pickup_us = np.where(before, _midnight_us(month) - 1_800_000_000, pickup_us)
    blank = rng.random(n) < _blank_share(taxi_type, month)
    # Green records with blank codes are another service (their own zones and trip lengths).
    pu, do = _sample_pairs(rng, taxi_type, (blank & (taxi_type == "green")).astype(int), drift)
    distance, zero_share = _distances(rng, taxi_type, pu, do, blank, regime, drift)
    # Odometer gaps: a zero distance for a trip that was driven, or a no-trip.
    zero = real & (rng.random(n) < zero_share)
    no_trip = zero & (rng.random(n) < world().no_trip_share_of_zero_distance)
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
    idle = real & ~no_trip & ~before & (rng.random(n) < defects.share(regime, "meter_left_running", blank))
    idle_min = defects.meter_left_running_minutes(rng, regime, recorded)
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
    same fare regime (:mod:`~mlplatform.core.generator.defects`): zero distances,
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
    meta = GeneratorMetadata(
        taxi_type=taxi_type,
        month=month,
        rows=rows,
        seed=seed,
        drift=drift,
        noise_sigma=NOISE_SIGMA,
        noise_floor_rmse=t.noise_floor,
        generation=generation,
        clean=clean,
        calibration=tuple(world().calibration_files),
        pathologies_set_by=tuple(sorted({f for r in defects.regimes() for f in r.set_by})),
    )
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta.to_dict()).encode()})
    return GeneratedMonth(table, taxi_type, month, seed, drift, t.noise_floor, meta)


@dataclass(frozen=True)
class MonthShape(Record):
    """The figures that say whether a month looks like NYC (see :func:`shape_summary`)."""

    rows: int
    median_duration_min: float
    median_distance_mi: float
    top_pickup_zones: tuple[int, ...]  # busiest first
    top_pickup_zone_share: float
    distinct_zone_pairs: int
    zero_distance_share: float
    under_1_min_share: float
    over_120_min_share: float  # of trips up to 12 hours
    blank_code_share: float


def shape_summary(trips: pa.Table, top: int = 10) -> MonthShape:
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
    return MonthShape(
        rows=n,
        median_duration_min=round(float(np.median(minutes)), 2),
        median_distance_mi=round(float(np.nanmedian(miles)), 2),
        top_pickup_zones=tuple(int(z) for z in zones[order]),
        top_pickup_zone_share=round(float(counts[order[0]] / n), 4),
        distinct_zone_pairs=int(np.unique(pu.astype(np.int64) * 1000 + do).size),
        zero_distance_share=round(float(np.mean(miles == 0)), 4),
        under_1_min_share=round(float(np.mean(minutes < 1)), 4),
        over_120_min_share=round(float(np.mean((minutes > 120) & (minutes <= 720))), 5),
        blank_code_share=round(float(np.mean(blank)), 4),
    )


def read_generator_metadata(schema: pa.Schema) -> GeneratorMetadata | None:
    """What the generator recorded in a file's metadata, or ``None`` for other files."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return GeneratorMetadata.from_dict(json.loads(raw)) if raw else None


# -- codes, money and the file layout -----------------------------------------------------------
def _draw(rng: np.random.Generator, shares: dict[str, float], n: int) -> np.ndarray:
    codes = np.array([float(k) for k in shares])
    p = np.array(list(shares.values()))
    return rng.choice(codes, size=n, p=p / p.sum()).astype(np.int64)


def _codes(
    rng: np.random.Generator, taxi_type: str, rate: np.ndarray, blank: np.ndarray
) -> dict[str, np.ndarray]:
    """Rate code, payment type, passengers, vendor, store-and-forward flag and trip type."""
    n = len(rate)
    if taxi_type == "green":
        codes = world().codes
        drawn = _draw(rng, codes.rate_code, n)
        rate = np.where(rate == 1, drawn, rate)  # negotiated fares are common in green cabs
        payment = _draw(rng, codes.payment_type, n)
        passengers = _draw(rng, codes.passenger_count, n)
        vendor = np.where(blank, _draw(rng, codes.vendor_blank, n), _draw(rng, codes.vendor_coded, n))
        flag = rng.random(n) < codes.store_and_fwd_y
        trip_type = _draw(rng, codes.trip_type, n)
    else:
        rate = np.where(rng.random(n) < 0.004, 5, rate)
        payment = rng.choice([1, 2, 3, 4], size=n, p=[0.74, 0.23, 0.02, 0.01])
        passengers = rng.choice([1, 2, 3, 4, 5, 6], size=n, p=[0.74, 0.15, 0.04, 0.03, 0.02, 0.02])
        vendor = rng.choice([1, 2], size=n, p=[0.3, 0.7])
        flag = rng.random(n) < 0.005
        trip_type = np.where(rng.random(n) < 0.03, 2, 1)
    return {
        "vendor": vendor,
        "passengers": passengers,
        "rate": rate,
        "flag": flag,
        "payment": np.where(blank, 0, payment),
        "blank": blank,
        "trip_type": trip_type,
    }


def _tips(
    rng: np.random.Generator, pu: np.ndarray, distance: np.ndarray, hour: np.ndarray, weekend: np.ndarray
) -> np.ndarray:
    """The tip share of each fare.

    Card tips are generous (>= 20%) more often at night, in Manhattan, for short trips. Nearly
    all yellow pickups are in Manhattan, so the hour, airport and distance effects carry the
    signal: a perfect model reaches an ROC AUC of about 0.65 on yellow months.
    """
    n = len(pu)
    manhattan = borough_codes()[pu] == tlc.BOROUGHS.index("Manhattan")
    logit = (
        -0.2
        + 0.6 * manhattan
        + 0.8 * ((hour >= 20) | (hour < 4))
        - 0.8 * np.isin(pu, AIRPORTS)
        - 0.08 * np.clip(distance, 0, 20)
        + 0.4 * weekend
    )
    generous = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    return np.where(
        generous, rng.choice([0.2, 0.22, 0.25, 0.3], size=n), rng.choice([0.0, 0.1, 0.15, 0.18], size=n)
    )


_BRIDGE_TOLLS = (("2019-03-31", 6.12), ("2021-04-11", 6.55), ("2023-08-06", 6.94))
"""The MTA's E-ZPass toll on its bridges and tunnels, from each date: what ``tolls_amount``
shows for a crossing (real green months: $6.12 in 2021, $6.55 in 2023-01)."""
_MONEY = (
    "fare",
    "extra",
    "mta_tax",
    "tip",
    "tolls",
    "improvement",
    "total",
    "congestion",
    "airport_fee",
    "cbd",
)
_SCHEDULE_FIELDS = (
    "initial_charge",
    "per_unit",
    "night_surcharge",
    "peak_surcharge",
    "mta_tax",
    "improvement_surcharge",
    "congestion_surcharge",
    "airport_fee",
    "cbd_congestion_fee",
    "jfk_flat_fare",
    "newark_surcharge",
    "minimum_fare",
    "jfk_peak_surcharge",
    "laguardia_surcharge",
)


def _schedule_values(schedules: np.ndarray) -> dict[str, np.ndarray]:
    """Each fare-table field as an array over the records' schedule codes."""
    return {f: np.array([getattr(s, f) for s in fares.SCHEDULES])[schedules] for f in _SCHEDULE_FIELDS}


def _bridge_tolls(pickup_us: np.ndarray) -> np.ndarray:
    starts = np.array([np.datetime64(day, "us").astype(np.int64) for day, _ in _BRIDGE_TOLLS])
    amounts = np.array([amount for _, amount in _BRIDGE_TOLLS])
    return amounts[np.maximum(np.searchsorted(starts, pickup_us, side="right") - 1, 0)]


def _metered(
    s: dict[str, np.ndarray], rate: np.ndarray, distance: np.ndarray, minutes: np.ndarray
) -> np.ndarray:
    """The fare: the initial charge plus a unit per 1/5 mile or per minute below 12 mph (at
    least the minimum); the JFK flat fare; the Newark surcharge on top of the meter."""
    slow_minutes = np.clip(minutes - 60.0 * distance / 12.0, 0.0, None)
    units = np.floor(5.0 * distance + slow_minutes)
    fare = np.maximum(s["initial_charge"] + s["per_unit"] * units, s["minimum_fare"])
    fare = np.where(rate == 2, s["jfk_flat_fare"], fare)
    return np.where(rate == 3, fare + s["newark_surcharge"], fare)


def money_and_codes(
    rng: np.random.Generator,
    taxi_type: str,
    trips: dict[str, np.ndarray],
    clean: bool,
) -> dict[str, np.ndarray]:
    """Codes and the fare breakdown of each record, by the fare schedule in force at its pickup.

    ``trips`` holds ``pickup_us``, ``pu``, ``do``, ``distance`` (as recorded), ``minutes``
    (what the meter charged for: a meter left running charged the trip before it stood),
    ``hour``, ``weekend`` and ``blank``. Unless ``clean``, green records carry their
    vendors' itemisation quirks (:func:`_quirks`), and refunds and voids are negative in
    every money part (:func:`_refunds`), at the shares of their fare regime.
    """
    pu, do, blank, hour, weekend = (trips[k] for k in ("pu", "do", "blank", "hour", "weekend"))
    n = len(pu)
    b = borough_codes()
    manhattan = tlc.BOROUGHS.index("Manhattan")
    jfk = (pu == 132) | (do == 132)
    newark = (pu == 1) | (do == 1)
    rate = np.where(jfk & ((b[pu] == manhattan) | (b[do] == manhattan)), 2, 1)
    out = _codes(rng, taxi_type, np.where(newark, 3, rate), blank)
    rate = out["rate"]
    schedules = defects.schedule_codes(taxi_type, trips["pickup_us"])
    regime = defects.regime_codes(schedules)
    if not clean and taxi_type == "green":  # meters not yet set to a new rate of fare
        stale = defects.stale_meters(rng, schedules, regime, out["vendor"], trips["pickup_us"])
        schedules = np.where(stale, schedules - 1, schedules)
    s = _schedule_values(schedules)
    fare = _metered(s, rate, trips["distance"], trips["minutes"])
    fare = np.where(rate == 5, np.round(fare * rng.uniform(0.8, 1.2, n)), fare)  # negotiated
    peak = ~weekend & (hour >= 16) & (hour < 20)
    night = (hour >= 20) | (hour < 6)
    extra = np.where(
        rate == 2, peak * s["jfk_peak_surcharge"], night * s["night_surcharge"] + peak * s["peak_surcharge"]
    )
    extra = np.where(rate == 5, 0.0, extra) + s["laguardia_surcharge"] * ((pu == 138) | (do == 138))
    # The MTA tax is charged on metered trips within its region: not on Newark trips,
    # negotiated fares, or the dispatched service (records with blank codes).
    mta_tax = np.where(np.isin(rate, (3, 5)) | blank, 0.0, s["mta_tax"])
    touches_manhattan = (b[pu] == manhattan) | (b[do] == manhattan)
    owed = np.where(touches_manhattan, s["congestion_surcharge"], 0.0)
    if taxi_type == "green":  # green street hails that touch Manhattan mostly stay north of 96th Street
        owed = np.where(blank | (rng.random(n) < 0.3), owed, 0.0)
    # Blank-code records leave the driver-entered surcharges blank (see _quirks for where
    # their congestion surcharge goes).
    congestion = np.where(blank, 0.0, owed)
    airport_fee = np.where(np.isin(pu, (132, 138)) & ~blank, s["airport_fee"], 0.0)
    # Half the trips between Manhattan/Brooklyn and the rest cross a tolled bridge or tunnel.
    core = (manhattan, tlc.BOROUGHS.index("Brooklyn"))
    crossing = np.isin(b[pu], core) != np.isin(b[do], core)
    tolls = np.where(crossing & (rng.random(n) < 0.5), _bridge_tolls(trips["pickup_us"]), 0.0)
    # The CBD toll's zone (south of 60th Street) lies inside the congestion surcharge's.
    cbd = np.where(owed > 0, s["cbd_congestion_fee"], 0.0)
    tip = np.where(
        out["payment"] == 1, np.round(fare * _tips(rng, pu, trips["distance"], hour, weekend), 2), 0.0
    )
    improvement = s["improvement_surcharge"]
    total = fare + extra + mta_tax + improvement + congestion + tip + tolls + cbd + airport_fee
    out.update(fare=fare, extra=extra, mta_tax=mta_tax, tip=tip, tolls=tolls, improvement=improvement)
    out.update(total=total, congestion=congestion, airport_fee=airport_fee, cbd=cbd)
    if not clean:
        if taxi_type == "green":
            _quirks(rng, out, regime, np.where(blank, owed, 0.0))
        _refunds(rng, out, regime)
    for name in _MONEY:
        out[name] = np.round(out[name], 2)
    return out


def _quirks(
    rng: np.random.Generator, out: dict[str, np.ndarray], regime: np.ndarray, blank_owed: np.ndarray
) -> None:
    """TLC's green vendors' itemisation, at the shares of their regime's real months.

    Vendor 1 street hails show the congestion surcharge in ``extra`` as well as in its
    column, and (from the 2022-12-19 fares) the improvement surcharge inside ``mta_tax`` as
    well, each counted once in the total. Records with blank codes owe the surcharge too,
    with its column empty: some show it in ``extra``, some only in the total. (Meters still
    on the previous rate of fare are chosen in :func:`money_and_codes`.)
    """
    n = len(regime)
    street_v1 = (out["vendor"] == 1) & ~out["blank"]
    in_extra = street_v1 & (rng.random(n) < defects.quirk_share(regime, "vendor1_congestion_in_extra"))
    out["extra"] = out["extra"] + np.where(in_extra, out["congestion"], 0.0)
    in_mta = street_v1 & (rng.random(n) < defects.quirk_share(regime, "vendor1_improvement_in_mta_tax"))
    out["mta_tax"] = out["mta_tax"] + np.where(in_mta & (out["mta_tax"] > 0), out["improvement"], 0.0)
    # Only records that owe the surcharge can carry it: the shares are of all blank-code
    # records, so they are scaled to the records that owe it.
    owes = blank_owed > 0
    scale = out["blank"].sum() / max(int(owes.sum()), 1)
    total_only = scale * defects.quirk_share(regime, "blank_congestion_in_total_only")
    blank_total = owes & (rng.random(n) < total_only)
    extra_share = scale * defects.quirk_share(regime, "blank_congestion_in_extra")
    blank_extra = owes & ~blank_total & (rng.random(n) < extra_share)
    out["extra"] = out["extra"] + np.where(blank_extra, blank_owed, 0.0)
    out["total"] = out["total"] + np.where(blank_extra | blank_total, blank_owed, 0.0)


def _refunds(rng: np.random.Generator, out: dict[str, np.ndarray], regime: np.ndarray) -> None:
    """Refunds and voids at their regime's share: every money part negative, no tip, no toll;
    payment type 3 (no charge) or 4 (dispute), blank on records with blank codes."""
    n = len(regime)
    refund = rng.random(n) < defects.share(regime, "refund", out["blank"])
    out["payment"] = np.where(
        refund & ~out["blank"], defects.refund_payment_types(rng, regime), out["payment"]
    )
    out["tip"] = np.where(refund, 0.0, out["tip"])
    out["tolls"] = np.where(refund, 0.0, out["tolls"])
    parts = ("fare", "extra", "mta_tax", "improvement", "congestion", "airport_fee", "cbd")
    for name in parts:
        out[name] = np.where(refund, 0.0 - np.abs(out[name]), out[name])  # 0.0 - 0.0 is +0.0
    out["total"] = np.where(refund, sum(out[p] for p in parts), out["total"])


def publication_schema(taxi_type: tlc.TaxiType, month: str, generation: tlc.Generation) -> pa.Schema:
    """The Arrow schema of TLC's file for ``month``: its generation's (see :func:`tlc.raw_schema`;
    green files up to 2022 carry ``ehail_fee`` typed ``null``, as the real 2021 months do)."""
    return tlc.raw_schema(taxi_type, generation)


def to_arrow(c: dict[str, np.ndarray], schema: pa.Schema) -> pa.Table:
    blank = c["blank"]
    n = len(c["pu"])
    flags = pa.DictionaryArray.from_arrays(
        pa.array(c["flag"].astype(np.int8), mask=blank), pa.array(["N", "Y"])
    ).cast(pa.string())
    # Green records with blank codes have no payment type either; yellow ones say 0 (flex fare).
    green = "lpep_pickup_datetime" in schema.names
    payment = pa.array(c["payment"], mask=blank) if green else c["payment"]
    values = {
        "VendorID": c["vendor"],
        "tpep_pickup_datetime": c["pickup"],
        "lpep_pickup_datetime": c["pickup"],
        "tpep_dropoff_datetime": c["dropoff"],
        "lpep_dropoff_datetime": c["dropoff"],
        "passenger_count": pa.array(c["passengers"], mask=blank),
        "trip_distance": c["distance"],
        "RatecodeID": pa.array(c["rate"], mask=blank),
        "store_and_fwd_flag": flags,
        "PULocationID": c["pu"],
        "DOLocationID": c["do"],
        "payment_type": payment,
        "fare_amount": c["fare"],
        "extra": c["extra"],
        "mta_tax": c["mta_tax"],
        "tip_amount": c["tip"],
        "tolls_amount": c["tolls"],
        "improvement_surcharge": c["improvement"],
        "total_amount": c["total"],
        "congestion_surcharge": pa.array(c["congestion"], mask=blank),
        "Airport_fee": pa.array(c["airport_fee"], mask=blank),
        "airport_fee": pa.array(c["airport_fee"], mask=blank),
        "cbd_congestion_fee": c["cbd"],
        "ehail_fee": pa.nulls(n, pa.float64()),
        "trip_type": pa.array(c["trip_type"], mask=blank),
    }
    arrays = []
    for f in schema:
        value = values[f.name]
        if pa.types.is_null(f.type):  # a column TLC published without a single value
            arrays.append(pa.nulls(n))
        elif pa.types.is_timestamp(f.type):
            arrays.append(pa.array(value, pa.int64()).cast(f.type))
        else:
            arrays.append(
                pa.array(value).cast(f.type) if not isinstance(value, pa.Array) else value.cast(f.type)
            )
    return pa.Table.from_arrays(arrays, schema=schema)
