"""TLC's published taxi fares, dated: which rates and surcharges were in force for a trip.

Each :class:`FareSchedule` row is one regime of one taxi type (yellow medallion taxis, green
street-hail liveries), in force for pickups from ``start`` (a New York calendar day, TLC's
wall clock) up to ``end`` (exclusive, ``None`` while in force). :data:`SCHEDULES` covers
every pickup from 2019-01-01 on; :func:`schedule_at` answers for one trip and
:func:`schedule_codes` for a whole column of pickup times (an index into ``SCHEDULES``).

The figures are the published ones, each row naming its publication in ``source``:

- TLC's fare of 2012-09-04 (Rule 58-26 / 82-26): $2.50 initial charge, $0.50 per 1/5 mile
  or per 60 seconds slow, $0.50 night (8 pm-6 am), $1.00 peak (4-8 pm weekdays), $0.50 MTA
  tax (NY State), JFK flat fare $52, Newark surcharge $17.50; the Taxicab and Street Hail
  Livery Improvement Surcharges of $0.30 from 2015-01-01.
- NY State's congestion surcharge from 2019-02-02 on trips in Manhattan south of 96th
  Street: $2.50 for yellow taxis, $2.75 for green and other non-medallion vehicles.
- The Port Authority's airport access fee on taxi pickups at LaGuardia and JFK: $1.25 from
  2021-04-05 (TLC's yellow data dictionary: ``Airport_fee``, pickups only). Green files
  have no such column: green taxis may not be hailed at the airports.
- TLC's fare change of 2022-12-19 ("Taximeter Rate of Fare and Various Surcharges"): $3.00
  initial charge, $0.70 per unit, night $1.00, peak $2.50, improvement surcharge $1.00,
  JFK flat fare $70, Newark surcharge $20, JFK peak surcharge $5, a $5 LaGuardia surcharge;
  the airport access fee became $1.75.
- The MTA's Congestion Relief Zone toll from 2025-01-05: $0.75 per taxi trip into, within
  or out of the zone (``cbd_congestion_fee``, yellow and green).

The table starts on 2019-01-01, the first month this platform judges; the fares of its
first rows were in force long before (2012-09-04, the improvement surcharge 2015-01-01).
TLC publishes no minimum fare apart from the initial charge: ``minimum_fare`` is the
initial charge, the least a metered trip can cost.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class FareSchedule:
    """The fares of one taxi type in force for pickups on ``start`` up to ``end`` (exclusive).

    Amounts are dollars; a surcharge the taxi type does not pay in the regime is 0.0.
    ``per_unit`` is charged per 1/5 mile, or per 60 seconds below 12 mph.
    """

    taxi_type: str
    start: dt.date
    end: dt.date | None
    initial_charge: float
    per_unit: float
    night_surcharge: float
    peak_surcharge: float
    mta_tax: float
    improvement_surcharge: float
    congestion_surcharge: float
    airport_fee: float
    cbd_congestion_fee: float
    jfk_flat_fare: float
    newark_surcharge: float
    minimum_fare: float
    source: str
    jfk_peak_surcharge: float = 0.0
    """Added to the JFK flat fare 4-8 pm on weekdays (TLC: $4.50, $5.00 from 2022-12-19)."""
    laguardia_surcharge: float = 0.0
    """TLC's LaGuardia surcharge on taxi trips to and from LGA (from 2022-12-19)."""

    def in_force(self, day: dt.date) -> bool:
        """Whether a pickup on New York calendar day ``day`` is charged by this schedule."""
        return self.start <= day and (self.end is None or day < self.end)


TABLE_START = dt.date(2019, 1, 1)
"""The first pickup day :data:`SCHEDULES` answers for."""
CONGESTION_START = dt.date(2019, 2, 2)
AIRPORT_FEE_START = dt.date(2021, 4, 5)
FARE_CHANGE_2022 = dt.date(2022, 12, 19)
CBD_TOLL_START = dt.date(2025, 1, 5)

_TLC_2012 = (
    "TLC taximeter rate of fare of 2012-09-04 (35 RCNY 58-26, 82-26 for street hail liveries); "
    "Taxicab / Street Hail Livery Improvement Surcharge $0.30 (35 RCNY 58-26, from 2015-01-01)"
)
_CONGESTION = "NY State Tax Law Article 29-C congestion surcharge (from 2019-02-02)"
_AIRPORT = (
    "Port Authority airport access fee on taxi pickups at LGA and JFK (from 2021-04-05); TLC yellow "
    "trip records data dictionary, Airport_fee"
)
_TLC_2022 = "TLC rule 'Taximeter Rate of Fare and Various Surcharges', effective 2022-12-19"
_CBD = "MTA Central Business District Tolling Program: $0.75 per taxi trip in the zone (from 2025-01-05)"

