"""The row rules: what every trip of a month must satisfy, why, the TLC figures behind each, and
the rules computed over a month's trips.

This is the table the contract is made of (:data:`ROW_RULES`, with the TLC data
dictionary's domains), and the code that applies it:

- :func:`check_rows` computes each rule once, vectorised, as an Arrow boolean mask over all
  rows of the month (its files' normalised trips together); :func:`quarantine_table` sets the
  rows that break a rule aside, with their reasons. A value that is null (or NaN) never
  breaks a rule by comparison; only ``missing_key`` looks for it.
- ``duplicate_row`` is found by :func:`duplicated`, in a thread while the other rules run.
- Money follows TLC's dated fare table (:mod:`mlplatform.core.fares`): every trip is judged
  by the schedule in force at its own pickup, so a month that straddles a fare change
  (2022-12-19, or the 2025-01-05 CBD toll) is judged row by row. :func:`fare_check` is the
  ``fare_inconsistent`` rule: ``total_amount`` must equal the sum of its parts
  (:data:`mlplatform.core.tlc.FARE_PARTS`), or add up under one of the :data:`FARE_READINGS`
  (a surcharge at the rate in force left out of the total, inside ``extra`` as well, or
  inside the total while its column is empty); the rows of each reading are counted.
  :func:`money_findings` looks at the month as a whole: amounts that look like cents (a
  breach) and a surcharge column empty in every row although the schedule charges it (a
  notice).
- The volume rule: a month far off the usual volume is a partial or duplicated delivery.
  The allowed range (:func:`volume_bounds`) is ``contract.volume_band`` times the median raw
  row count of the latest :data:`HISTORY_MONTHS` validated months; without history any
  count passes.

:mod:`mlplatform.stages.contracts.suite` turns each rule into an expectation on the month's
contract profile.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import fares, months, tlc
from mlplatform.core.records import Record
from mlplatform.core.spec import UseCase

T = TypeVar("T")


def in_thread(fn: Callable[..., T], *args: Any) -> Future[T]:
    """Start ``fn(*args)`` in a thread of its own and return its future at once.

    Worth it for work done in Arrow, numpy, hashlib or GX's renderer, which release the GIL
    (the duplicate detector, hashing the raw files, encoding the snapshot, Data Docs): the
    thread gets the second core while Python carries on with the next step.
    """
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlplatform-contracts")
    try:
        return executor.submit(fn, *args)
    finally:
        executor.shutdown(wait=False)


# -- the table ---------------------------------------------------------------------------

# Domains of the TLC data dictionary (yellow and green trip records).
ZONE_IDS = (1, tlc.N_ZONES)
# 0 flex fare, 1 card, 2 cash, 3 no charge, 4 dispute, 5 unknown, 6 voided trip
PAYMENT_TYPES = (0, 1, 2, 3, 4, 5, 6)
# 1 standard, 2 JFK, 3 Newark, 4 Nassau/Westchester, 5 negotiated, 6 group ride, 99 unknown
RATE_CODES = (1, 2, 3, 4, 5, 6, 99)
# 1 Creative Mobile Technologies, 2 Curb Mobility, 6 Myle Technologies, 7 Helix
VENDORS = (1, 2, 6, 7)
FLAGS = ("Y", "N")
FARE_TOLERANCE = 0.05
"""Dollars by which ``total_amount`` may differ from the sum of its parts (rounding)."""


@dataclass(frozen=True)
class FareReading:
    """A way TLC's files are known to itemise a surcharge other than as the data dictionary says.

    ``fare_inconsistent`` accepts a total that adds up under a reading, and counts the rows of
    each reading (``fare_reading.<name>`` in the outcome), so a month's share of each is visible.
    """

    surcharge: str
    how: str
    """``excluded``: itemised but left out of ``total_amount``; ``in_extra``: itemised and also
    inside ``extra``; ``unitemised``: inside ``total_amount`` while its column is empty or zero."""
    seen: str

    @property
    def name(self) -> str:
        return f"{self.surcharge}_{self.how}"


FARE_READINGS: tuple[FareReading, ...] = (
    FareReading(
        "improvement_surcharge",
        "excluded",
        "Green 2023-01, vendor 1 only: the $1.00 of the 2022-12-19 schedule itemised but not in the "
        "total (6,760 rows off by exactly -$1.00, 2,330 by -$3.75 with the congestion surcharge in extra).",
    ),
    FareReading("improvement_surcharge", "unitemised", "The data dictionary's reading of an empty column."),
    FareReading(
        "congestion_surcharge",
        "in_extra",
        "Green 2021-01..03, vendor 1 only: 2.1-2.2% of rows itemise the $2.75 in its column and in extra; "
        "green 2023-01 likewise (2,330 rows).",
    ),
    FareReading("congestion_surcharge", "excluded", "Itemised, left out of the total (not seen; accepted)."),
    FareReading(
        "congestion_surcharge",
        "unitemised",
        "Green 2021-01..03: 0.7-0.8% of rows, green 2023-01: 2.1%, all with an empty column (rows with "
        "empty codes, mostly vendor 2); yellow flex-fare rows likewise.",
    ),
    FareReading("airport_fee", "in_extra", "Yellow LGA/JFK pickups whose extra holds the fee as well."),
    FareReading("airport_fee", "excluded", "Itemised, left out of the total."),
    FareReading("airport_fee", "unitemised", "Inside the total while airport_fee is empty."),
    FareReading("cbd_congestion_fee", "in_extra", "The 2025 MTA toll itemised and also inside extra."),
    FareReading("cbd_congestion_fee", "excluded", "Itemised, left out of the total."),
    FareReading("cbd_congestion_fee", "unitemised", "Inside the total while cbd_congestion_fee is empty."),
)
READING_NAMES = tuple(r.name for r in FARE_READINGS)
KEY_COLUMNS = (
    "pickup_datetime",
    "dropoff_datetime",
    "pu_location_id",
    "do_location_id",
    "trip_distance",
    "fare_amount",
    "total_amount",
)
DUPLICATE_KEY = (*KEY_COLUMNS, "vendor_id")
"""What makes two trips the same trip (``duplicate_row``)."""


@dataclass(frozen=True)
class RowRule:
    """A rule every trip must satisfy; rows that break it are quarantined.

    ``calibration`` says which published TLC rule set (the trip-record data dictionaries, the
    taxi zone lookup, the fare schedules of :mod:`mlplatform.core.fares`) or physical bound sets
    the rule's threshold, and what share of the real months' rows it quarantines (green
    2021-01..03 under the 2012 fares and green 2023-01 under those of 2022-12-19,
    ``tests/fixtures/real_tlc``; ``tests/test_real_tlc_contract.py`` checks the shares). The
    shares are a check on the rule, never its threshold.
    """

    name: str
    rule: str
    why: str
    calibration: str


ROW_RULES: tuple[RowRule, ...] = (
    RowRule(
        "missing_key",
        "pickup and dropoff times, both zones, distance, fare and total are present",
        "A trip without them can be neither learned from nor scored, and cannot be joined back.",
        "No threshold: the data dictionaries' key fields. Real months (green 2021-01..03, 2023-01): "
        "0 rows; TLC leaves codes, flags and surcharges empty on 6-48% of green rows, never these keys.",
    ),
    RowRule(
        "pickup_outside_month",
        "pickup falls inside the partition month, within contract.pickup_tolerance_hours",
        "Trips filed under the wrong month (other years, future dates, or begun the evening before "
        "the month and filed by their dropoff) would leak into training windows and skew monthly "
        "monitoring.",
        "Tolerance 0 h: TLC files a trip under the month of its pickup (the data dictionary's "
        "pickup datetime). Real months (green 2021-01..03, 2023-01): 0-4 rows a month (under "
        "0.01%): pickups in 2009, trips begun before midnight of the month's first day.",
    ),
    RowRule(
        "dropoff_not_after_pickup",
        "dropoff is later than pickup",
        "The duration is the label; zero or negative durations are clock or meter errors.",
        "No threshold: the data dictionary's meter engaged / disengaged times. Real months (green "
        "2021-01..03, 2023-01): 0.09-0.11% of rows.",
    ),
    RowRule(
        "implausible_duration",
        "trip lasts at most contract.max_trip_minutes",
        "Meters left running produce day-long trips that dominate a squared-error loss.",
        "720 min, a driver's shift (TLC caps a driver's driving at 12 h in 24): green 2021-01..03 "
        "0.14-0.18%, 2023-01 0.30% of rows last 12-24 h, 97-100% of them at under 1 mph (a meter "
        "left on); none lasts a day or more.",
    ),
    RowRule(
        "idle_trip",
        "a trip longer than contract.idle_trip_minutes averages at least contract.min_average_mph",
        "A taxi standing for hours with the meter on is not a trip; its minutes say nothing about "
        "travel time.",
        "60 min, 2 mph: slower than walking for over an hour is no taxi trip (the fare schedule "
        "charges waiting by the minute, not hours at a stand). Green 2021-01..03: 0.25-0.28% of rows, "
        "2023-01: 0.53%, two thirds to three quarters of them over 6 h.",
    ),
    RowRule(
        "implausible_distance",
        "trip distance is between 0 and contract.max_trip_miles",
        "Negative or huge odometer readings are device faults; distance is the strongest feature.",
        "300 mi, beyond any metered or negotiated trip from New York City (the fare schedule's "
        "out-of-city rates): real months (green 2021-01..03, 2023-01) hold odometer readings up to "
        "244,152 mi; 0.03-0.07% of rows are above 300, 0-8 a month between 100 and 300 (kept).",
    ),
    RowRule(
        "zero_distance",
        "trip distance is not zero",
        "A trip that records no distance (a cancelled trip, or an odometer that did not count while "
        "the meter ran for minutes) has no value for the strongest feature.",
        "No threshold: the data dictionary's trip distance is the taximeter's. Real months: green "
        "2021-01..03 3.2-3.3%, 2023-01 4.9% of rows (2022 months 5.4-5.8%), the largest share of any "
        "rule and the one the bad-row budget is sized for; median duration 7-11 min, so most are "
        "real trips whose distance was lost.",
    ),
    RowRule(
        "unknown_zone",
        f"pickup and dropoff zone ids are within {ZONE_IDS[0]}..{ZONE_IDS[1]}",
        "Zone ids index the TLC taxi-zone map; anything else has no borough, no geography, no slice.",
        "The 265 ids of TLC's taxi zone lookup. Real months (green 2021-01..03, 2023-01): 0 rows.",
    ),
    RowRule(
        "unknown_payment_type",
        f"payment_type is empty or one of {', '.join(map(str, PAYMENT_TYPES))}",
        "Codes outside the TLC data dictionary mean the feed changed its encoding.",
        "The TLC data dictionary's codes (0 flex fare from 2024). Real months (green 2021-01..03, "
        "2023-01): 0 rows (6-48% empty, allowed).",
    ),
    RowRule(
        "unknown_rate_code",
        f"rate_code_id is empty or one of {', '.join(map(str, RATE_CODES))}",
        "Rate codes select the tariff (JFK flat fare, Newark); unknown codes break fare logic.",
        "The TLC data dictionary's codes. Real months (green 2021-01..03, 2023-01): 0 rows (99 "
        "once in 2021-01 and 10 times in 2023-01, allowed).",
    ),
    RowRule(
        "unknown_vendor",
        f"vendor_id is empty or one of {', '.join(map(str, VENDORS))}",
        "An unknown vendor is an unvetted device feed whose records are not comparable.",
        "The TLC data dictionaries' vendors (6 and 7 from 2024). Real months (green 2021-01..03, "
        "2023-01): 0 rows (vendors 1 and 2 only).",
    ),
    RowRule(
        "negative_fare",
        "fare_amount is not negative",
        "Negative fares are refunds and voided trips (in real months 95% are payment types 3, no "
        "charge, and 4, dispute), not rides.",
        "No threshold: the fare schedules charge no negative fare. Real months: green 2021-01..03 "
        "0.17-0.18%, 2023-01 0.26% of rows; their totals add up (all parts negative).",
    ),
    RowRule(
        "fare_inconsistent",
        f"total_amount equals the sum of its parts within ${FARE_TOLERANCE:.2f}, or adds up under a "
        "fare reading (FARE_READINGS) of the surcharges in force at the trip's pickup "
        "(core/fares.py): itemised but left out of the total, itemised and inside extra too, or "
        "inside the total while its column is empty; each reading's rows are counted",
        "Totals that do not add up are corrupted money columns; a model or report reading them "
        "would learn from amounts nobody paid.",
        f"${FARE_TOLERANCE:.2f}: TLC amounts are whole cents; the surcharges and their dates are TLC's "
        "fare schedules (2012-09-04, 2022-12-19), NY State's congestion surcharge (2019-02-02), the "
        "airport access fee and the MTA toll (2025-01-05). As itemised, 2.9-3.5% of green 2021 rows "
        "and 15.5% of green 2023-01 rows fail (vendor 1 leaves the $1.00 improvement surcharge out of "
        "the total); with the readings 0.08-0.56% (mostly +$5.00 on $10.00 tips from vendor 2 in "
        "2021-02) and 0.08% in 2023-01.",
    ),
    RowRule(
        "invalid_store_and_fwd_flag",
        "store_and_fwd_flag is empty, Y or N",
        "Anything else is an encoding error (e.g. non-UTF-8 bytes) in a column that should be trivial.",
        "The data dictionary's two values. Real months (green 2021-01..03, 2023-01): 0 rows (6-48% "
        "empty, allowed).",
    ),
    RowRule(
        "duplicate_row",
        "no trip repeats an earlier one (same times, zones, distance, fare, total and vendor)",
        "Duplicated deliveries double-count trips in training and in monitoring.",
        "No threshold: one record per trip (the data dictionary). Real months (green 2021-01..03, "
        "2023-01): 0 rows.",
    ),
)
RULE_NAMES = tuple(r.name for r in ROW_RULES)
BAD_ROW_SHARE_CALIBRATION = (
    "10% (contract.max_bad_row_share of the shipped specs): every rule reads TLC's published "
    "definitions (data dictionaries, zone lookup, the fare schedule in force at each pickup), so "
    "a usual month quarantines what its producers get wrong, not what changed in the schedule: "
    "green 2021-01..03 3.7-4.1%, green 2023-01 5.5% (2022 months 6.2-6.6%), of which zero_distance "
    "3.2-5.8% and every other rule under 1%. The budget is the largest zero-distance share plus "
    "the other rules at their 1% bound with room to spare; above it the delivery is broken."
)


# -- Arrow column helpers the rules share ------------------------------------------------


def missing(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Null, or NaN in a float column."""
    return pc.is_null(column, nan_is_null=True)


