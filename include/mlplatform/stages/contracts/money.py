"""A month's money columns against TLC's dated fare table (:mod:`mlplatform.core.fares`).

Every trip is judged by the schedule in force at its own pickup, so a month that straddles
a fare change (2022-12-19, or the 2025-01-05 CBD toll) is judged row by row.

- :func:`fare_check` is the ``fare_inconsistent`` rule: ``total_amount`` must equal the sum
  of its parts, or add up under one of the :data:`~.rules.FARE_READINGS` (a surcharge at
  the rate in force left out of the total, inside ``extra`` as well, or inside the total
  while its column is empty); the rows of each reading are counted.
- :func:`money_findings` looks at the month as a whole: amounts that look like cents (a
  breach) and a surcharge column empty in every row although the schedule charges it (a
  notice).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplatform.core import fares, months
from mlplatform.stages.contracts.arrays import filled, hits, missing
from mlplatform.stages.contracts.rules import FARE_PARTS, FARE_TOLERANCE, READING_NAMES, SURCHARGES

_RATES = {name: np.array([getattr(s, name) for s in fares.SCHEDULES]) for name in (*SURCHARGES, "mta_tax")}
_PREVIOUS = np.array(
    [
        i - 1 if i and fares.SCHEDULES[i - 1].taxi_type == s.taxi_type else i
        for i, s in enumerate(fares.SCHEDULES)
    ]
)
"""Each schedule's predecessor of the same taxi type (itself for the first): meters not yet
re-rated after a fare change still charge the old surcharges for a while."""
CENTS_RATIO = 20.0
"""A month whose fixed charges (MTA tax, improvement surcharge) are this many times the
published rates, at the median, is in cents: TLC's are dollars, and 20x is no rate TLC charged."""


def schedule_index(trips: pa.Table, month: str) -> np.ndarray:
    """Per row, the index into :data:`mlplatform.core.fares.SCHEDULES` in force at its pickup.

    Pickups outside the month (quarantined by ``pickup_outside_month``) or missing are judged
    by the month's first or last day, and months before the table by its first schedule.
    """
    first = np.datetime64(months.start_of(month).replace(tzinfo=None), "us")
    last = np.datetime64(months.end_of(month).replace(tzinfo=None), "us") - np.timedelta64(1, "us")
    start = np.datetime64(fares.TABLE_START, "us")
    pickups = trips.column("pickup_datetime").cast(pa.timestamp("us")).to_numpy(zero_copy_only=False)
    pickups = np.where(np.isnat(pickups), first, pickups)
    pickups = np.maximum(np.clip(pickups, first, last), start)
    codes = np.zeros(trips.num_rows, dtype=np.int64)
    kinds = trips.column("taxi_type")
    for kind in pc.unique(kinds).to_pylist():  # one or two kinds: compared in Arrow, not as Python strings
        rows = pc.equal(kinds, kind).to_numpy(zero_copy_only=False)
        codes[rows] = fares.schedule_codes(str(kind), pickups[rows])
    return codes


@dataclass
class FareCheck:
    """``fare_inconsistent``'s mask and how many rows each reading explained."""

    inconsistent: pa.ChunkedArray
    readings: dict[str, int] = field(default_factory=lambda: dict.fromkeys(READING_NAMES, 0))


def fare_check(trips: pa.Table, month: str) -> FareCheck:
    """Priced rows whose ``total_amount`` no reading of the surcharges in force explains.

    Most rows add up as itemised; only the others are tried against the readings, the
    simplest explanation first (one surcharge read differently before two).
    """
    col = trips.column
    total = col("total_amount")
    priced = pc.invert(pc.or_(missing(col("fare_amount")), missing(total)))
    parts = None  # the sum of the fare's parts, an empty part counting as 0
    for name in FARE_PARTS:
        part = col(name)
        if part.null_count == len(part) and parts is not None:
            continue  # adding zeros changes no sum
        part = part.fill_null(0.0) if part.null_count else part
        parts = part if parts is None else pc.add(parts, part)
    assert parts is not None  # FARE_PARTS is not empty and its first part is always added
    off = pc.and_(priced, hits(pc.greater(pc.abs(pc.subtract(total, parts)), FARE_TOLERANCE)))
    rows = np.flatnonzero(off.to_numpy(zero_copy_only=False))
    check = FareCheck(off)
    if not rows.size:
        return check
    index = pa.array(rows)
    off_rows = trips.take(index)
    total_off = filled(off_rows.column("total_amount")).astype(np.float64)
    residual = total_off - filled(parts.take(index)).astype(np.float64)
    codes = schedule_index(off_rows, month)
    options = [_options(name, off_rows, codes, np.where(total_off < 0, -1.0, 1.0)) for name in SURCHARGES]
    combos = sorted(itertools.product(*options), key=lambda c: sum(name is not None for name, _, _ in c))
    reading = np.full(rows.size, -1, dtype=np.int64)  # per off row: the combination that explains it
    for k, combo in enumerate(combos):
        open_rows = reading < 0
        for _, _, applies in combo:
            open_rows &= applies
        if not open_rows.any():
            continue
        added = sum(amount for _, amount, _ in combo)
        explained = open_rows & (np.abs(residual - added) <= FARE_TOLERANCE)
        reading[explained] = k
    for k in np.unique(reading[reading >= 0]):
        n = int((reading == k).sum())
        for name, _, _ in combos[k]:
            if name is not None:
                check.readings[name] += n
    unexplained = np.zeros(trips.num_rows, dtype=bool)
    unexplained[rows[reading < 0]] = True
    check.inconsistent = pa.chunked_array([unexplained], pa.bool_())
    return check