_FARES_2012 = FareSchedule(
    taxi_type="yellow",
    start=TABLE_START,
    end=CONGESTION_START,
    initial_charge=2.50,
    per_unit=0.50,
    night_surcharge=0.50,
    peak_surcharge=1.00,
    mta_tax=0.50,
    improvement_surcharge=0.30,
    congestion_surcharge=0.0,
    airport_fee=0.0,
    cbd_congestion_fee=0.0,
    jfk_flat_fare=52.00,
    newark_surcharge=17.50,
    minimum_fare=2.50,
    source=_TLC_2012,
    jfk_peak_surcharge=4.50,
)
_FARES_2022 = replace(
    _FARES_2012,
    initial_charge=3.00,
    per_unit=0.70,
    night_surcharge=1.00,
    peak_surcharge=2.50,
    improvement_surcharge=1.00,
    jfk_flat_fare=70.00,
    newark_surcharge=20.00,
    minimum_fare=3.00,
    jfk_peak_surcharge=5.00,
    laguardia_surcharge=5.00,
)


def _regimes(
    taxi_type: str, congestion: float, airport_fee_2021: float, airport_fee_2022: float
) -> list[FareSchedule]:
    """One taxi type's rows, oldest first, each ending where the next starts."""
    rows = [
        replace(_FARES_2012, taxi_type=taxi_type),
        replace(
            _FARES_2012,
            taxi_type=taxi_type,
            start=CONGESTION_START,
            end=AIRPORT_FEE_START,
            congestion_surcharge=congestion,
            source=f"{_TLC_2012}; {_CONGESTION}",
        ),
        replace(
            _FARES_2012,
            taxi_type=taxi_type,
            start=AIRPORT_FEE_START,
            end=FARE_CHANGE_2022,
            congestion_surcharge=congestion,
            airport_fee=airport_fee_2021,
            source=f"{_TLC_2012}; {_CONGESTION}; {_AIRPORT}",
        ),
        replace(
            _FARES_2022,
            taxi_type=taxi_type,
            start=FARE_CHANGE_2022,
            end=CBD_TOLL_START,
            congestion_surcharge=congestion,
            airport_fee=airport_fee_2022,
            source=f"{_TLC_2022}; {_CONGESTION}",
        ),
        replace(
            _FARES_2022,
            taxi_type=taxi_type,
            start=CBD_TOLL_START,
            end=None,
            congestion_surcharge=congestion,
            airport_fee=airport_fee_2022,
            cbd_congestion_fee=0.75,
            source=f"{_TLC_2022}; {_CONGESTION}; {_CBD}",
        ),
    ]
    return rows


SCHEDULES: tuple[FareSchedule, ...] = (
    *_regimes("yellow", congestion=2.50, airport_fee_2021=1.25, airport_fee_2022=1.75),
    *_regimes("green", congestion=2.75, airport_fee_2021=0.0, airport_fee_2022=0.0),
)
"""Every regime of both taxi types from 2019-01-01, per taxi type oldest first."""
TAXI_TYPES = ("yellow", "green")


def _rows_of(taxi_type: str) -> list[int]:
    """Indices into :data:`SCHEDULES` of ``taxi_type``'s rows, oldest first."""
    if taxi_type not in TAXI_TYPES:
        raise ValueError(
            f"unknown taxi type {taxi_type!r}: TLC fare schedules exist for {', '.join(TAXI_TYPES)}"
        )
    return [i for i, s in enumerate(SCHEDULES) if s.taxi_type == taxi_type]


def schedule_at(taxi_type: str, when: dt.date | dt.datetime) -> FareSchedule:
    """The schedule in force for a ``taxi_type`` pickup at ``when`` (New York wall clock)."""
    day = when.date() if isinstance(when, dt.datetime) else when
    for i in _rows_of(taxi_type):
        if SCHEDULES[i].in_force(day):
            return SCHEDULES[i]
    raise ValueError(
        f"no TLC fare schedule for a {taxi_type} pickup on {day.isoformat()}: the table starts on "
        f"{TABLE_START.isoformat()}"
    )


def schedule_codes(taxi_type: str, pickups: npt.NDArray[np.datetime64]) -> npt.NDArray[np.int64]:
    """For each pickup (New York wall clock), the index into :data:`SCHEDULES` of the schedule in force.

    Raises ``ValueError`` for an unknown taxi type, a missing pickup time (NaT) or a pickup
    before the table starts.
    """
    rows = np.asarray(_rows_of(taxi_type), dtype=np.int64)
    days = np.asarray(pickups).astype("datetime64[D]")
    if np.isnat(days).any():
        raise ValueError(
            f"{int(np.isnat(days).sum())} pickup time(s) missing: no fare schedule applies to them"
        )
    starts = np.array([SCHEDULES[i].start for i in rows], dtype="datetime64[D]")
    if days.size and days.min() < starts[0]:
        raise ValueError(
            f"a {taxi_type} pickup on {days.min()} is before the TLC fare table starts "
            f"({TABLE_START.isoformat()})"
        )
    position = np.searchsorted(starts, days, side="right") - 1
    codes: npt.NDArray[np.int64] = rows[position]
    return codes
