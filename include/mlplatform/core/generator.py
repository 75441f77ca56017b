"""Synthetic NYC taxi months in the exact TLC trip-record format, calibrated on real months.

The generator stands in for the TLC download, which is out of reach at run time. Its
files have TLC's column names and the Arrow types of the month's publication period
(yellow or green), and the shape of real months. Green months follow tables derived from
real green months (``calibration/green.json`` and ``calibration/green_zone_pairs.parquet``,
made by ``bench/calibrate_generator.py``): the zone and zone-pair mix of metered records
and of records with blank codes, road distances between zones, travel speeds by pickup
borough, weekday/weekend and hour, zone slowness, hourly volume, the shares of zero-distance
and no-trip records, and the code mixes and null patterns. Yellow months use the same
geography and speeds with a pickup mix from published figures (``calibration/yellow_prior.json``).

Trip duration is a known function of the observed features times log-normal noise, so
the irreducible error of any file is known: :func:`expected_duration_minutes` is the best
possible prediction and :attr:`GeneratedMonth.noise_floor_rmse` its RMSE. Records with a
zero distance (an odometer gap) take the duration of the zone pair's typical distance, or,
for a known share of them, are no-trips lasting under a minute; the expectation accounts
for both. Knobs in :class:`Drift` shift the data the way production data drifts;
:data:`CORRUPTIONS` break it the way bad deliveries do. The same seed always gives the same
file.
"""

from __future__ import annotations

import calendar
import functools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplatform.core import tlc

METADATA_KEY = b"mlplatform.core.generator"
NOISE_SIGMA = 0.12
"""Standard deviation of the log-normal duration noise."""
CALIBRATION = Path(__file__).parents[1] / "calibration"
OVERHEAD_MINUTES = 1.5
"""Boarding and paying: minutes every trip takes on top of driving."""
NO_TRIP_MINUTES = (0.05, 1.0)
"""Duration range (uniform) of no-trip records: meter started and stopped at once."""
GREEN_BLANK_SHARE_FROM_2022 = 0.05
"""Share of green records with blank codes from 2022 on. The calibration months (2021) hold
47% of them (a dispatched service with its own zone mix); later green files are almost all
metered street hails: their published medians (about 11.5 min, 1.9 mi) and busiest zone (74,
about 18% of pickups) are those of the metered records alone. An assumed round figure."""


@dataclass(frozen=True)
class Drift:
    """How a month departs from the reference world (1.0 / 0.0 = no drift).

    ``congestion`` slows every trip (concept drift: same features, longer trips);
    ``outer_borough_shift`` moves pickups from Manhattan to the outer boroughs and airports
    (covariate drift); ``trip_length`` stretches trip distances and favours distant pairs.
    """

    congestion: float = 1.0
    outer_borough_shift: float = 0.0
    trip_length: float = 1.0

    def __post_init__(self) -> None:
        if not 0.2 <= self.congestion <= 5:
            raise ValueError(f"congestion must be within [0.2, 5], got {self.congestion}")
        if not 0 <= self.outer_borough_shift <= 1:
            raise ValueError(f"outer_borough_shift must be within [0, 1], got {self.outer_borough_shift}")
        if not 0.2 <= self.trip_length <= 5:
            raise ValueError(f"trip_length must be within [0.2, 5], got {self.trip_length}")


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


# --- The calibrated world -----------------------------------------------------------------

_BOROUGH_CENTRE = {  # miles east/north of lower Manhattan, and a spread: the fit's start
    "Manhattan": ((0.0, 4.0), (0.9, 4.5)),
    "Brooklyn": ((2.5, -5.0), (3.0, 3.0)),
    "Queens": ((9.0, 1.0), (4.0, 3.0)),
    "Bronx": ((4.0, 11.0), (2.5, 2.0)),
    "Staten Island": ((-8.0, -10.0), (3.0, 3.0)),
    "EWR": ((-11.0, -4.0), (0.1, 0.1)),
    "Unknown": ((2.0, 2.0), (6.0, 6.0)),
}
_AIRPORT_XY = {132: (13.0, -4.0), 138: (7.5, 5.5)}
_AIRPORTS = (1, 132, 138)
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


