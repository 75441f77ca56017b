"""TLC's own pathologies, drawn at the shares of real months of the same fare regime.

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
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Any, cast

import numpy as np

from mlplatform.core import fares
from mlplatform.core.generator.world import CALIBRATION

CALIBRATION_FILE = CALIBRATION / "pathologies.json"
METER_LEFT_RUNNING_MINUTES = (61.0, 1380.0, 1439.0)
"""Meters left running last from just over an hour to just under a day; a share of them
(``to_day_end``) run till 23-24 hours, as in the real months."""
IDLE_MPH = 1.5
"""Meters left running average at most this speed (the contract's idle rule: under 2 mph)."""


@functools.cache
def regimes() -> tuple[dict[str, Any], ...]:
    """The calibration of each fare regime, oldest first (``calibration/pathologies.json``)."""
    data = json.loads(CALIBRATION_FILE.read_text())
    return tuple(sorted(data["regimes"], key=lambda r: str(r["fares_from"])))


@functools.cache
def _regime_of_schedule() -> np.ndarray:
    """``_regime_of_schedule()[i]``: the regime of ``fares.SCHEDULES[i]``."""
    starts = [dt.date.fromisoformat(r["fares_from"]) for r in regimes()]
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
        return cast(np.ndarray, np.array([float(r[name]["share"]) for r in table])[regime])
    coded = np.array([float(r[name]["coded"]) for r in table])[regime]
    blanks = np.array([float(r[name]["blank"]) for r in table])[regime]
    return cast(np.ndarray, np.where(blank, blanks, coded))


def quirk_share(regime: np.ndarray, name: str) -> np.ndarray:
    """Per record, the share of itemisation quirk ``name`` in its regime."""
    return cast(np.ndarray, np.array([float(r["quirks"][name]["share"]) for r in regimes()])[regime])


def meter_left_running_minutes(
    rng: np.random.Generator, regime: np.ndarray, distance: np.ndarray
) -> np.ndarray:
    """How long meters left running stood: a share to the end of the day, the rest 1-23 h,
    and always long enough to average under :data:`IDLE_MPH` over the recorded distance."""
    low, day_end, high = METER_LEFT_RUNNING_MINUTES
    to_day_end = np.array([float(r["meter_left_running"]["to_day_end"]) for r in regimes()])[regime]
    n = len(regime)
    minutes = np.where(
        rng.random(n) < to_day_end,
        rng.uniform(day_end, high, n),
        np.exp(rng.uniform(np.log(low), np.log(day_end), n)),
    )
    return np.maximum(minutes, 60.0 * distance / IDLE_MPH + 1.0)


def refund_payment_types(rng: np.random.Generator, regime: np.ndarray) -> np.ndarray:
    """Payment types of refunds and voids: 3 (no charge) or 4 (dispute), at their regime's mix."""
    no_charge = np.array([float(r["refund"]["payment_type"]["3"]) for r in regimes()])[regime]
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
    days = np.array([int(r["quirks"]["stale_meters"]["days"]) for r in table])[regime]
    since = np.array([np.datetime64(r["fares_from"], "us").astype(np.int64) for r in table])[regime]
    recent = (pickup_us - since) < days * 86_400_000_000
    has_previous = np.array(
        [i > 0 and fares.SCHEDULES[i - 1].taxi_type == s.taxi_type for i, s in enumerate(fares.SCHEDULES)]
    )[schedules]
    chosen = rng.random(len(regime)) < quirk_share(regime, "stale_meters")
    return cast(np.ndarray, chosen & recent & (vendor == 2) & has_previous)


def calibration_table() -> list[dict[str, Any]]:
    """Each figure the generator draws, its regime and the real months that set it."""
    rows = []
    for r in regimes():
        figures = {
            "zero_distance": r["zero_distance"],
            "refund": r["refund"],
            "meter_left_running": r["meter_left_running"],
            "previous_month": r["previous_month"],
            **{f"quirk:{k}": v for k, v in r["quirks"].items()},
        }
        for name, figure in figures.items():
            values = {k: v for k, v in figure.items() if isinstance(v, int | float)}
            rows.append({"fares_from": r["fares_from"], "figure": name, **values, "set_by": r["set_by"]})
    return rows