Option = tuple[str | None, "np.ndarray | float", np.ndarray]
"""A reading of one surcharge: its name (``None``: as itemised), what it adds to the itemised
sum, the rows it may apply to."""


def _options(name: str, rows: pa.Table, codes: np.ndarray, sign: np.ndarray) -> list[Option]:
    """The readings of surcharge ``name`` over the off rows whose schedules are ``codes``."""
    itemised = filled(rows.column(name)).astype(np.float64)
    empty = np.isnan(itemised) | (itemised == 0.0)
    itemised = np.where(empty, 0.0, itemised)
    now, before = _RATES[name][codes], _RATES[name][_PREVIOUS[codes]]
    at_rate = ~empty & (
        (np.abs(np.abs(itemised) - now) <= FARE_TOLERANCE)
        | (np.abs(np.abs(itemised) - before) <= FARE_TOLERANCE)
    )
    options: list[Option] = [(None, 0.0, np.ones(len(codes), dtype=bool))]
    if name == "improvement_surcharge":
        options.append((f"{name}_excluded", -itemised, at_rate))
    else:
        extra = np.abs(filled(rows.column("extra")).astype(np.float64))
        inside = extra >= np.abs(itemised) - FARE_TOLERANCE
        options += [
            (f"{name}_in_extra", -itemised, at_rate & inside),
            (f"{name}_excluded", -itemised, at_rate & ~inside),
        ]
    options.append((f"{name}_unitemised", sign * now, empty & (now > 0)))
    options.append((f"{name}_unitemised", sign * before, empty & (before > 0) & (before != now)))
    return [o for o in options if o[2].any()]


@dataclass(frozen=True)
class MoneyFindings:
    """What the month's money columns say as a whole (``None`` / empty: nothing to say)."""

    cents: str | None = None
    empty_surcharges: tuple[str, ...] = ()


def money_findings(trips: pa.Table, month: str) -> MoneyFindings:
    """Amounts in cents (a breach) and surcharge columns empty although charged (notices)."""
    if not trips.num_rows:
        return MoneyFindings()
    codes = schedule_index(trips, month)
    ratios = []
    for name in ("mta_tax", "improvement_surcharge"):
        values = np.abs(filled(trips.column(name)).astype(np.float64))
        charged = (values > 0) & ~np.isnan(values) & (_RATES[name][codes] > 0)
        if charged.sum() >= 10:
            ratios.append(
                (name, float(np.median(values[charged] / _RATES[name][codes][charged])), values[charged])
            )
    cents = None
    if ratios and np.median([r for _, r, _ in ratios]) >= CENTS_RATIO:
        seen = ", ".join(
            f"{name} {np.median(v):,.2f} where TLC charges ${np.median(v) / r:.2f}" for name, r, v in ratios
        )
        cents = (
            f"money amounts look like cents, not dollars ({seen}, at the median); re-deliver the month in "
            "dollars as TLC publishes it"
        )
    empty = []
    for name in SURCHARGES:
        rates = _RATES[name][codes]
        charged = rates > 0
        blank = pc.is_null(trips.column(name)).to_numpy(zero_copy_only=False)
        if charged.any() and blank[charged].all():
            schedule = fares.SCHEDULES[int(codes[charged][0])]
            empty.append(
                f"{name} is empty in all {int(charged.sum()):,} rows whose pickup TLC charges it "
                f"(${float(np.max(rates)):.2f}, {schedule.taxi_type}: {schedule.source}); "
                f"totals that include it are counted as fare reading {name}_unitemised"
            )
    return MoneyFindings(cents, tuple(empty))