def borough_layout() -> list[list[float]]:
    """Zone positions (miles) spread inside their boroughs: where the fit of positions starts."""
    rng = np.random.default_rng(20240101)  # fixed: the same start every time
    xy = np.zeros((tlc.N_ZONES + 1, 2))
    for zone in range(1, tlc.N_ZONES + 1):
        (cx, cy), (sx, sy) = _BOROUGH_CENTRE[tlc.ZONE_BOROUGH[zone]]
        xy[zone] = (cx + rng.uniform(-sx, sx), cy + rng.uniform(-sy, sy))
    for zone, point in _AIRPORT_XY.items():
        xy[zone] = point
    return xy.tolist()


@functools.cache
def borough_codes() -> np.ndarray:
    """``borough_codes()[location_id]``: the index of the zone's borough in :data:`tlc.BOROUGHS`."""
    index = {name: i for i, name in enumerate(tlc.BOROUGHS)}
    return np.array([index[b] for b in tlc.ZONE_BOROUGH])


@dataclass(frozen=True)
class _World:
    miles: np.ndarray  # (266, 266) typical road miles between zones
    slow: np.ndarray  # (266,) zone slowness (>1 = slower)
    speed: np.ndarray  # (7, 2, 24) free speed, mph, by pickup borough, weekend, hour
    distance_sigma: dict[str, Any]  # log-sd of distance within a pair: same_zone, other
    od: dict[Any, Any]  # (taxi type, service) -> (266, 266) pair probabilities
    hourly: dict[str, Any]  # "weekday"/"weekend" -> (24,) green trips per hour
    green: dict[str, Any]  # the rest of green.json
    yellow: dict[str, Any]  # yellow_prior.json


def _gravity(pickups: np.ndarray, attraction: np.ndarray, miles: np.ndarray, reach: float) -> np.ndarray:
    weights = attraction[None, :] * np.exp(-miles / reach)
    weights[:, 0] = 0.0
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-300)
    return cast(np.ndarray, pickups[:, None] * weights)


@functools.cache
def world() -> _World:
    """The calibration tables, loaded once."""
    import pyarrow.parquet as pq

    green = json.loads((CALIBRATION / "green.json").read_text())
    yellow = json.loads((CALIBRATION / "yellow_prior.json").read_text())
    pairs = pq.read_table(CALIBRATION / "green_zone_pairs.parquet").to_pandas()
    size = tlc.N_ZONES + 1
    xy = np.array(green["zone_xy_miles"])
    straight = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=2)
    same_zone = pairs[pairs.pu == pairs["do"]].miles.median()
    miles = green["detour"] * straight + 0.2
    np.fill_diagonal(miles, same_zone)
    pu, do = pairs.pu.to_numpy(), pairs["do"].to_numpy()
    miles[pu, do] = pairs.miles.to_numpy()

    od = {}
    for service in ("coded", "blank"):
        counts = np.zeros((size, size))
        counts[pu, do] = pairs[service].to_numpy()
        pickups = np.array(green["pickups"][service], float)
        rest = np.clip(pickups - counts.sum(axis=1), 0.0, None)  # trips in pairs too rare to keep
        dropoffs = np.array(green["dropoffs"][service], float) + 1.0
        matrix = counts + _gravity(rest, dropoffs, miles, 4.0)
        od["green", service] = matrix / matrix.sum()
    share = np.zeros(size)
    boroughs = tlc.ZONE_BOROUGH
    listed = {int(z): s for z, s in yellow["pickup_share"].items()}
    for borough, mass in yellow["other_zones_by_borough"].items():
        others = [z for z in range(1, size) if boroughs[z] == borough and z not in listed]
        share[others] = mass / max(len(others), 1)
    share[list(listed)] = list(listed.values())
    share[0] = 0.0
    od["yellow", "coded"] = _gravity(share / share.sum(), share + 2e-4, miles, yellow["gravity_miles"])
    return _World(
        miles=miles,
        slow=np.array(green["zone_slowness"]),
        speed=np.array(green["speed_mph"]),
        distance_sigma=green["distance_log_sigma"],
        od=od,
        hourly={k: np.array(v) for k, v in green["hourly_trips"].items()},
        green=green,
        yellow=yellow,
    )


# --- The duration function -----------------------------------------------------------------


def fixed_minutes(pu: np.ndarray, do: np.ndarray) -> np.ndarray:
    """Minutes a trip takes besides driving: boarding, and the airports' kerbs and queues."""
    return OVERHEAD_MINUTES + 4.0 * np.isin(pu, _AIRPORTS) + 2.0 * np.isin(do, _AIRPORTS)