def hits(condition: pa.ChunkedArray) -> pa.ChunkedArray:
    """A comparison as a mask: a row whose inputs are null does not break the rule."""
    return pc.fill_null(condition, False)


def out_of_range(column: pa.ChunkedArray, low: float, high: float) -> pa.ChunkedArray:
    """Below ``low`` or above ``high`` (null and NaN are neither)."""
    return hits(pc.or_(pc.less(column, low), pc.greater(column, high)))


def outside(column: pa.ChunkedArray, allowed: Iterable[int]) -> pa.ChunkedArray:
    """Present, but not one of the ``allowed`` codes (an empty code is allowed)."""
    return pc.and_(pc.is_valid(column), pc.invert(pc.is_in(column, pa.array(list(allowed), column.type))))


def filled(column: pa.ChunkedArray) -> np.ndarray:
    """A column as numpy values, nulls as zeros (no copy for one chunk without nulls)."""
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    if column.null_count:
        column = column.fill_null(pa.scalar(0, column.type))
    values: np.ndarray = column.to_numpy()
    return values


def count(mask: pa.ChunkedArray) -> int:
    """How many rows a mask flags."""
    return int(pc.sum(mask, min_count=0).as_py())


# -- duplicates ---------------------------------------------------------------------------


def duplicate_rows(trips: pa.Table) -> np.ndarray:
    """Rows of ``trips`` that repeat an earlier row on every column of the duplicate key."""
    return duplicated([filled(trips.column(name)) for name in DUPLICATE_KEY])


