"""The calibrated world synthetic months are drawn from, and the known duration function.

Zone positions and road distances, travel speeds by pickup borough, weekday/weekend and hour,
zone slowness, the zone-pair mixes (green: from ``calibration/green.json`` and
``calibration/green_zone_pairs.parquet``, made by ``bench/calibrate_generator.py``; yellow:
from published figures, ``calibration/yellow_prior.json``), and :class:`Drift`, the knobs
that move a month away from that world. Trip duration is a known function of the observed
features times log-normal noise: :func:`expected_duration_minutes` is the best possible
prediction.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplatform.core import tlc
from mlplatform.core.records import Record

NOISE_SIGMA = 0.12
"""Standard deviation of the log-normal duration noise."""
CALIBRATION = Path(__file__).parents[2] / "calibration"
OVERHEAD_MINUTES = 1.5
"""Boarding and paying: minutes every trip takes on top of driving."""
NO_TRIP_MINUTES = (0.05, 1.0)
"""Duration range (uniform) of no-trip records: meter started and stopped at once."""


@dataclass(frozen=True)
class Drift(Record):
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


NO_DRIFT = Drift()
"""The reference world: a month without drift."""


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
AIRPORTS = (1, 132, 138)
"""Zones with airport kerbs and queues: Newark, JFK, LaGuardia."""


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
class CodeMixes:
    """Green cabs' code mixes (``green.json``'s ``codes``): each code's share of records."""

    vendor_coded: dict[str, float]  # of records with codes (street hails)
    vendor_blank: dict[str, float]  # of records with blank codes (dispatched)
    passenger_count: dict[str, float]
    rate_code: dict[str, float]
    payment_type: dict[str, float]
    trip_type: dict[str, float]
    store_and_fwd_y: float  # share flagged store-and-forward


@dataclass(frozen=True)
class World:
    """The calibration tables as arrays, ready to sample from (see :func:`world`)."""

    miles: np.ndarray  # (266, 266) typical road miles between zones
    slow: np.ndarray  # (266,) zone slowness (>1 = slower)
    speed: np.ndarray  # (7, 2, 24) free speed, mph, by pickup borough, weekend, hour
    distance_sigma: dict[str, float]  # log-sd of distance within a pair: same_zone, other
    od: dict[tuple[str, str], np.ndarray]  # (taxi type, service) -> (266, 266) pair probabilities
    hourly: dict[str, np.ndarray]  # "weekday"/"weekend" -> (24,) green trips per hour
    codes: CodeMixes  # green cabs' codes
    green_blank_share: float  # share of green records with blank codes (before 2022)
    no_trip_share_of_zero_distance: float  # zero-distance green records that are no trips
    calibration_files: tuple[str, ...]  # the real green months the tables come from
    yellow_blank_share: float
    yellow_zero_distance_share: float
    yellow_speed_factor: float  # yellow speeds relative to green ones


def _gravity(pickups: np.ndarray, attraction: np.ndarray, miles: np.ndarray, reach: float) -> np.ndarray:
    weights = attraction[None, :] * np.exp(-miles / reach)
    weights[:, 0] = 0.0
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-300)
    return cast(np.ndarray, pickups[:, None] * weights)


@functools.cache
def world() -> World:
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

    codes = green["codes"]
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
    return World(
        miles=miles,
        slow=np.array(green["zone_slowness"]),
        speed=np.array(green["speed_mph"]),
        distance_sigma={k: float(v) for k, v in green["distance_log_sigma"].items()},
        od=od,
        hourly={k: np.array(v) for k, v in green["hourly_trips"].items()},
        codes=CodeMixes(
            vendor_coded=codes["vendor"]["coded"],
            vendor_blank=codes["vendor"]["blank"],
            passenger_count=codes["passenger_count"],
            rate_code=codes["rate_code"],
            payment_type=codes["payment_type"],
            trip_type=codes["trip_type"],
            store_and_fwd_y=float(codes["store_and_fwd_y"]),
        ),
        green_blank_share=float(green["blank_share"]),
        no_trip_share_of_zero_distance=float(green["anomalies"]["no_trip_share_of_zero_distance"]),
        calibration_files=tuple(str(s["file"]) for s in green["source"]),
        yellow_blank_share=float(yellow["blank_share"]),
        yellow_zero_distance_share=float(yellow["zero_distance_share"]),
        yellow_speed_factor=float(yellow["speed_factor"]),
    )


# --- The duration function -----------------------------------------------------------------


def fixed_minutes(pu: np.ndarray, do: np.ndarray) -> np.ndarray:
    """Minutes a trip takes besides driving: boarding, and the airports' kerbs and queues."""
    return OVERHEAD_MINUTES + 4.0 * np.isin(pu, AIRPORTS) + 2.0 * np.isin(do, AIRPORTS)


def moving_minutes(distance: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """Driving minutes at ``speed`` mph; longer trips reach highways, so they go faster."""
    return 60.0 * distance / (speed * (1.0 + 0.35 * np.log1p(distance / 4.0)))


def base_minutes(
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
    speed = np.where(yellow, speed * w.yellow_speed_factor, speed)
    return cast(np.ndarray, fixed_minutes(pu, do) + moving_minutes(distance, speed))


def expected_minutes(
    distance: np.ndarray,
    hour: np.ndarray,
    weekend: np.ndarray,
    pu: np.ndarray,
    do: np.ndarray,
    drift: Drift,
    yellow: np.ndarray | bool,
) -> np.ndarray:
    """Mean trip duration in minutes given what a record shows (zero distances included)."""
    zero = distance == 0
    typical = world().miles[pu, do] * drift.trip_length  # what a zero-distance trip really drove
    driven = base_minutes(np.where(zero, typical, distance), hour, weekend, pu, do, drift.congestion, yellow)
    driven = driven * np.exp(NOISE_SIGMA**2 / 2)
    q = world().no_trip_share_of_zero_distance
    return cast(np.ndarray, np.where(zero, q * np.mean(NO_TRIP_MINUTES) + (1 - q) * driven, driven))


def expected_duration_minutes(trips: pa.Table, drift: Drift = NO_DRIFT) -> np.ndarray:
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
    return expected_minutes(
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
