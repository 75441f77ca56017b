"""Synthetic NYC taxi months in the exact TLC trip-record format.

The generator stands in for the TLC download, which is out of reach at run time. Its
files have TLC's column names and Arrow types (yellow or green, any schema generation)
and a realistic structure: 265 zones in their boroughs, airports, trip distances from zone
geography, congestion by hour, weekday and zone, metered fares consistent with distance
and time, tips for card payments.

Trip duration is a known function of the observed features times log-normal noise, so
the irreducible error of any file is known: :func:`expected_duration_minutes` is the best
possible prediction and :attr:`GeneratedMonth.noise_floor_rmse` its RMSE. Knobs in
:class:`Drift` shift the data the way production data drifts; :data:`CORRUPTIONS` break it
the way bad deliveries do. The same seed always gives the same file.
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplatform import tlc

METADATA_KEY = b"mlplatform.generator"
NOISE_SIGMA = 0.12
"""Standard deviation of the log-normal duration noise."""


@dataclass(frozen=True)
class Drift:
    """How a month departs from the reference world (1.0 / 0.0 = no drift).

    ``congestion`` slows every trip (concept drift: same features, longer trips);
    ``outer_borough_shift`` moves pickups from Manhattan to the outer boroughs and airports
    (covariate drift); ``trip_length`` stretches trip distances.
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
    metadata: dict = field(default_factory=dict)


# --- Zone geography ------------------------------------------------------------------------

_BOROUGH_CENTRE = {  # miles east/north of lower Manhattan, and a spread
    "Manhattan": ((0.0, 4.0), (0.9, 4.5)),
    "Brooklyn": ((2.5, -5.0), (3.0, 3.0)),
    "Queens": ((9.0, 1.0), (4.0, 3.0)),
    "Bronx": ((4.0, 11.0), (2.5, 2.0)),
    "Staten Island": ((-8.0, -10.0), (3.0, 3.0)),
    "EWR": ((-11.0, -4.0), (0.1, 0.1)),
    "Unknown": ((2.0, 2.0), (6.0, 6.0)),
}
_AIRPORT_XY = {132: (13.0, -4.0), 138: (7.5, 5.5)}
_BOROUGH_SPEED = {  # free-flow mph when the trip starts in the borough
    "Manhattan": 11.0,
    "Brooklyn": 16.0,
    "Queens": 19.0,
    "Bronx": 16.0,
    "Staten Island": 22.0,
    "EWR": 24.0,
    "Unknown": 18.0,
}
# Share of trips by hour of day (weekday), from the familiar TLC daily profile.
# fmt: off
_HOUR_WEIGHTS = np.array(
    [
        2.2, 1.4, 0.9, 0.6, 0.5, 0.7, 1.6, 3.0, 4.0, 4.2, 4.1, 4.3, 4.6, 4.7, 5.0, 5.4, 5.6, 6.1, 6.6,
        6.2, 5.6, 5.3, 4.8, 3.6
    ]
)
# fmt: on
# fmt: off
_HOUR_SPEED = np.array(  # travel-speed factor by hour on weekdays
    [
        1.45, 1.5, 1.55, 1.55, 1.5, 1.35, 1.1, 0.8, 0.7, 0.78, 0.85, 0.85, 0.83, 0.83, 0.8, 0.76, 0.7,
        0.68, 0.72, 0.85, 0.95, 1.05, 1.15, 1.3
    ]
)
# fmt: on
# fmt: off
_WEEKEND_SPEED = np.array(
    [
        1.3, 1.35, 1.4, 1.45, 1.5, 1.5, 1.45, 1.35, 1.25, 1.1, 1.0, 0.95, 0.9, 0.9, 0.9, 0.9, 0.92,
        0.95, 0.95, 0.95, 1.0, 1.05, 1.1, 1.2
    ]
)
# fmt: on


@dataclass(frozen=True)
class _Geography:
    xy: np.ndarray  # (266, 2) zone centroids in miles
    slow: np.ndarray  # (266,) zone congestion factor (>1 = slower)
    yellow_pop: np.ndarray  # pickup popularity for yellow cabs
    green_pop: np.ndarray
    borough_index: np.ndarray  # (266,) index into tlc.BOROUGHS