def duplicated(keys: list[np.ndarray]) -> np.ndarray:
    """Rows equal on every key to an earlier row: hashed, narrowed, then confirmed exactly.

    Each row's keys are hashed to 64 bits. Counting hashes per bucket (their top bits, one
    pass of ``np.bincount``) keeps the rows that share a bucket, a small share of the
    month; among those, only rows whose hash repeats are compared key by key. Nothing
    sorts or hashes the whole month a second time.
    """
    import pandas as pd

    n = keys[0].size
    out = np.zeros(n, dtype=bool)
    if n < 2:
        return out
    words = [k.view(np.uint64) if k.dtype.itemsize == 8 else k.astype(np.uint64) for k in keys]
    digest = np.full(n, 0xCBF29CE484222325, dtype=np.uint64)
    for word in words:  # FNV-1a over 64-bit words; wraps by design
        digest ^= word
        digest *= np.uint64(0x100000001B3)
    # 8-16 buckets a row, at most 2^24 (128 MB of counts; ~5 a row for 3M rows): few shared by chance
    bits = int(min(24, max(8, np.ceil(np.log2(n)) + 3)))
    bucket = (digest >> np.uint64(64 - bits)).astype(np.intp)
    shared = np.flatnonzero(np.bincount(bucket, minlength=1 << bits)[bucket] > 1)
    candidates = shared[pd.Series(digest[shared]).duplicated(keep=False).to_numpy()]
    if not candidates.size:
        return out
    frame = pd.DataFrame({i: w[candidates] for i, w in enumerate(words)})
    out[candidates[frame.duplicated(keep="first").to_numpy()]] = True
    return out