def moving_minutes(distance: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """Driving minutes at ``speed`` mph; longer trips reach highways, so they go faster."""
    return 60.0 * distance / (speed * (1.0 + 0.35 * np.log1p(distance / 4.0)))


def _base_minutes(
    distance: np.ndarray,
    hour: np.ndarray,
    weekend: np.ndarray,
    pu: np.ndarray,
    do: np.ndarray,
    congestion: float,
    yellow: np.ndarray | bool = False,
) -> np.ndarray:
    """Median trip duration in minutes given what a trip record shows."""
    w = world()
    speed = w.speed[borough_codes()[pu], weekend.astype(int), hour]
    speed = speed / np.sqrt(w.slow[pu] * w.slow[do]) / congestion
    speed = np.where(yellow, speed * w.yellow["speed_factor"], speed)
    return cast(np.ndarray, fixed_minutes(pu, do) + moving_minutes(distance, speed))


def _expected_minutes(
    distance: np.ndarray,
    hour: np.ndarray,
    weekend: np.ndarray,
    pu: np.ndarray,
    do: np.ndarray,
    drift: Drift,
    yellow: np.ndarray | bool,
) -> np.ndarray:
    zero = distance == 0
    typical = world().miles[pu, do] * drift.trip_length  # what a zero-distance trip really drove
    driven = _base_minutes(np.where(zero, typical, distance), hour, weekend, pu, do, drift.congestion, yellow)
    driven = driven * np.exp(NOISE_SIGMA**2 / 2)
    q = world().green["anomalies"]["no_trip_share_of_zero_distance"]
    return cast(np.ndarray, np.where(zero, q * np.mean(NO_TRIP_MINUTES) + (1 - q) * driven, driven))


def expected_duration_minutes(trips: pa.Table, drift: Drift = Drift()) -> np.ndarray:
    """The best possible prediction of ``duration_min`` for normalised trips.

    It is the conditional mean of the generator's duration given the trip's distance,
    pickup hour and weekday and zones (and the taxi type); no model can do better on
    average, so the RMSE of this prediction is the irreducible error (the noise floor).
    """
    pickup = trips.column("pickup_datetime")
    yellow = (
        pc.equal(trips.column("taxi_type"), "yellow").to_numpy(zero_copy_only=False)
        if "taxi_type" in trips.column_names
        else True
    )
    hour = pc.hour(pickup).to_numpy()
    weekend = pc.greater_equal(pc.day_of_week(pickup), 5).to_numpy(zero_copy_only=False)
    return _expected_minutes(
        trips.column("trip_distance").fill_null(0.0).to_numpy(),
        hour,
        weekend,
        _ids(trips.column("pu_location_id")),
        _ids(trips.column("do_location_id")),
        drift,
        yellow,
    )


def _ids(column: pa.ChunkedArray) -> np.ndarray:
    ids = column.fill_null(264).to_numpy().astype(np.int64)
    return np.where((ids >= 1) & (ids <= tlc.N_ZONES), ids, 264)


# --- Generation ----------------------------------------------------------------------------


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


def generate_month(
    taxi_type: tlc.TaxiType,
    month: str,
    rows: int,
    seed: int = 0,
    drift: Drift = Drift(),
    generation: tlc.Generation | None = None,
    anomalies: bool = False,
) -> GeneratedMonth:
    """Generate one month of trips as a table in TLC's raw format.

    With ``anomalies``, records with a zero distance (odometer gaps, some of them no-trips
    under a minute) appear at the real months' shares; the contract quarantines them as it
    does real ones (rule ``zero_distance``), so by default months are clean.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if taxi_type not in ("yellow", "green"):
        raise ValueError(f"taxi_type must be 'yellow' or 'green', got {taxi_type!r}")
    _month_bounds(month)  # validates the month
    generation = generation or tlc.generation_for_month(month)
    rng = np.random.default_rng([seed, int(month.replace("-", "")), 0 if taxi_type == "yellow" else 1])
    n = rows
    w = world()

    pickup_us = _sample_pickup_times(rng, taxi_type, month, n)
    blank = rng.random(n) < _blank_share(taxi_type, month)
    # Green records with blank codes are another service (their own zones and trip lengths).
    pu, do = _sample_pairs(rng, taxi_type, (blank & (taxi_type == "green")).astype(int), drift)
    typical = w.miles[pu, do] * drift.trip_length
    sigma = np.where(pu == do, w.distance_sigma["same_zone"], w.distance_sigma["other"])
    spread = np.exp(np.clip(rng.normal(0.0, 1.0, n), -3.0, 3.0) * sigma)
    distance = np.round(np.clip(typical * spread, 0.01, None), 2)
    # Odometer gaps: a zero distance for a trip that was driven, or a no-trip.
    shares = w.green["anomalies"]
    if taxi_type == "green":
        zero_share = np.where(blank, shares["zero_distance"]["blank"], shares["zero_distance"]["coded"])
    else:
        zero_share = np.full(n, w.yellow["zero_distance_share"])
    zero = (rng.random(n) < zero_share) & anomalies
    no_trip = zero & (rng.random(n) < shares["no_trip_share_of_zero_distance"])
    recorded = np.where(zero, 0.0, distance)

    hour = (pickup_us // 3_600_000_000) % 24
    weekday = ((pickup_us // 86_400_000_000) + 3) % 7  # 1970-01-01 was a Thursday (3)
    weekend = weekday >= 5
    yellow = taxi_type == "yellow"
    base = _base_minutes(distance, hour, weekend, pu, do, drift.congestion, yellow)
    noise = rng.normal(0.0, NOISE_SIGMA, n)
    duration_min = np.where(no_trip, rng.uniform(*NO_TRIP_MINUTES, n), base * np.exp(noise))
    seconds = np.maximum(np.round(duration_min * 60).astype(np.int64), 1)
    dropoff_us = pickup_us + seconds * 1_000_000
    observed = (dropoff_us - pickup_us) / 60_000_000
    expected = _expected_minutes(recorded, hour, weekend, pu, do, drift, yellow)
    noise_floor = float(np.sqrt(np.mean((observed - expected) ** 2))) if n else 0.0

    columns = _money_and_codes(rng, taxi_type, month, n, pu, do, recorded, duration_min, hour, weekend, blank)
    columns["pickup"] = pickup_us
    columns["dropoff"] = dropoff_us
    columns["pu"], columns["do"], columns["distance"] = pu, do, recorded
    table = _to_arrow(columns, publication_schema(taxi_type, month, generation))
    meta = {
        "taxi_type": taxi_type,
        "month": month,
        "rows": n,
        "seed": seed,
        "drift": asdict(drift),
        "noise_sigma": NOISE_SIGMA,
        "noise_floor_rmse": noise_floor,
        "generation": generation,
        "anomalies": anomalies,
        "calibration": [s["file"] for s in w.green["source"]],
    }
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
    return GeneratedMonth(table, taxi_type, month, seed, drift, noise_floor, meta)


def _draw(rng: np.random.Generator, shares: dict[str, float], n: int) -> np.ndarray:
    codes = np.array([float(k) for k in shares])
    p = np.array(list(shares.values()))
    return rng.choice(codes, size=n, p=p / p.sum()).astype(np.int64)


def _money_and_codes(
    rng: np.random.Generator,
    taxi_type: str,
    month: str,
    n: int,
    pu: np.ndarray,
    do: np.ndarray,
    distance: np.ndarray,
    minutes: np.ndarray,
    hour: np.ndarray,
    weekend: np.ndarray,
    blank: np.ndarray,
) -> dict[str, np.ndarray]:
    """Codes and the metered fare breakdown, consistent with distance and time."""
    b = borough_codes()
    manhattan = tlc.BOROUGHS.index("Manhattan")
    jfk = (pu == 132) | (do == 132)
    newark = (pu == 1) | (do == 1)
    rate = np.where(jfk & ((b[pu] == manhattan) | (b[do] == manhattan)), 2, 1)
    rate = np.where(newark, 3, rate)
    if taxi_type == "green":
        codes = world().green["codes"]
        drawn = _draw(rng, codes["rate_code"], n)
        rate = np.where(rate == 1, drawn, rate)  # negotiated fares are common in green cabs
        payment = _draw(rng, codes["payment_type"], n)
        passengers = _draw(rng, codes["passenger_count"], n)
        vendor = np.where(
            blank, _draw(rng, codes["vendor"]["blank"], n), _draw(rng, codes["vendor"]["coded"], n)
        )
        flag = rng.random(n) < codes["store_and_fwd_y"]
        trip_type = _draw(rng, codes["trip_type"], n)
    else:
        rate = np.where(rng.random(n) < 0.004, 5, rate)
        payment = rng.choice([1, 2, 3, 4], size=n, p=[0.74, 0.23, 0.02, 0.01])
        passengers = rng.choice([1, 2, 3, 4, 5, 6], size=n, p=[0.74, 0.15, 0.04, 0.03, 0.02, 0.02])
        vendor = rng.choice([1, 2], size=n, p=[0.3, 0.7])
        flag = rng.random(n) < 0.005
        trip_type = np.where(rng.random(n) < 0.03, 2, 1)

    fare = np.where(rate == 2, 70.0, 3.0 + 3.5 * distance + 0.35 * minutes)
    fare = np.round(np.where(rate == 3, fare + 20.0, fare), 2)
    extra = np.where(~weekend & (hour >= 16) & (hour < 20), 2.5, 0.0) + np.where(
        (hour >= 20) | (hour < 6), 1.0, 0.0
    )
    mta_tax = np.full(n, 0.5)
    improvement = np.full(n, 1.0)
    congestion = np.where((b[pu] == manhattan) | (b[do] == manhattan), 2.5, 0.0)
    if taxi_type == "green":
        congestion = np.where(rng.random(n) < 0.3, congestion, 0.0)
    airport_fee = np.where(np.isin(pu, (132, 138)), 1.75, 0.0)
    # Half the trips between Manhattan/Brooklyn and the rest cross a tolled bridge or tunnel.
    core = (manhattan, tlc.BOROUGHS.index("Brooklyn"))
    crossing = np.isin(b[pu], core) != np.isin(b[do], core)
    tolls = np.where(crossing & (rng.random(n) < 0.5), 6.94, 0.0)
    cbd = np.where(b[do] == manhattan, 0.75, 0.0) if month >= "2025-01" else np.zeros(n)

    # Records with blank codes (flex or dispatched trips) leave the driver-entered fields and
    # their surcharges blank, so those do not count in the total.
    congestion = np.where(blank, 0.0, congestion)
    airport_fee = np.where(blank, 0.0, airport_fee)
    payment = np.where(blank, 0, payment)
    # Card tips: generous (>= 20%) more often at night, in Manhattan, for short trips. Nearly
    # all yellow pickups are in Manhattan, so the hour, airport and distance effects carry the
    # signal: a perfect model reaches an ROC AUC of about 0.65 on yellow months.
    logit = (
        -0.2
        + 0.6 * (b[pu] == manhattan)
        + 0.8 * ((hour >= 20) | (hour < 4))
        - 0.8 * np.isin(pu, _AIRPORTS)
        - 0.08 * np.clip(distance, 0, 20)
        + 0.4 * weekend
    )
    generous = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    tip_share = np.where(
        generous, rng.choice([0.2, 0.22, 0.25, 0.3], size=n), rng.choice([0.0, 0.1, 0.15, 0.18], size=n)
    )
    tip = np.where(payment == 1, np.round(fare * tip_share, 2), 0.0)
    total = np.round(fare + extra + mta_tax + improvement + congestion + tip + tolls + cbd, 2)
    if taxi_type == "yellow":
        total = np.round(total + airport_fee, 2)
    return {
        "vendor": vendor,
        "passengers": passengers,
        "rate": rate,
        "flag": flag,
        "payment": payment,
        "blank": blank,
        "fare": fare,
        "extra": extra,
        "mta_tax": mta_tax,
        "tip": tip,
        "tolls": tolls,
        "improvement": improvement,
        "total": total,
        "congestion": congestion,
        "airport_fee": airport_fee,
        "cbd": cbd,
        "trip_type": trip_type,
    }


def publication_schema(taxi_type: tlc.TaxiType, month: str, generation: tlc.Generation) -> pa.Schema:
    """The Arrow schema of TLC's file for ``month``: its generation's (see :func:`tlc.raw_schema`;
    green files up to 2022 carry ``ehail_fee`` typed ``null``, as the real 2021 months do)."""
    return tlc.raw_schema(taxi_type, generation)


def _to_arrow(c: dict[str, np.ndarray], schema: pa.Schema) -> pa.Table:
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


# --- Shape ---------------------------------------------------------------------------------


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


# --- Corruption knobs ----------------------------------------------------------------------


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