def _geography() -> _Geography:
    rng = np.random.default_rng(20240101)  # fixed: the map is the same in every file
    boroughs = tlc.ZONE_BOROUGH
    xy = np.zeros((tlc.N_ZONES + 1, 2))
    slow = np.ones(tlc.N_ZONES + 1)
    yellow = np.zeros(tlc.N_ZONES + 1)
    green = np.zeros(tlc.N_ZONES + 1)
    for zone in range(1, tlc.N_ZONES + 1):
        (cx, cy), (sx, sy) = _BOROUGH_CENTRE[boroughs[zone]]
        xy[zone] = (cx + rng.uniform(-sx, sx), cy + rng.uniform(-sy, sy))
        borough = boroughs[zone]
        if borough == "Manhattan":
            # Midtown and downtown (the southern half) are the slowest and busiest.
            slow[zone] = rng.uniform(1.0, 1.25) + 0.25 * (xy[zone, 1] < 5)
            yellow[zone] = rng.lognormal(3.0, 0.6) * (2.0 if xy[zone, 1] < 6 else 1.0)
            green[zone] = rng.lognormal(0.5, 0.5) * (3.0 if xy[zone, 1] > 6 else 0.1)
        elif borough == "Unknown":
            slow[zone] = 1.0
            yellow[zone], green[zone] = 0.3, 0.1
        else:
            slow[zone] = rng.uniform(0.85, 1.1)
            yellow[zone] = rng.lognormal(0.0, 0.8)
            green[zone] = rng.lognormal(1.2, 0.6)
    for zone, point in _AIRPORT_XY.items():
        xy[zone] = point
    slow[[1, 132, 138]] = 0.9
    yellow[132], yellow[138], yellow[1] = 700.0, 550.0, 3.0
    green[132], green[138], green[1] = 4.0, 4.0, 0.5
    index = {name: i for i, name in enumerate(tlc.BOROUGHS)}
    borough_index = np.array([index[b] for b in boroughs])
    return _Geography(xy, slow, yellow, green, borough_index)


GEOGRAPHY = _geography()
_SPEED_BY_BOROUGH = np.array([_BOROUGH_SPEED[b] for b in tlc.BOROUGHS])


# --- The duration function -----------------------------------------------------------------


def _base_minutes(
    distance: np.ndarray,
    hour: np.ndarray,
    weekend: np.ndarray,
    pu: np.ndarray,
    do: np.ndarray,
    congestion: float,
) -> np.ndarray:
    """Median trip duration in minutes given what a trip record shows."""
    g = GEOGRAPHY
    speed = _SPEED_BY_BOROUGH[g.borough_index[pu]] * np.where(
        weekend, _WEEKEND_SPEED[hour], _HOUR_SPEED[hour]
    )
    speed = speed / np.sqrt(g.slow[pu] * g.slow[do]) / congestion
    # Longer trips reach highways: average speed grows with distance.
    speed = speed * (1.0 + 0.35 * np.log1p(distance / 4.0))
    airport = np.isin(pu, (1, 132, 138)).astype(float) * 4.0 + np.isin(do, (1, 132, 138)) * 2.0
    return 1.5 + airport + 60.0 * distance / speed


def expected_duration_minutes(trips: pa.Table, drift: Drift = Drift()) -> np.ndarray:
    """The best possible prediction of ``duration_min`` for normalised trips.

    It is the conditional mean of the generator's duration given the trip's distance,
    pickup hour and weekday and zones; no model can do better on average, so the RMSE of
    this prediction is the irreducible error (the noise floor).
    """
    pickup = trips.column("pickup_datetime")
    hour = pc.hour(pickup).to_numpy()
    weekend = pc.greater_equal(pc.day_of_week(pickup), 5).to_numpy(zero_copy_only=False)
    base = _base_minutes(
        trips.column("trip_distance").to_numpy(),
        hour,
        weekend,
        _ids(trips.column("pu_location_id")),
        _ids(trips.column("do_location_id")),
        drift.congestion,
    )
    return base * np.exp(NOISE_SIGMA**2 / 2)


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


def _sample_pickup_times(rng: np.random.Generator, month: str, n: int) -> np.ndarray:
    """Pickup times in microseconds since the epoch, naive local time."""
    start, days = _month_bounds(month)
    day = rng.integers(0, days, n)
    weekday = (start.weekday() + day) % 7
    weights = _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()
    hour = rng.choice(24, size=n, p=weights)
    # Weekend mornings are quieter: move a third of them to the evening.
    late = (weekday >= 5) & (hour >= 6) & (hour <= 10) & (rng.random(n) < 0.35)
    hour = np.where(late, hour + 12, hour)
    seconds = rng.integers(0, 3600, n)
    epoch = calendar.timegm(start.timetuple())  # TLC times are naive local: store them as such
    return (epoch + day * 86_400 + hour * 3600 + seconds).astype(np.int64) * 1_000_000


