"""The row rules computed over a month's trips: one Arrow boolean mask per rule, and the quarantine.

Each rule of :data:`~mlplatform.stages.contracts.rules.ROW_RULES` is computed once,
vectorised, over all rows of the month (its files' normalised trips together). Arrow
computes the masks as bitmaps in its own memory pool; the duplicate detector runs in a
thread meanwhile. :func:`quarantine_table` sets the rows that break a rule aside, with
their reasons.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplatform.core import months
from mlplatform.core.spec import UseCase
from mlplatform.stages.contracts.arrays import filled, hits, missing, out_of_range, outside
from mlplatform.stages.contracts.duplicates import duplicate_rows
from mlplatform.stages.contracts.rules import (
    FARE_PARTS,
    FARE_TOLERANCE,
    FLAGS,
    KEY_COLUMNS,
    PAYMENT_TYPES,
    RATE_CODES,
    RULE_NAMES,
    SURCHARGE_RATES,
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


def row_rule_hits(trips: pa.Table, use_case: UseCase, month: str) -> dict[str, pa.ChunkedArray]:
    """One Arrow boolean mask per rule in :data:`.rules.ROW_RULES` (True: the row breaks it).

    Arrow computes the masks as bitmaps, an eighth of numpy's booleans, in its own memory
    pool; a value that is null (or NaN) never breaks a rule other than ``missing_key``.
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
        "fare_inconsistent": fare_inconsistent(trips, month),
        "invalid_store_and_fwd_flag": pc.and_(pc.is_valid(flag), pc.invert(pc.is_in(flag, pa.array(FLAGS)))),
        "duplicate_row": pa.chunked_array([duplicates.result()], pa.bool_()),
    }
    assert tuple(masks) == RULE_NAMES
    return masks


def fare_inconsistent(trips: pa.Table, month: str) -> pa.ChunkedArray:
    """Priced rows whose ``total_amount`` no reading of the surcharges explains (see :data:`SURCHARGE_RATES`).

    Most rows add up as itemised; only the others (a few percent of a real month) are tried
    against every reading: each surcharge as itemised, as already inside ``extra`` (itemised
    twice), or, where its column is empty or zero, charged at a rate TLC charged in ``month``.
    """
    col = trips.column
    fare, total = col("fare_amount"), col("total_amount")
    priced = pc.invert(pc.or_(missing(fare), missing(total)))
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
    if not rows.size:
        return off
    index = pa.array(rows)
    residual = (filled(total.take(index)) - filled(parts.take(index))).astype(np.float64)
    readings = []  # per surcharge: what it may add to the itemised sum, one array per reading
    for name, periods in SURCHARGE_RATES.items():
        rates = [rate for rate, first, last in periods if first <= month <= last]
        itemised = filled(col(name).take(index)).astype(np.float64)
        empty = np.isnan(itemised) | (itemised == 0.0)
        itemised = np.where(empty, 0.0, itemised)
        readings.append([-itemised] + [np.where(empty, rate, 0.0) for rate in rates])
    explained = np.zeros(rows.size, dtype=bool)
    for extra in itertools.product(*readings):  # at most 4 x 3 x 2 readings, over the few rows that are off
        explained |= np.abs(residual - sum(extra)) <= FARE_TOLERANCE
    unexplained = np.zeros(trips.num_rows, dtype=bool)
    unexplained[rows[~explained]] = True
    return pa.chunked_array([unexplained], pa.bool_())


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
