"""The row rules computed over a month's trips: one Arrow boolean mask per rule, and the quarantine.

Each rule of :data:`~mlplatform.stages.contracts.rules.ROW_RULES` is computed once,
vectorised, over all rows of the month (its files' normalised trips together). Arrow
computes the masks as bitmaps in its own memory pool; the duplicate detector runs in a
thread meanwhile. :func:`quarantine_table` sets the rows that break a rule aside, with
their reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplatform.core import months
from mlplatform.core.spec import UseCase
from mlplatform.stages.contracts.arrays import hits, missing, out_of_range, outside
from mlplatform.stages.contracts.duplicates import duplicate_rows
from mlplatform.stages.contracts.money import fare_check
from mlplatform.stages.contracts.rules import (
    FLAGS,
    KEY_COLUMNS,
    PAYMENT_TYPES,
    RATE_CODES,
    READING_NAMES,
    RULE_NAMES,
    VENDORS,
    ZONE_IDS,
)
from mlplatform.stages.contracts.threads import in_thread


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


def row_rule_hits(trips: pa.Table, use_case: UseCase, month: str) -> dict[str, pa.ChunkedArray]:
    """One Arrow boolean mask per rule in :data:`.rules.ROW_RULES` (True: the row breaks it)."""
    return check_rows(trips, use_case, month).masks


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
    """:func:`row_rule_hits` as numpy booleans."""
    return {name: hit.to_numpy() for name, hit in row_rule_hits(trips, use_case, month).items()}


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