def _sample_zones(rng: np.random.Generator, taxi_type: str, n: int, drift: Drift) -> tuple[np.ndarray, ...]:
    g = GEOGRAPHY
    pop = (g.yellow_pop if taxi_type == "yellow" else g.green_pop).copy()
    pop[0] = 0.0
    if drift.outer_borough_shift:
        manhattan = g.borough_index == tlc.BOROUGHS.index("Manhattan")
        pop[manhattan] *= 1.0 - drift.outer_borough_shift
        pop[~manhattan & (pop > 0)] *= 1.0 + 4.0 * drift.outer_borough_shift
    pu = rng.choice(tlc.N_ZONES + 1, size=n, p=pop / pop.sum())
    # Gravity model: destinations weighted by popularity and closeness.
    dist = np.linalg.norm(g.xy[:, None, :] - g.xy[None, :, :], axis=2)
    attraction = (g.yellow_pop + g.green_pop)[None, :] * np.exp(-dist / (3.5 * drift.trip_length))
    attraction[:, 0] = 0.0
    cdf = np.cumsum(attraction, axis=1)
    cdf /= cdf[:, -1:]
    do = np.empty(n, dtype=np.int64)
    u = rng.random(n)
    order = np.argsort(pu, kind="stable")
    bounds = np.searchsorted(pu[order], np.arange(tlc.N_ZONES + 2))
    for zone in range(1, tlc.N_ZONES + 1):
        rows = order[bounds[zone] : bounds[zone + 1]]
        if rows.size:
            do[rows] = np.minimum(np.searchsorted(cdf[zone], u[rows]), tlc.N_ZONES)
    do = np.maximum(do, 1)
    straight = dist[pu, do]
    return pu, do, straight


