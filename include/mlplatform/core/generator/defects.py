"""What is wrong in a month: TLC's own pathologies, and bad deliveries.

**TLC's own pathologies**, drawn at the shares of real months of the same fare regime.
Real TLC months hold records that are not trips, and TLC's vendors itemise money in their
own ways. The generator reproduces both by default (``clean=True`` turns them off, for
noise-floor studies), at the shares of ``calibration/pathologies.json``, which names the
real months that set each figure. A record's regime is TLC's rate of fare in force at its
pickup (:mod:`mlplatform.core.fares`): the shares measured on 2021 months hold for every
pickup under the 2012 rate of fare, those of 2023-01 for pickups from the change of
2022-12-19 on.

The pathologies, each quarantined by its own contract rule:

- **zero distance** (``zero_distance``): odometer gaps and no-trips (see ``world``);
- **refunds and voids** (``negative_fare``): payment type 3 (no charge) or 4 (dispute)
  with every money part negative, as TLC records them;
- **meters left running** (``idle_trip``; past 12 hours also ``implausible_duration``):
  a taxi standing with the meter on for one to twenty-four hours;
- **trips begun in the previous month** (``pickup_outside_month``): picked up before
  midnight of the month's first day and filed by their dropoff.

The itemisation quirks (green vendors only) are in :func:`itemisation_quirks`.

**Bad deliveries** (corruption knobs): :data:`CORRUPTIONS` damage rows and schemas
(``corrupt``); :data:`FILE_CORRUPTIONS` damage the file itself (``corrupted_bytes``). The
data contract must catch every one of them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplatform.core import fares
from mlplatform.core.generator.world import CALIBRATION
from mlplatform.core.records import Record

CALIBRATION_FILE = CALIBRATION / "pathologies.json"
METER_LEFT_RUNNING_MINUTES = (61.0, 1380.0, 1439.0)
"""Meters left running last from just over an hour to just under a day; a share of them
(``to_day_end``) run till 23-24 hours, as in the real months."""
IDLE_MPH = 1.5
"""Meters left running average at most this speed (the contract's idle rule: under 2 mph)."""


@dataclass(frozen=True)
class Share(Record):
    """A pathology's share of all records, and how the real months measured it."""

    share: float
    measure: str


@dataclass(frozen=True)
class StaleMeters(Share):
    """Vendor 2 meters itemising by the previous rate of fare, for ``days`` after a change."""

    days: int


@dataclass(frozen=True)
class ServiceShares(Record):
    """A pathology's share of coded-service and of blank-code records, and how it was measured."""

    coded: float
    blank: float
    measure: str


@dataclass(frozen=True)
class Refunds(ServiceShares):
    """Refunds and voids, and the mix of their payment types (``"3"``, ``"4"``)."""

    payment_type: dict[str, float]


@dataclass(frozen=True)
class MetersLeftRunning(ServiceShares):
    """Meters left running, and the share of them that run to the end of the day."""

    to_day_end: float


@dataclass(frozen=True)
class Quirks(Record):
    """The shares of the green vendors' itemisation quirks (:func:`itemisation_quirks`)."""

    vendor1_congestion_in_extra: Share
    vendor1_improvement_in_mta_tax: Share
    blank_congestion_in_extra: Share
    blank_congestion_in_total_only: Share
    stale_meters: StaleMeters

    def by_name(self) -> dict[str, Share]:
        return {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}


@dataclass(frozen=True)
class Regime(Record):
    """The calibration of one fare regime: the real months that set it and each figure."""

    fares_from: str
    fares: str
    set_by: tuple[str, ...]
    zero_distance: ServiceShares
    refund: Refunds
    meter_left_running: MetersLeftRunning
    previous_month: Share
    quirks: Quirks
    assumed: tuple[str, ...] = ()

    def by_service(self, name: str) -> ServiceShares:
        """A pathology drawn at a coded-service and a blank-code share."""
        figures: dict[str, ServiceShares] = {
            "zero_distance": self.zero_distance,
            "refund": self.refund,
            "meter_left_running": self.meter_left_running,
        }
        if name not in figures:
            raise ValueError(f"no coded and blank shares of {name!r}; there are of {', '.join(figures)}")
        return figures[name]

    def figures(self) -> dict[str, ServiceShares | Share]:
        """Every figure the generator draws, quirks named ``quirk:<name>``."""
        return {
            "zero_distance": self.zero_distance,
            "refund": self.refund,
            "meter_left_running": self.meter_left_running,
            "previous_month": self.previous_month,
            **{f"quirk:{k}": v for k, v in self.quirks.by_name().items()},
        }


@functools.cache
def regimes() -> tuple[Regime, ...]:
    """The calibration of each fare regime, oldest first (``calibration/pathologies.json``)."""
    data = json.loads(CALIBRATION_FILE.read_text())
    return tuple(sorted((Regime.from_dict(r) for r in data["regimes"]), key=lambda r: r.fares_from))


@dataclass(frozen=True)
class CalibrationRow:
    """One figure the generator draws: its regime, its numbers and the real months that set them."""

    fares_from: str
    figure: str
    values: dict[str, float]
    set_by: tuple[str, ...]


@functools.cache
def _regime_of_schedule() -> np.ndarray:
    """``_regime_of_schedule()[i]``: the regime of ``fares.SCHEDULES[i]``."""
    starts = [dt.date.fromisoformat(r.fares_from) for r in regimes()]
    return np.array(
        [max(sum(s.start >= start for start in starts) - 1, 0) for s in fares.SCHEDULES], dtype=np.int64
    )


def schedule_codes(taxi_type: str, pickup_us: np.ndarray) -> np.ndarray:
    """The fare schedule in force at each pickup (an index into ``fares.SCHEDULES``).

    Pickups before the table starts take its first rows, whose fares were in force long
    before (the 2012 rate of fare)."""
    first = np.datetime64(fares.TABLE_START, "us").astype(np.int64)
    return fares.schedule_codes(taxi_type, np.maximum(pickup_us, first).astype("datetime64[us]"))


def regime_codes(schedules: np.ndarray) -> np.ndarray:
    """The calibration regime (an index into :func:`regimes`) of each schedule code."""
    return cast(np.ndarray, _regime_of_schedule()[schedules])


def share(regime: np.ndarray, name: str, blank: np.ndarray | None = None) -> np.ndarray:
    """Per record, the share of pathology ``name`` in its regime (coded or blank-code service)."""
    table = regimes()
    if blank is None:
        if name != "previous_month":
            raise ValueError(f"{name!r} is drawn per service: give the blank-code flags")
        return cast(np.ndarray, np.array([r.previous_month.share for r in table])[regime])
    coded = np.array([r.by_service(name).coded for r in table])[regime]
    blanks = np.array([r.by_service(name).blank for r in table])[regime]
    return cast(np.ndarray, np.where(blank, blanks, coded))


def quirk_share(regime: np.ndarray, name: str) -> np.ndarray:
    """Per record, the share of itemisation quirk ``name`` in its regime."""
    return cast(np.ndarray, np.array([r.quirks.by_name()[name].share for r in regimes()])[regime])


def meter_left_running_minutes(
    rng: np.random.Generator, regime: np.ndarray, distance: np.ndarray
) -> np.ndarray:
    """How long meters left running stood: a share to the end of the day, the rest 1-23 h,
    and always long enough to average under :data:`IDLE_MPH` over the recorded distance."""
    low, day_end, high = METER_LEFT_RUNNING_MINUTES
    to_day_end = np.array([r.meter_left_running.to_day_end for r in regimes()])[regime]
    n = len(regime)
    minutes = np.where(
        rng.random(n) < to_day_end,
        rng.uniform(day_end, high, n),
        np.exp(rng.uniform(np.log(low), np.log(day_end), n)),
    )
    return np.maximum(minutes, 60.0 * distance / IDLE_MPH + 1.0)


def refund_payment_types(rng: np.random.Generator, regime: np.ndarray) -> np.ndarray:
    """Payment types of refunds and voids: 3 (no charge) or 4 (dispute), at their regime's mix."""
    no_charge = np.array([r.refund.payment_type["3"] for r in regimes()])[regime]
    return np.where(rng.random(len(regime)) < no_charge, 3, 4)


def stale_meters(
    rng: np.random.Generator,
    schedules: np.ndarray,
    regime: np.ndarray,
    vendor: np.ndarray,
    pickup_us: np.ndarray,
) -> np.ndarray:
    """Records a vendor 2 meter still itemised by the previous rate of fare after a change:
    their regime's share, within its ``days`` after the change."""
    table = regimes()
    days = np.array([r.quirks.stale_meters.days for r in table])[regime]
    since = np.array([np.datetime64(r.fares_from, "us").astype(np.int64) for r in table])[regime]
    recent = (pickup_us - since) < days * 86_400_000_000
    has_previous = np.array(
        [i > 0 and fares.SCHEDULES[i - 1].taxi_type == s.taxi_type for i, s in enumerate(fares.SCHEDULES)]
    )[schedules]
    chosen = rng.random(len(regime)) < quirk_share(regime, "stale_meters")
    return cast(np.ndarray, chosen & recent & (vendor == 2) & has_previous)


def calibration_table() -> list[CalibrationRow]:
    """Each figure the generator draws, its regime and the real months that set it."""
    return [
        CalibrationRow(
            r.fares_from,
            name,
            {k: float(v) for k, v in figure.to_dict().items() if isinstance(v, int | float)},
            r.set_by,
        )
        for r in regimes()
        for name, figure in r.figures().items()
    ]


# -- bad deliveries -----------------------------------------------------------------------------
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