# -- money, by the fare schedule in force at each pickup ------------------------------------


_RATES = {
    name: np.array([getattr(s, name) for s in fares.SCHEDULES]) for name in (*tlc.SURCHARGES, "mta_tax")
}
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
    for name in tlc.FARE_PARTS:
        part = col(name)
        if part.null_count == len(part) and parts is not None:
            continue  # adding zeros changes no sum
        part = part.fill_null(0.0) if part.null_count else part
        parts = part if parts is None else pc.add(parts, part)
    assert parts is not None  # tlc.FARE_PARTS is not empty and its first part is always added
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
    options = [_options(name, off_rows, codes, np.where(total_off < 0, -1.0, 1.0)) for name in tlc.SURCHARGES]
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
    for name in tlc.SURCHARGES:
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


# -- the rules over a month's trips ---------------------------------------------------------


def month_window_us(month: str, tolerance_hours: float) -> tuple[int, int]:
    """[start, end) of the month in microseconds since the epoch, widened by the tolerance."""
    months.check(month)
    start, end = (_epoch_us(t) for t in (months.start_of(month), months.end_of(month)))
    slack = int(tolerance_hours * 3600 * 1_000_000)
    return start - slack, end + slack


def _epoch_us(moment: datetime) -> int:
    """A month boundary (TLC's wall clock, stored as UTC) in microseconds since the epoch."""
    return int(moment.replace(tzinfo=UTC).timestamp()) * 1_000_000