def generate_month(
    taxi_type: tlc.TaxiType,
    month: str,
    rows: int,
    seed: int = 0,
    drift: Drift = Drift(),
    generation: tlc.Generation | None = None,
) -> GeneratedMonth:
    """Generate one month of trips as a table in TLC's raw format."""
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if taxi_type not in ("yellow", "green"):
        raise ValueError(f"taxi_type must be 'yellow' or 'green', got {taxi_type!r}")
    _month_bounds(month)  # validates the month
    generation = generation or tlc.generation_for_month(month)
    rng = np.random.default_rng([seed, int(month.replace("-", "")), 0 if taxi_type == "yellow" else 1])
    n = rows

    pickup_us = _sample_pickup_times(rng, month, n)
    pu, do, straight = _sample_zones(rng, taxi_type, n, drift)
    same_zone = pu == do
    detour = rng.lognormal(np.log(1.3), 0.12, n)
    distance = np.where(same_zone, rng.uniform(0.3, 1.6, n), straight * detour * drift.trip_length + 0.2)
    distance = np.round(np.clip(distance, 0.01, None), 2)

    hour = (pickup_us // 3_600_000_000) % 24
    weekday = ((pickup_us // 86_400_000_000) + 3) % 7  # 1970-01-01 was a Thursday (3)
    weekend = weekday >= 5
    base = _base_minutes(distance, hour, weekend, pu, do, drift.congestion)
    noise = rng.normal(0.0, NOISE_SIGMA, n)
    duration_min = base * np.exp(noise)
    dropoff_us = pickup_us + np.round(duration_min * 60).astype(np.int64) * 1_000_000
    observed = (dropoff_us - pickup_us) / 60_000_000
    noise_floor = float(np.sqrt(np.mean((observed - base * np.exp(NOISE_SIGMA**2 / 2)) ** 2))) if n else 0.0

    columns = _money_and_codes(rng, taxi_type, month, n, pu, do, distance, duration_min, hour, weekend)
    columns["pickup"] = pickup_us
    columns["dropoff"] = dropoff_us
    columns["pu"], columns["do"], columns["distance"] = pu, do, distance
    table = _to_arrow(columns, taxi_type, generation)
    meta = {
        "taxi_type": taxi_type,
        "month": month,
        "rows": n,
        "seed": seed,
        "drift": asdict(drift),
        "noise_sigma": NOISE_SIGMA,
        "noise_floor_rmse": noise_floor,
        "generation": generation,
    }
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
    return GeneratedMonth(table, taxi_type, month, seed, drift, noise_floor, meta)


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
) -> dict[str, np.ndarray]:
    """Codes and the metered fare breakdown, consistent with distance and time."""
    g = GEOGRAPHY
    manhattan = tlc.BOROUGHS.index("Manhattan")
    jfk = (pu == 132) | (do == 132)
    newark = (pu == 1) | (do == 1)
    rate = np.where(jfk & ((g.borough_index[pu] == manhattan) | (g.borough_index[do] == manhattan)), 2, 1)
    rate = np.where(newark, 3, rate)
    rate = np.where(rng.random(n) < 0.004, 5, rate)

    fare = np.where(rate == 2, 70.0, 3.0 + 3.5 * distance + 0.35 * minutes)
    fare = np.round(np.where(rate == 3, fare + 20.0, fare), 2)
    extra = np.where(~weekend & (hour >= 16) & (hour < 20), 2.5, 0.0) + np.where(
        (hour >= 20) | (hour < 6), 1.0, 0.0
    )
    mta_tax = np.full(n, 0.5)
    improvement = np.full(n, 1.0)
    congestion = np.where((g.borough_index[pu] == manhattan) | (g.borough_index[do] == manhattan), 2.5, 0.0)
    if taxi_type == "green":
        congestion = np.where(rng.random(n) < 0.3, congestion, 0.0)
    airport_fee = np.where(np.isin(pu, (132, 138)), 1.75, 0.0)
    # Half the trips between Manhattan/Brooklyn and the rest cross a tolled bridge or tunnel.
    core = (manhattan, tlc.BOROUGHS.index("Brooklyn"))
    crossing = np.isin(g.borough_index[pu], core) != np.isin(g.borough_index[do], core)
    tolls = np.where(crossing & (rng.random(n) < 0.5), 6.94, 0.0)
    cbd = np.where(g.borough_index[do] == manhattan, 0.75, 0.0) if month >= "2025-01" else np.zeros(n)

    payment = rng.choice([1, 2, 3, 4], size=n, p=[0.74, 0.23, 0.02, 0.01])
    # About 1% of real records come from flex/unknown-payment trips with blank driver-entered
    # fields; their surcharges are blank too, so they do not count in the total.
    blank = rng.random(n) < 0.01
    congestion = np.where(blank, 0.0, congestion)
    airport_fee = np.where(blank, 0.0, airport_fee)
    payment = np.where(blank, 0, payment)
    # Card tips: generous (>= 20%) more often at night, in Manhattan, for short trips.
    logit = (
        -0.2
        + 0.6 * (g.borough_index[pu] == manhattan)
        + 0.5 * ((hour >= 20) | (hour < 4))
        - 0.5 * np.isin(pu, (1, 132, 138))
        - 0.04 * np.clip(distance, 0, 20)
        + 0.3 * weekend
    )
    generous = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    tip_share = np.where(
        generous, rng.choice([0.2, 0.22, 0.25, 0.3], size=n), rng.choice([0.0, 0.1, 0.15, 0.18], size=n)
    )
    tip = np.where(payment == 1, np.round(fare * tip_share, 2), 0.0)
    total = np.round(fare + extra + mta_tax + improvement + congestion + tip + tolls + cbd, 2)
    if taxi_type == "yellow":
        total = np.round(total + airport_fee, 2)

    passengers = rng.choice([1, 2, 3, 4, 5, 6], size=n, p=[0.74, 0.15, 0.04, 0.03, 0.02, 0.02])
    vendor = rng.choice([1, 2], size=n, p=[0.3, 0.7])
    flag = rng.random(n) < 0.005
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
        "trip_type": np.where(rng.random(n) < 0.03, 2, 1),
    }


def _to_arrow(c: dict[str, np.ndarray], taxi_type: str, generation: tlc.Generation) -> pa.Table:
    schema = tlc.raw_schema(taxi_type, generation)
    blank = c["blank"]
    flags = pa.DictionaryArray.from_arrays(
        pa.array(c["flag"].astype(np.int8), mask=blank), pa.array(["N", "Y"])
    ).cast(pa.string())
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
        "payment_type": c["payment"],
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
        "ehail_fee": pa.nulls(len(c["pu"]), pa.float64()),
        "trip_type": pa.array(c["trip_type"], mask=blank),
    }
    arrays = []
    for f in schema:
        value = values[f.name]
        if pa.types.is_timestamp(f.type):
            arrays.append(pa.array(value, pa.int64()).cast(f.type))
        else:
            arrays.append(
                pa.array(value).cast(f.type) if not isinstance(value, pa.Array) else value.cast(f.type)
            )
    return pa.Table.from_arrays(arrays, schema=schema)


def read_generator_metadata(schema: pa.Schema) -> dict | None:
    """What the generator recorded in a file's metadata, or ``None`` for other files."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else None


# --- Corruption knobs ----------------------------------------------------------------------


def _set_column(table: pa.Table, name: str, values: pa.Array | np.ndarray) -> pa.Table:
    index = table.schema.get_field_index(name)
    array = values if isinstance(values, pa.Array) else pa.array(values)
    return table.set_column(index, pa.field(name, array.type), array)


def _pick(table: pa.Table, rate: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(table.num_rows) < rate


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