@dataclass
class RowHits:
    """The row rules over a month: one mask per rule, and the rows each fare reading explained."""

    masks: dict[str, pa.ChunkedArray]
    readings: dict[str, int] = field(default_factory=lambda: dict.fromkeys(READING_NAMES, 0))


def check_rows(trips: pa.Table, use_case: UseCase, month: str) -> RowHits:
    """Every row rule over ``trips``, and the fare readings ``fare_inconsistent`` accepted.

    Arrow computes the masks as bitmaps, an eighth of numpy's booleans, in its own memory
    pool; a value that is null (or NaN) never breaks a rule other than ``missing_key``.
    Money is judged by the fare schedule in force at each trip's own pickup.
    """
    duplicates = in_thread(duplicate_rows, trips)  # numpy and Arrow release the GIL: both cores work
    c = use_case.contract
    col = trips.column
    pickup, dropoff = col("pickup_datetime").cast(pa.int64()), col("dropoff_datetime").cast(pa.int64())
    fare, total = col("fare_amount"), col("total_amount")
    lo, hi = month_window_us(month, c.pickup_tolerance_hours)

    missing_key = missing(col(KEY_COLUMNS[0]))
    for name in KEY_COLUMNS[1:]:
        missing_key = pc.or_(missing_key, missing(col(name)))
    priced = pc.invert(pc.or_(missing(fare), missing(total)))
    duration, distance = col("duration_min"), col("trip_distance")
    # average mph = 60 * miles / minutes; compared without dividing, so a zero duration is no error
    idle = pc.and_(
        pc.greater(duration, c.idle_trip_minutes),
        pc.less(pc.multiply(distance, 60.0), pc.multiply(duration, c.min_average_mph)),
    )
    flag = col("store_and_fwd_flag")
    fares_read = fare_check(trips, month)
    masks = {
        "missing_key": missing_key,
        "pickup_outside_month": hits(pc.or_(pc.less(pickup, lo), pc.greater_equal(pickup, hi))),
        "dropoff_not_after_pickup": hits(pc.less_equal(dropoff, pickup)),
        "implausible_duration": hits(pc.greater(duration, c.max_trip_minutes)),
        "idle_trip": hits(idle),
        "implausible_distance": out_of_range(distance, 0.0, c.max_trip_miles),
        "zero_distance": hits(pc.equal(distance, 0.0)),
        "unknown_zone": pc.or_(
            out_of_range(col("pu_location_id"), *ZONE_IDS), out_of_range(col("do_location_id"), *ZONE_IDS)
        ),
        "unknown_payment_type": outside(col("payment_type"), PAYMENT_TYPES),
        "unknown_rate_code": outside(col("rate_code_id"), RATE_CODES),
        "unknown_vendor": outside(col("vendor_id"), VENDORS),
        "negative_fare": pc.and_(priced, hits(pc.less(fare, 0.0))),
        "fare_inconsistent": fares_read.inconsistent,
        "invalid_store_and_fwd_flag": pc.and_(pc.is_valid(flag), pc.invert(pc.is_in(flag, pa.array(FLAGS)))),
        "duplicate_row": pa.chunked_array([duplicates.result()], pa.bool_()),
    }
    assert tuple(masks) == RULE_NAMES
    return RowHits(masks, fares_read.readings)


def row_rule_masks(trips: pa.Table, use_case: UseCase, month: str) -> dict[str, np.ndarray]:
    """One numpy boolean mask per rule in :data:`ROW_RULES` (True: the row breaks it)."""
    return {name: hit.to_numpy() for name, hit in check_rows(trips, use_case, month).masks.items()}


def quarantine_table(
    trips: pa.Table, masks: dict[str, np.ndarray], bad: np.ndarray, starts: Sequence[int] = (0,)
) -> pa.Table:
    """The bad rows, with ``quarantine_reason`` (rule names joined by ``;``) and ``source_row``.

    ``trips`` may be several raw files one after the other, file ``i`` from row
    ``starts[i]``; ``source_row`` is the row in its own file (``taxi_type`` tells the file).
    """
    index = np.flatnonzero(bad)
    reasons = np.full(index.size, "", dtype=object)
    for name in RULE_NAMES:
        hit = masks[name][index]
        reasons[hit] = reasons[hit] + (name + ";")
    rows = trips.take(pa.array(index))
    rows = rows.append_column("quarantine_reason", pa.array([r.rstrip(";") for r in reasons], pa.string()))
    first = np.asarray(starts, dtype=np.int64)
    within = index - first[np.searchsorted(first, index, side="right") - 1]
    return rows.append_column("source_row", pa.array(within, pa.int64()))


# -- volume ---------------------------------------------------------------------------------


HISTORY_MONTHS = 6
"""How many previous months the volume check takes the median of."""


def history_row_counts(lake: Lake, use_case: UseCase, month: str, months: int = HISTORY_MONTHS) -> list[int]:
    """Raw row counts of the latest ``months`` validated months before ``month``."""
    earlier = [s for s in snapshots.current_snapshots(lake, use_case.name) if s.month < month][-months:]
    return [int((s.manifest.get("source") or {}).get("rows", s.rows)) for s in earlier]


@dataclass(frozen=True)
class VolumeBounds(Record):
    """The row count a month may have (the manifest's ``volume`` block)."""

    checked: bool
    """False without history: any count passes."""
    history_months: int
    median_rows: float | None
    min_rows: int
    max_rows: int | None


def volume_bounds(use_case: UseCase, history: Sequence[int]) -> VolumeBounds:
    """The allowed row count from the history's median (no history: unchecked)."""
    if not history:
        return VolumeBounds(checked=False, history_months=0, median_rows=None, min_rows=0, max_rows=None)
    median = float(statistics.median(history))
    low, high = use_case.contract.volume_band
    return VolumeBounds(
        checked=True,
        history_months=len(history),
        median_rows=median,
        min_rows=int(np.ceil(low * median)),
        max_rows=int(np.floor(high * median)),
    )
