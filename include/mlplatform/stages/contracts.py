"""Data contracts: what a raw TLC month must satisfy before training and scoring may read it.

A use case's contract is the Great Expectations suite named by ``contract.suite`` in its
spec, kept in the file data context under ``great_expectations/`` (see its README). The
suite is generated from the spec by :func:`build_suite` and committed; ``python -m
mlplatform.stages.contracts sync`` rewrites it after a spec change, and a test checks the two
agree.

A month is the raw file of every taxi type the use case lists (``data.taxi_types``) that
has landed. Validating it (:func:`evaluate_files`; :func:`evaluate` for one file) takes
four steps:

1. **Read**: parse each raw parquet file and compare its schema with the TLC format:
   readable, a listed taxi type, every required column, types TLC has published (``null``
   for a column TLC left entirely empty).
2. **Normalise** each with :func:`mlplatform.core.tlc.normalise`; the month is their rows
   together, the ``taxi_type`` column keeping which file each came from.
3. **Row rules**: each rule in :data:`ROW_RULES` is computed once, vectorised, as a mask
   over all rows (nulls in keys, pickup outside the month, dropoff not after pickup,
   implausible duration, idle trips, implausible or zero distance, unknown zones, payment
   types, rate codes or vendors, negative fares, totals that do not add up, bad flags,
   duplicates). Each rule's ``calibration`` cites the real TLC figures behind it.
4. **Checkpoint**: the month's *contract profile* (one row: what step 1 found, the row
   count, the volume against history, the number of rows failing each rule, the share of
   bad rows) is validated by the use case's checkpoint; the result's Data Docs page is
   rendered in a thread while the step writes its outputs. GX's pandas engine needs
   minutes for the same row rules as row-level expectations over a 3M-row month (the
   peer in ``bench/bench_validate.py``); checking the profile takes about a second. The
   rows themselves were already checked in step 3, and their counts are what the
   expectations judge.

Each expectation carries a severity in its ``meta`` (and GX ``severity``):

- ``breach`` (critical): the file cannot be trusted as a whole: unreadable, empty,
  wrong taxi type, schema broken, a required column entirely null, volume far off the
  recent median, or more bad rows than ``contract.max_bad_row_share``. Nothing is
  validated; a breach record is written to ``quarantine/`` and the run fails.
- ``row`` (warning): some rows break a row rule. They are quarantined with their reasons
  and the rest of the month is validated.
- ``notice`` (info): worth knowing, harmless (extra columns, which are dropped).

:func:`validate_month` runs all of it for a month in the lake and writes the results
(:func:`publish`): the validated snapshot, quarantined rows, or the breach record. The
raw file is only ever read. Encoding the snapshot takes longer than the checkpoint, so a
thread encodes the rows that would be validated, in memory, while the checkpoint runs;
the snapshot is stored only if the contract holds, and dropped on a breach.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import itertools
import json
import logging
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlplatform.adapters import settings, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import tlc
from mlplatform.core.spec import UseCase

if TYPE_CHECKING:
    import great_expectations as gx

log = logging.getLogger(__name__)

DATASOURCE = "lake"
BATCH_DEFINITION = "month_profile"
DATA_DOCS_SITE = "local_site"
NONE = "none"
"""Profile value of a problem column when there is no problem."""
HISTORY_MONTHS = 6
"""How many previous months the volume check takes the median of."""

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
SURCHARGE_RATES: dict[str, tuple[tuple[float, str, str], ...]] = {
    # NY State congestion surcharge (from 2019-02-02): yellow $2.50, green and other
    # non-medallion $2.75, shared rides $0.75.
    "congestion_surcharge": (
        (2.50, "2019-02", "9999-12"),
        (2.75, "2019-02", "9999-12"),
        (0.75, "2019-02", "9999-12"),
    ),
    # LaGuardia and JFK pickups: $1.25, $1.75 from the fare change of 2022-12-19.
    "airport_fee": ((1.25, "2021-01", "2022-12"), (1.75, "2022-12", "9999-12")),
    # MTA Central Business District toll for taxi trips in the zone (from 2025-01-05).
    "cbd_congestion_fee": ((0.75, "2025-01", "9999-12"),),
}
"""Per-trip surcharges TLC publishes in their own columns: (rate, first month, last month).

Real files do not always itemise them: a surcharge can be inside ``total_amount`` while its
column is empty (green 2021: 0.7-0.8% of rows are off by exactly +$2.75, all with an empty
``congestion_surcharge``; yellow flex-fare rows likewise), or inside ``extra`` as well as
in its own column (green 2021: 2.1-2.2% of rows, all from vendor 1, are off by exactly
-$2.75). ``fare_inconsistent`` accepts a total explained by either.
"""
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
_FARE_PARTS = (
    "fare_amount",
    "extra",
    "mta_tax",
    "tip_amount",
    "tolls_amount",
    "improvement_surcharge",
    "ehail_fee",
    *SURCHARGE_RATES,
)


class RawFileMissing(FileNotFoundError):
    """The month has no raw file in the lake: nothing to validate yet."""


@dataclass(frozen=True)
class RowRule:
    """A rule every trip must satisfy; rows that break it are quarantined.

    ``calibration`` says which figure of the real TLC months sets the rule's threshold and
    what share of their rows it quarantines (green 2021-01..03, ``tests/fixtures/real_tlc``;
    ``tests/test_real_tlc_contract.py`` checks the shares).
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
        "No threshold. Real months: 0 rows; TLC leaves codes, flags and surcharges empty on "
        "45-48% of green rows, never these keys.",
    ),
    RowRule(
        "pickup_outside_month",
        "pickup falls inside the partition month, within contract.pickup_tolerance_hours",
        "Trips filed under the wrong month (other years, future dates, or begun the evening before "
        "the month and filed by their dropoff) would leak into training windows and skew monthly "
        "monitoring.",
        "Tolerance 0 h. Real months: 0-3 rows a month (under 0.01%): pickups in 2009, one trip "
        "begun before midnight of the month's first day, one picked up the evening after the month.",
    ),
    RowRule(
        "dropoff_not_after_pickup",
        "dropoff is later than pickup",
        "The duration is the label; zero or negative durations are clock or meter errors.",
        "No threshold. Real months: 0.09-0.11% of rows.",
    ),
    RowRule(
        "implausible_duration",
        "trip lasts at most contract.max_trip_minutes",
        "Meters left running produce day-long trips that dominate a squared-error loss.",
        "720 min: 0.14-0.18% of real rows last 12-24 h, 97-100% of them at under 1 mph (a meter "
        "left on); none lasts a day or more.",
    ),
    RowRule(
        "idle_trip",
        "a trip longer than contract.idle_trip_minutes averages at least contract.min_average_mph",
        "A taxi standing for hours with the meter on is not a trip; its minutes say nothing about "
        "travel time.",
        "60 min, 2 mph: real trips over an hour have a median speed of 13-13.5 mph; 0.25-0.28% of "
        "rows last over an hour at under 2 mph, two thirds to three quarters of them over 6 h.",
    ),
    RowRule(
        "implausible_distance",
        "trip distance is between 0 and contract.max_trip_miles",
        "Negative or huge odometer readings are device faults; distance is the strongest feature.",
        "300 mi: real months hold odometer readings up to 244,152 mi; 0.03-0.07% of rows are above "
        "300, and 0-8 rows a month between 100 and 300 (long out-of-town trips, kept).",
    ),
    RowRule(
        "zero_distance",
        "trip distance is not zero",
        "A trip that records no distance (a cancelled trip, or an odometer that did not count while "
        "the meter ran for minutes) has no value for the strongest feature.",
        "No threshold. Real months: 3.2-3.3% of rows, the largest share of any rule; their median "
        "duration is 7-11 min, so most are real trips whose distance was lost.",
    ),
    RowRule(
        "unknown_zone",
        f"pickup and dropoff zone ids are within {ZONE_IDS[0]}..{ZONE_IDS[1]}",
        "Zone ids index the TLC taxi-zone map; anything else has no borough, no geography, no slice.",
        "The 265 ids of TLC's zone lookup. Real months: 0 rows.",
    ),
    RowRule(
        "unknown_payment_type",
        f"payment_type is empty or one of {', '.join(map(str, PAYMENT_TYPES))}",
        "Codes outside the TLC data dictionary mean the feed changed its encoding.",
        "The TLC data dictionary's codes. Real months: 0 rows (45-48% empty, allowed).",
    ),
    RowRule(
        "unknown_rate_code",
        f"rate_code_id is empty or one of {', '.join(map(str, RATE_CODES))}",
        "Rate codes select the tariff (JFK flat fare, Newark); unknown codes break fare logic.",
        "The TLC data dictionary's codes. Real months: 0 rows (one 99 in 2021-01, allowed).",
    ),
    RowRule(
        "unknown_vendor",
        f"vendor_id is empty or one of {', '.join(map(str, VENDORS))}",
        "An unknown vendor is an unvetted device feed whose records are not comparable.",
        "The TLC data dictionary's vendors. Real months: 0 rows (vendors 1 and 2 only).",
    ),
    RowRule(
        "negative_fare",
        "fare_amount is not negative",
        "Negative fares are refunds and voided trips (in real months 95% are payment types 3, no "
        "charge, and 4, dispute), not rides.",
        "No threshold. Real months: 0.17-0.18% of rows; their totals add up (all parts negative).",
    ),
    RowRule(
        "fare_inconsistent",
        f"total_amount equals the sum of its parts within ${FARE_TOLERANCE:.2f}, each surcharge "
        "(congestion, airport, CBD) counted as itemised, as already inside extra, or, where its "
        "column is empty, at a rate TLC has charged",
        "Totals that do not add up are corrupted money columns; a model or report reading them "
        "would learn from amounts nobody paid.",
        f"${FARE_TOLERANCE:.2f}: TLC amounts are whole cents. Without the surcharge allowances "
        "2.9-3.5% of real rows fail, nearly all off by exactly +/-$2.75 (the green congestion "
        "surcharge); with them 0.05-0.53% (mostly +$5.00 on $10.00 tips from vendor 2 in 2021-02).",
    ),
    RowRule(
        "invalid_store_and_fwd_flag",
        "store_and_fwd_flag is empty, Y or N",
        "Anything else is an encoding error (e.g. non-UTF-8 bytes) in a column that should be trivial.",
        "TLC's two values. Real months: 0 rows (45-48% empty, allowed).",
    ),
    RowRule(
        "duplicate_row",
        "no trip repeats an earlier one (same times, zones, distance, fare, total and vendor)",
        "Duplicated deliveries double-count trips in training and in monitoring.",
        "No threshold. Real months: 0 rows.",
    ),
)
RULE_NAMES = tuple(r.name for r in ROW_RULES)
BAD_ROW_SHARE_CALIBRATION = (
    "10% (contract.max_bad_row_share of the shipped specs): real months quarantine 3.7-4.1% "
    "(zero_distance 3.2-3.3%, every other rule under 0.6%), so a usual month has a margin of "
    "more than half; a share twice the worst real month is a broken delivery."
)


# --- where the context lives -------------------------------------------------------------


def gx_root() -> Path:
    """The GX file data context: ``MLPLATFORM_GX_ROOT`` or ``great_expectations/`` in the repo.

    Data Docs and validation results are written below it, in ``uncommitted/``; point the
    variable at a writable copy where the repository is read-only.
    """
    return Path(settings.get("MLPLATFORM_GX_ROOT"))


def data_docs_index(root: Path | None = None) -> Path:
    """The Data Docs home page (it exists once a validation has run)."""
    return (root or gx_root()) / "uncommitted" / "data_docs" / DATA_DOCS_SITE / "index.html"


def checkpoint_name(use_case: UseCase) -> str:
    return f"{use_case.name}_validate"


def validation_definition_name(use_case: UseCase) -> str:
    return f"{use_case.name}_contract"


def open_context(root: Path | None = None) -> gx.data_context.FileDataContext:
    import great_expectations as gx

    root = root or gx_root()
    if not (root / "great_expectations.yml").is_file():
        raise FileNotFoundError(
            f"no Great Expectations context at {root}: set MLPLATFORM_GX_ROOT to the "
            "great_expectations/ folder of the repository (or a copy of it)"
        )
    return gx.get_context(mode="file", context_root_dir=str(root))


# --- the suite ---------------------------------------------------------------------------


def _meta(check: str, severity: str, rule: str, why: str, calibration: str = "") -> dict[str, Any]:
    notes = [f"**{severity}**: {rule}.", f"*Why:* {why}"]
    if calibration:
        notes.append(f"*Calibrated on real TLC months:* {calibration}")
    meta = {"check": check, "severity": severity, "rule": rule, "why": why}
    if calibration:
        meta["calibration"] = calibration
    return {**meta, "notes": {"format": "markdown", "content": notes}}


def build_suite(use_case: UseCase) -> gx.ExpectationSuite:
    """The contract of ``use_case`` as a GX suite over the month's contract profile."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    c = use_case.contract
    breach, row, notice = "breach", "row", "notice"
    expectations = [
        gxe.ExpectColumnValuesToBeInSet(
            column="file_problem",
            value_set=[NONE],
            severity="critical",
            meta=_meta(
                "file_problem",
                breach,
                "the file is a readable parquet file",
                "Zero-byte, truncated or mislabelled (e.g. CSV) deliveries cannot be validated at all.",
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="unlisted_taxi_type",
            value_set=[NONE],
            severity="critical",
            meta=_meta(
                "taxi_type",
                breach,
                "each file holds trips of a taxi type the use case lists (data.taxi_types), the one its "
                "lake path names",
                "Green and yellow trips differ in zones, fares and trip mix; a use case reads the kinds "
                "it lists, each from its own file, with the kind kept as the taxi_type column.",
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="missing_columns",
            value_set=[NONE],
            severity="critical",
            meta=_meta(
                "missing_columns",
                breach,
                "every required TLC column is present (a renamed column counts as missing)",
                "Features, label and keys are built from these columns.",
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="mistyped_columns",
            value_set=[NONE],
            severity="critical",
            meta=_meta(
                "mistyped_columns",
                breach,
                "every known column has a type TLC has published it with, or null (a column TLC left "
                "entirely empty, as ehail_fee in green 2021-2022)",
                "A changed type (money as text, ids as floats) means the producer changed the format; "
                "casting it silently would hide that.",
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="all_null_columns",
            value_set=[NONE],
            severity="critical",
            meta=_meta(
                "all_null_columns",
                breach,
                "no key column is entirely empty",
                "An empty key column is a broken extract, not a few bad rows.",
            ),
        ),
        gxe.ExpectColumnMinToBeBetween(
            column="row_count",
            min_value=1,
            severity="critical",
            meta=_meta("row_count", breach, "the file has rows", "An empty month is a failed delivery."),
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="row_count",
            min_value={"$PARAMETER": "volume_min_rows"},
            max_value={"$PARAMETER": "volume_max_rows"},
            severity="critical",
            meta=_meta(
                "volume",
                breach,
                f"the row count is within {c.volume_band[0]}x..{c.volume_band[1]}x the median of the "
                f"previous {HISTORY_MONTHS} validated months (no history: any count)",
                "A month far off the usual volume is a partial or duplicated delivery.",
            ),
        ),
        gxe.ExpectColumnMaxToBeBetween(
            column="bad_row_share",
            min_value=0,
            max_value=c.max_bad_row_share,
            severity="critical",
            meta=_meta(
                "bad_row_share",
                breach,
                f"at most {c.max_bad_row_share:.1%} of rows break a row rule (contract.max_bad_row_share)",
                "A few bad rows are quarantined; many mean the whole delivery is suspect.",
                BAD_ROW_SHARE_CALIBRATION,
            ),
        ),
    ]
    for rule in ROW_RULES:
        expectations.append(
            gxe.ExpectColumnMaxToBeBetween(
                column=f"rows_{rule.name}",
                min_value=0,
                max_value=0,
                severity="warning",
                meta=_meta(rule.name, row, rule.rule, rule.why, rule.calibration),
            )
        )
    expectations.append(
        gxe.ExpectColumnValuesToBeInSet(
            column="unexpected_columns",
            value_set=[NONE],
            severity="info",
            meta=_meta(
                "unexpected_columns",
                notice,
                "the file has no columns outside the TLC format",
                "New columns are dropped by the normaliser; a notice tells the owner the format moved.",
            ),
        )
    )
    return gx.ExpectationSuite(
        name=c.suite,
        expectations=expectations,
        meta={
            "guards": "raw NYC TLC trip records (green and yellow), one month at a time",
            "generated_by": "mlplatform.stages.contracts.build_suite from the use-case spec's contract",
        },
    )


def sync_context(root: Path | None = None, use_cases: Sequence[UseCase] | None = None) -> Path:
    """Create or update the file data context for every use case (idempotent).

    Unchanged objects keep their ids, so running it twice changes no file.
    """
    import great_expectations as gx

    from mlplatform.core import spec

    root = root or gx_root()
    root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", context_root_dir=str(root))
    quiet = {"globally": False, "metric_calculations": False}
    if context.variables.analytics_enabled is not False or context.variables.progress_bars != quiet:
        context.variables.analytics_enabled = False  # no usage statistics sent anywhere
        context.variables.progress_bars = quiet  # no progress bars in task logs
        context.variables.save()
    try:
        source = context.data_sources.get(DATASOURCE)
    except KeyError:
        source = context.data_sources.add_pandas(DATASOURCE)
    suites: dict[str, Any] = {}
    owners: dict[str, str] = {}
    for use_case in use_cases or spec.load_all():
        suite = build_suite(use_case)
        if suite.name in suites and suites[suite.name] != suite.to_json_dict():
            raise ValueError(
                f"use cases {owners[suite.name]} and {use_case.name} both name suite {suite.name!r} "
                "but their contracts differ; give each its own contract.suite"
            )
        suites[suite.name], owners[suite.name] = suite.to_json_dict(), use_case.name
        asset_name = use_case.data.dataset
        try:
            asset = source.get_asset(asset_name)
        except LookupError:
            asset = source.add_dataframe_asset(asset_name)
        try:
            batch = asset.get_batch_definition(BATCH_DEFINITION)
        except KeyError:
            batch = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
        _keep_ids(context, suite)
        suite = context.suites.add_or_update(suite)
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=validation_definition_name(use_case), data=batch, suite=suite)
        )
        context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=checkpoint_name(use_case),
                validation_definitions=[definition],
                # Data Docs are rendered for the one new result by the step itself, in a thread
                # (see _run_checkpoint): the action would rebuild the whole site on the step's path.
                actions=[],
                result_format={"result_format": "SUMMARY"},
            )
        )
    return root


def _keep_ids(context: Any, suite: Any) -> None:
    """Give unchanged expectations their stored ids, so a sync without changes rewrites nothing.

    (``suites.add_or_update`` compares expectations including their ids, so it never matches.)
    """
    from great_expectations.exceptions import DataContextError

    try:
        stored = context.suites.get(suite.name)
    except DataContextError:
        return

    def content(expectation: Any) -> str:
        config = expectation.configuration.to_json_dict()
        config.pop("id", None)
        return json.dumps(config, sort_keys=True)

    ids = {content(e): e.id for e in stored.expectations}
    for expectation in suite.expectations:
        expectation.id = ids.get(content(expectation))
    suite.id = stored.id


# --- step 1: reading ---------------------------------------------------------------------


def _allowed_raw_types() -> dict[str, set[pa.DataType]]:
    allowed: dict[str, set[pa.DataType]] = {}
    for taxi in ("yellow", "green"):
        for generation in ("legacy", "2024", "2025"):
            for f in tlc.raw_schema(taxi, generation):
                allowed.setdefault(f.name, set()).add(f.type)
    return allowed


_ALLOWED_RAW_TYPES = _allowed_raw_types()


def _type_ok(name: str, dtype: pa.DataType) -> bool:
    allowed = _ALLOWED_RAW_TYPES.get(name)
    if allowed is None or dtype in allowed:
        return True
    if pa.types.is_null(dtype):  # a column TLC left entirely empty (green ehail_fee, 2021-2022)
        return True
    if pa.types.is_timestamp(dtype):
        return all(pa.types.is_timestamp(t) for t in allowed)
    if pa.types.is_dictionary(dtype):
        return _type_ok(name, dtype.value_type)
    if pa.types.is_binary(dtype):  # flags some writers store as bytes; the normaliser decodes them
        return any(pa.types.is_string(t) or pa.types.is_large_string(t) for t in allowed)
    return False


@dataclass
class RawRead:
    """What reading a raw file found (step 1 and 2)."""

    rows: int = 0
    taxi_type: str | None = None
    file_problem: str = ""
    missing_columns: tuple[str, ...] = ()
    mistyped_columns: tuple[str, ...] = ()
    unexpected_columns: tuple[str, ...] = ()
    schema_problem: str = ""
    trips: pa.Table | None = None  # normalised, when the file could be read and normalised


def read_raw(data: bytes, expected: tlc.TaxiType | Sequence[tlc.TaxiType]) -> RawRead:
    """Parse, inspect and normalise a raw file's bytes; never raises for bad data.

    ``expected`` is the taxi type the file must hold, or several it may hold.
    """
    accepted = (expected,) if isinstance(expected, str) else tuple(expected)
    if not data:
        return RawRead(file_problem="the file is empty (zero bytes)")
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        head = data[:64].decode("utf-8", errors="replace").splitlines()[0] if data else ""
        looks = "; it looks like text/CSV" if "," in head and not data.startswith(b"PAR1") else ""
        return RawRead(file_problem=f"not a readable parquet file ({exc}){looks}")
    found = RawRead(rows=table.num_rows)
    report = tlc.inspect_schema(table.schema)
    found.taxi_type = report.taxi_type
    found.unexpected_columns = report.unexpected
    found.missing_columns = report.missing
    if report.taxi_type is None:
        found.missing_columns = ("pickup_datetime", "dropoff_datetime", *report.missing[2:])
        found.schema_problem = "no tpep_/lpep_ pickup or dropoff column"
    found.mistyped_columns = tuple(
        f"{f.name} is {f.type} (TLC: {' or '.join(sorted(map(str, _ALLOWED_RAW_TYPES[f.name])))})"
        for f in table.schema
        if not _type_ok(f.name, f.type)
    )
    if report.taxi_type not in accepted or found.missing_columns or found.mistyped_columns:
        return found
    try:
        found.trips = tlc.normalise(table, accepted)
    except tlc.SchemaError as exc:
        found.mistyped_columns = (str(exc),)
    return found


# --- step 3: row rules -------------------------------------------------------------------


def _missing(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Null, or NaN in a float column."""
    return pc.is_null(column, nan_is_null=True)


def _hits(condition: pa.ChunkedArray) -> pa.ChunkedArray:
    """A comparison as a mask: a row whose inputs are null does not break the rule."""
    return pc.fill_null(condition, False)


def _out_of_range(column: pa.ChunkedArray, low: float, high: float) -> pa.ChunkedArray:
    """Below ``low`` or above ``high`` (null and NaN are neither)."""
    return _hits(pc.or_(pc.less(column, low), pc.greater(column, high)))


def _outside(column: pa.ChunkedArray, allowed: Iterable[int]) -> pa.ChunkedArray:
    """Present, but not one of the ``allowed`` codes (an empty code is allowed)."""
    return pc.and_(pc.is_valid(column), pc.invert(pc.is_in(column, pa.array(list(allowed), column.type))))


def _filled(column: pa.ChunkedArray) -> np.ndarray:
    """A column as numpy values, nulls as zeros (no copy for one chunk without nulls)."""
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    if column.null_count:
        column = column.fill_null(pa.scalar(0, column.type))
    return column.to_numpy()


def month_window_us(month: str, tolerance_hours: float) -> tuple[int, int]:
    """[start, end) of the month in microseconds since the epoch, widened by the tolerance."""
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    days = calendar.monthrange(start.year, start.month)[1]
    lo = int(start.timestamp()) * 1_000_000
    slack = int(tolerance_hours * 3600 * 1_000_000)
    return lo - slack, lo + days * 86_400_000_000 + slack


def row_rule_hits(trips: pa.Table, use_case: UseCase, month: str) -> dict[str, pa.ChunkedArray]:
    """One Arrow boolean mask per rule in :data:`ROW_RULES` (True: the row breaks it).

    Arrow computes the masks as bitmaps, an eighth of numpy's booleans, in its own memory
    pool; a value that is null (or NaN) never breaks a rule other than ``missing_key``.
    """
    duplicates = _in_thread(_duplicate_rows, trips)  # numpy and Arrow release the GIL: both cores work
    c = use_case.contract
    col = trips.column
    pickup, dropoff = col("pickup_datetime").cast(pa.int64()), col("dropoff_datetime").cast(pa.int64())
    fare, total = col("fare_amount"), col("total_amount")
    lo, hi = month_window_us(month, c.pickup_tolerance_hours)

    missing = _missing(col(KEY_COLUMNS[0]))
    for name in KEY_COLUMNS[1:]:
        missing = pc.or_(missing, _missing(col(name)))
    priced = pc.invert(pc.or_(_missing(fare), _missing(total)))
    duration, distance = col("duration_min"), col("trip_distance")
    # average mph = 60 * miles / minutes; compared without dividing, so a zero duration is no error
    idle = pc.and_(
        pc.greater(duration, c.idle_trip_minutes),
        pc.less(pc.multiply(distance, 60.0), pc.multiply(duration, c.min_average_mph)),
    )
    flag = col("store_and_fwd_flag")
    masks = {
        "missing_key": missing,
        "pickup_outside_month": _hits(pc.or_(pc.less(pickup, lo), pc.greater_equal(pickup, hi))),
        "dropoff_not_after_pickup": _hits(pc.less_equal(dropoff, pickup)),
        "implausible_duration": _hits(pc.greater(duration, c.max_trip_minutes)),
        "idle_trip": _hits(idle),
        "implausible_distance": _out_of_range(distance, 0.0, c.max_trip_miles),
        "zero_distance": _hits(pc.equal(distance, 0.0)),
        "unknown_zone": pc.or_(
            _out_of_range(col("pu_location_id"), *ZONE_IDS), _out_of_range(col("do_location_id"), *ZONE_IDS)
        ),
        "unknown_payment_type": _outside(col("payment_type"), PAYMENT_TYPES),
        "unknown_rate_code": _outside(col("rate_code_id"), RATE_CODES),
        "unknown_vendor": _outside(col("vendor_id"), VENDORS),
        "negative_fare": pc.and_(priced, _hits(pc.less(fare, 0.0))),
        "fare_inconsistent": _fare_inconsistent(trips, month),
        "invalid_store_and_fwd_flag": pc.and_(pc.is_valid(flag), pc.invert(pc.is_in(flag, pa.array(FLAGS)))),
        "duplicate_row": pa.chunked_array([duplicates.result()], pa.bool_()),
    }
    assert tuple(masks) == RULE_NAMES
    return masks


def _fare_inconsistent(trips: pa.Table, month: str) -> pa.ChunkedArray:
    """Priced rows whose ``total_amount`` no reading of the surcharges explains (see :data:`SURCHARGE_RATES`).

    Most rows add up as itemised; only the others (a few percent of a real month) are tried
    against every reading: each surcharge as itemised, as already inside ``extra`` (itemised
    twice), or, where its column is empty or zero, charged at a rate TLC charged in ``month``.
    """
    col = trips.column
    fare, total = col("fare_amount"), col("total_amount")
    priced = pc.invert(pc.or_(_missing(fare), _missing(total)))
    parts = None  # the sum of the fare's parts, an empty part counting as 0
    for name in _FARE_PARTS:
        part = col(name)
        if part.null_count == len(part) and parts is not None:
            continue  # adding zeros changes no sum
        part = part.fill_null(0.0) if part.null_count else part
        parts = part if parts is None else pc.add(parts, part)
    off = pc.and_(priced, _hits(pc.greater(pc.abs(pc.subtract(total, parts)), FARE_TOLERANCE)))
    rows = np.flatnonzero(off.to_numpy(zero_copy_only=False))
    if not rows.size:
        return off
    index = pa.array(rows)
    residual = (_filled(total.take(index)) - _filled(parts.take(index))).astype(np.float64)
    readings = []  # per surcharge: what it may add to the itemised sum, one array per reading
    for name, periods in SURCHARGE_RATES.items():
        rates = [rate for rate, first, last in periods if first <= month <= last]
        itemised = _filled(col(name).take(index)).astype(np.float64)
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


def _duplicate_rows(trips: pa.Table) -> np.ndarray:
    return _duplicates([_filled(trips.column(name)) for name in DUPLICATE_KEY])


def _duplicates(keys: list[np.ndarray]) -> np.ndarray:
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


def _count(mask: pa.ChunkedArray) -> int:
    return int(pc.sum(mask, min_count=0).as_py())


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


# --- step 4 and the result ---------------------------------------------------------------


@dataclass
class Check:
    """One expectation's outcome."""

    check: str
    severity: str
    success: bool
    observed: Any
    rule: str


@dataclass
class Evaluation:
    """The verdict on one raw month, and what to write."""

    use_case: str
    month: str
    suite: str
    source: dict[str, Any]
    rows: int
    rule_counts: dict[str, int]
    bad_rows: int
    bad_row_share: float
    volume: dict[str, Any]
    breaches: list[str]
    warnings: list[str]
    checks: list[Check]
    statistics: dict[str, Any]
    data_docs_url: str | None
    valid: pa.Table | None = field(default=None, repr=False)
    quarantined: pa.Table | None = field(default=None, repr=False)
    encoded: Future[tuple[snapshots.Encoded, float]] | None = field(default=None, repr=False)
    docs: Future[Any] | None = field(default=None, repr=False)
    """Data Docs for this result, rendered in a thread while the rest of the step runs."""

    def docs_rendered(self) -> None:
        """Wait until the result's Data Docs page exists (its link is in every alert)."""
        if self.docs is not None:
            self.docs.result()

    """``valid`` being encoded as a snapshot, and the seconds that took (``encode_snapshot``)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent in each step."""

    @property
    def success(self) -> bool:
        """The contract holds: nothing breached (rows may still have been quarantined)."""
        return not self.breaches

    @property
    def severity(self) -> str:
        """``breach``, ``quarantine`` (passed, some rows set aside) or ``pass``."""
        if self.breaches:
            return "breach"
        return "quarantine" if self.bad_rows else "pass"

    def contract(self) -> dict[str, Any]:
        """The ``contract`` block of the snapshot manifest (training gates on ``success``)."""
        return {
            "success": self.success,
            "severity": self.severity,
            "suite": self.suite,
            "bad_row_share": self.bad_row_share,
            "quarantined_rows": self.bad_rows,
            "rule_counts": {k: v for k, v in self.rule_counts.items() if v},
            "rule_shares": self.rule_shares(),
            "volume": self.volume,
            "breaches": self.breaches,
            "warnings": self.warnings,
            "statistics": self.statistics,
            "data_docs_url": self.data_docs_url,
        }

    def rule_shares(self) -> dict[str, float]:
        """Share of the month's rows each rule quarantined (rules that hit nothing left out)."""
        return {k: round(n / self.rows, 6) for k, n in self.rule_counts.items() if n and self.rows}

    def summary(self) -> str:
        """A few lines a person reads first: the verdict, the source, the quarantine share per rule."""
        verdict = {
            "pass": "PASSED",
            "quarantine": f"PASSED with {self.bad_rows:,} rows quarantined ({self.bad_row_share:.2%})",
            "breach": "BREACHED: nothing validated",
        }[self.severity]
        lines = [
            f"{self.use_case} {self.month}: contract {self.suite} {verdict}",
            f"  source  {self.source.get('path')} ({self.rows:,} rows, sha256 {self.source['digest'][:12]})",
        ]
        lines += [f"  BREACH  {b}" for b in self.breaches]
        if self.bad_rows:
            lines += [
                f"  rows    {n:>9,}  {n / self.rows:>6.2%}  {name}"
                for name, n in self.rule_counts.items()
                if n
            ]
        lines += [f"  notice  {w}" for w in self.warnings]
        if self.data_docs_url:
            lines.append(f"  docs    {self.data_docs_url}")
        return "\n".join(lines)


class _Clock:
    """Seconds per step, for logs and the benchmark."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.laps[step] = round(now - self._last, 3)
        self._last = now


def history_row_counts(lake: Lake, use_case: UseCase, month: str, months: int = HISTORY_MONTHS) -> list[int]:
    """Raw row counts of the latest ``months`` validated months before ``month``."""
    earlier = [s for s in snapshots.current_snapshots(lake, use_case.name) if s.month < month][-months:]
    return [int((s.manifest.get("source") or {}).get("rows", s.rows)) for s in earlier]


def volume_bounds(use_case: UseCase, history: Sequence[int]) -> dict[str, Any]:
    """The allowed row count from the history's median (no history: unchecked)."""
    if not history:
        return {"checked": False, "history_months": 0, "median_rows": None, "min_rows": 0, "max_rows": None}
    median = float(statistics.median(history))
    low, high = use_case.contract.volume_band
    return {
        "checked": True,
        "history_months": len(history),
        "median_rows": median,
        "min_rows": int(np.ceil(low * median)),
        "max_rows": int(np.floor(high * median)),
    }


@dataclass(frozen=True)
class RawFile:
    """One raw file of a month: where it came from, its bytes, the taxi types it may hold."""

    path: str
    data: bytes = field(repr=False)
    taxi_types: tuple[str, ...]


def evaluate(
    data: bytes,
    use_case: UseCase,
    month: str,
    *,
    source_path: str,
    history: Sequence[int] = (),
    root: Path | None = None,
    encode_snapshot: bool = False,
) -> Evaluation:
    """Check one raw file's bytes against the use case's contract (nothing is written).

    The file may hold any taxi type the use case lists; see :func:`evaluate_files`.
    """
    raw = RawFile(source_path, data, use_case.data.taxi_types)
    return evaluate_files([raw], use_case, month, history=history, root=root, encode_snapshot=encode_snapshot)


def evaluate_files(
    files: Sequence[RawFile],
    use_case: UseCase,
    month: str,
    *,
    history: Sequence[int] = (),
    root: Path | None = None,
    encode_snapshot: bool = False,
) -> Evaluation:
    """Check a month's raw files (one per taxi type) against the use case's contract.

    Each file is read and normalised on its own; the month is their trips together (the
    ``taxi_type`` column says which file a row came from), judged as one: row rules, the
    volume against history and the bad-row share cover all of them, and a problem in any
    file breaches the month. Nothing is written.

    With ``encode_snapshot``, the rows that would be validated are encoded as a snapshot
    (:func:`mlplatform.adapters.snapshots.encode`, in memory) by a thread while the checkpoint runs;
    :func:`publish` stores that snapshot only if the contract holds.
    """
    if not files:
        raise ValueError(f"no raw file to validate for {use_case.name} {month}")
    clock = _Clock()
    hashing = [_in_thread(_sha256, f.data) for f in files]  # alongside the parse: hashlib releases the GIL
    reads = [read_raw(f.data, f.taxi_types) for f in files]
    digests = [h.result() for h in hashing]
    clock.lap("read_and_normalise")

    def named(f: RawFile) -> str:  # a problem names its file when there are several
        return f"{f.path.rsplit('/', 1)[-1]}: " if len(files) > 1 else ""

    readable = [(f, r) for f, r in zip(files, reads, strict=True) if r.trips is not None]
    trips = pa.concat_tables([r.trips for _, r in readable]) if readable else None
    starts = np.cumsum([0] + [r.trips.num_rows for _, r in readable])  # each file's first row
    counts = dict.fromkeys(RULE_NAMES, 0)
    all_null = [
        f"{named(f)}{c}"
        for f, r in readable
        if r.trips.num_rows
        for c in KEY_COLUMNS
        if r.trips.column(c).null_count == r.trips.num_rows
    ]
    valid = quarantined = encoding = None
    bad_rows = 0
    if trips is not None:
        hits = row_rule_hits(trips, use_case, month)
        counts = {name: _count(hit) for name, hit in hits.items()}
        bad = functools.reduce(pc.or_, hits.values())
        bad_rows = _count(bad)
        valid = trips.filter(pc.invert(bad)) if bad_rows else trips
        if encode_snapshot:
            encoding = _in_thread(_timed(snapshots.encode), valid)
        if bad_rows:
            masks = {name: hit.to_numpy() for name, hit in hits.items()}
            quarantined = quarantine_table(trips, masks, bad.to_numpy(), starts)
    clock.lap("row_rules")
    share = bad_rows / trips.num_rows if trips is not None and trips.num_rows else 0.0
    volume = volume_bounds(use_case, history)
    rows = sum(r.rows for r in reads)
    unlisted = [
        f"{named(f)}{r.taxi_type} trips but {use_case.name} expects {' or '.join(f.taxi_types)}"
        for f, r in zip(files, reads, strict=True)
        if r.taxi_type is not None and r.taxi_type not in f.taxi_types
    ]
    profile = {
        "file_problem": "; ".join(
            f"{named(f)}{r.file_problem}" for f, r in zip(files, reads, strict=True) if r.file_problem
        )
        or NONE,
        "unlisted_taxi_type": "; ".join(unlisted) or NONE,
        **{
            f"{kind}_columns": "; ".join(
                f"{named(f)}{', '.join(getattr(r, f'{kind}_columns'))}"
                for f, r in zip(files, reads, strict=True)
                if getattr(r, f"{kind}_columns")
            )
            or NONE
            for kind in ("missing", "mistyped", "unexpected")
        },
        "all_null_columns": ", ".join(all_null) or NONE,
        "row_count": rows,
        "bad_row_share": share,
        **{f"rows_{name}": n for name, n in counts.items()},
    }
    if len(files) == 1:
        source = {"path": files[0].path, "digest": digests[0], "bytes": len(files[0].data), "rows": rows}
    else:
        listing = [
            {"path": f.path, "digest": d, "bytes": len(f.data), "rows": r.rows, "taxi_type": r.taxi_type}
            for f, r, d in zip(files, reads, digests, strict=True)
        ]
        source = {
            "path": _common_folder([f.path for f in files]),
            "digest": _sha256("".join(f"{x['path']}\t{x['digest']}\n" for x in listing).encode()),
            "bytes": sum(x["bytes"] for x in listing),
            "rows": rows,
            "files": listing,
        }
    checks, stats, docs_url, docs = _run_checkpoint(
        use_case, month, source["digest"], profile, volume, root or gx_root()
    )
    clock.lap("checkpoint")
    evaluation = Evaluation(
        use_case=use_case.name,
        month=month,
        suite=use_case.contract.suite,
        source=source,
        rows=rows,
        rule_counts=counts,
        bad_rows=bad_rows,
        bad_row_share=share,
        volume=volume,
        breaches=[],
        warnings=[],
        checks=checks,
        statistics=stats,
        data_docs_url=docs_url,
        valid=valid,
        quarantined=quarantined,
        encoded=encoding,
        docs=docs,
        timings=clock.laps,
    )
    evaluation.breaches, evaluation.warnings = _explain(evaluation, use_case, profile)
    return evaluation


def _common_folder(paths: Sequence[str]) -> str:
    folders = {p.rsplit("/", 1)[0] if "/" in p else "." for p in paths}
    return folders.pop() if len(folders) == 1 else ", ".join(paths)


def _run_checkpoint(
    use_case: UseCase, month: str, digest: str, profile: dict[str, Any], volume: dict[str, Any], root: Path
) -> tuple[list[Check], dict[str, Any], str | None, Future[Any]]:
    import pandas as pd
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.exceptions import DataContextError

    context = open_context(root)
    try:
        checkpoint = context.checkpoints.get(checkpoint_name(use_case))
    except DataContextError:
        raise FileNotFoundError(
            f"no checkpoint {checkpoint_name(use_case)} in {root}: the use case is new or its "
            "contract changed; run `python -m mlplatform.stages.contracts sync` and commit "
            "great_expectations/"
        ) from None
    result = checkpoint.run(
        batch_parameters={"dataframe": pd.DataFrame([profile])},
        expectation_parameters={"volume_min_rows": volume["min_rows"], "volume_max_rows": volume["max_rows"]},
        run_id=RunIdentifier(run_name=f"{use_case.name}-{month}-{digest[:12]}", run_time=datetime.now(UTC)),
    )
    identifier, validation = next(iter(result.run_results.items()))
    checks = []
    for r in validation.results:
        meta = r.expectation_config.meta or {}
        observed = r.result.get("observed_value", r.result.get("partial_unexpected_list"))
        if r.exception_info and r.exception_info.get("raised_exception"):
            observed = f"error: {r.exception_info.get('exception_message')}"
        checks.append(
            Check(
                check=meta.get("check", r.expectation_config.type),
                severity=meta.get("severity", "breach"),
                success=bool(r.success),
                observed=_plain(observed),
                rule=meta.get("rule", ""),
            )
        )
    docs = _in_thread(
        lambda: context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=[identifier])
    )
    urls = context.get_docs_sites_urls(
        resource_identifier=identifier, site_names=[DATA_DOCS_SITE], only_if_exists=False
    )
    docs_url = next((u["site_url"] for u in urls if u.get("site_url")), None)
    return checks, _plain(dict(validation.statistics)), docs_url, docs


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _timed(fn: Callable[..., Any]) -> Callable[..., tuple[Any, float]]:
    """``fn`` returning its result and the seconds it took."""

    @functools.wraps(fn)
    def timed(*args: Any) -> tuple[Any, float]:
        started = time.perf_counter()
        return fn(*args), time.perf_counter() - started

    return timed


def _in_thread(fn: Callable[..., Any], *args: Any) -> Future:
    """Start ``fn(*args)`` in a thread of its own and return its future at once.

    Worth it for work done in Arrow, numpy or hashlib, which release the GIL: the thread
    gets the second core while Python carries on.
    """
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlplatform-contracts")
    try:
        return executor.submit(fn, *args)
    finally:
        executor.shutdown(wait=False)


def _plain(value: Any) -> Any:
    """JSON-ready copy (numpy scalars and the like become plain numbers and strings)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def _explain(ev: Evaluation, use_case: UseCase, profile: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Human sentences for the failed checks: what broke and what to do about it."""
    failed = {c.check for c in ev.checks if not c.success}
    breaches: list[str] = []
    unreadable = profile["file_problem"] != NONE
    if "file_problem" in failed:
        breaches.append(f"unreadable file: {profile['file_problem']}; re-deliver the month as TLC parquet")
    if "taxi_type" in failed:
        breaches.append(
            f"wrong taxi type: the file holds {profile['unlisted_taxi_type']}; land each taxi type's "
            f"file under its own name (mlplatform ingest FILE --use-case {use_case.name} --month {ev.month})"
        )
    if "missing_columns" in failed:
        renamed = (
            f" (unexpected columns: {profile['unexpected_columns']})"
            if profile["unexpected_columns"] != NONE
            else ""
        )
        breaches.append(f"schema broken: required column(s) missing: {profile['missing_columns']}{renamed}")
    if "mistyped_columns" in failed:
        breaches.append(f"schema broken: column type(s) TLC never used: {profile['mistyped_columns']}")
    if "all_null_columns" in failed:
        breaches.append(f"key column(s) entirely empty: {profile['all_null_columns']}")
    if "row_count" in failed and not unreadable:
        breaches.append("the file has no rows")
    elif "volume" in failed and not unreadable:
        v = ev.volume
        breaches.append(
            f"volume far off history: {ev.rows:,} rows, allowed {v['min_rows']:,}..{v['max_rows']:,} "
            f"({use_case.contract.volume_band[0]}x..{use_case.contract.volume_band[1]}x the median "
            f"{v['median_rows']:,.0f} of the previous {v['history_months']} months)"
        )
    if "bad_row_share" in failed:
        top = sorted(((n, k) for k, n in ev.rule_counts.items() if n), reverse=True)[:3]
        breaches.append(
            f"too many bad rows: {ev.bad_rows:,} of {ev.rows:,} ({ev.bad_row_share:.1%}) break row rules, "
            f"above the {use_case.contract.max_bad_row_share:.1%} allowed; most: "
            + ", ".join(f"{k} {n:,} ({n / ev.rows:.1%})" for n, k in top)
        )
    for c in ev.checks:  # an expectation that could not be evaluated is a breach too
        if isinstance(c.observed, str) and c.observed.startswith("error:") and c.severity == "breach":
            breaches.append(f"contract check {c.check} could not run: {c.observed}")
    warnings = []
    if "unexpected_columns" in failed:
        warnings.append(f"unexpected column(s) dropped: {profile['unexpected_columns']}")
    return breaches, warnings


# --- writing the results -----------------------------------------------------------------


def quarantine_folder(use_case: str, month: str, raw_digest: str) -> str:
    """Where a raw file's quarantined rows and breach record go (one folder per delivery)."""
    return f"quarantine/{use_case}/month={month}/{raw_digest}"


def publish(lake: Lake, evaluation: Evaluation) -> dict[str, Any]:
    """Write what the verdict calls for; returns the outcome (small, JSON-ready: URIs, not data).

    - breach: a breach record ``breach.json`` in the quarantine folder; nothing else;
    - pass: the validated snapshot (a no-op when the identical snapshot is current), and the
      quarantined rows ``rows.parquet`` with a ``summary.json`` when some rows broke rules.
    """
    ev = evaluation
    clock = _Clock()
    folder = quarantine_folder(ev.use_case, ev.month, ev.source["digest"])
    outcome: dict[str, Any] = {
        "use_case": ev.use_case,
        "month": ev.month,
        "severity": ev.severity,
        "success": ev.success,
        "summary": ev.summary(),
        "breaches": ev.breaches,
        "warnings": ev.warnings,
        "rows": ev.rows,
        "quarantined_rows": ev.bad_rows,
        "bad_row_share": ev.bad_row_share,
        "rule_counts": {k: v for k, v in ev.rule_counts.items() if v},
        "source": {**ev.source, "uri": lake.uri(ev.source["path"])},
        "suite": ev.suite,
        "data_docs_url": ev.data_docs_url,
        "snapshot": None,
        "quarantine": None,
        "breach_record": None,
        "timings": ev.timings,
    }
    if not ev.success:
        record = {
            "use_case": ev.use_case,
            "month": ev.month,
            "severity": "breach",
            "what_broke": ev.breaches,
            "source": outcome["source"],
            "recorded_at": datetime.now(UTC).isoformat(),
            "contract": ev.contract(),
            "checks": [c.__dict__ for c in ev.checks if not c.success],
            "raw_file_kept": True,
        }
        outcome["breach_record"] = lake.write_json(f"{folder}/breach.json", record)
        clock.lap("write")
        ev.docs_rendered()
        clock.lap("data_docs")
        outcome["timings"] = {**ev.timings, **clock.laps}
        return outcome
    if ev.quarantined is not None:
        rows_uri = lake.write_parquet(f"{folder}/rows.parquet", ev.quarantined, compression="zstd")
        lake.write_json(
            f"{folder}/summary.json",
            {
                "use_case": ev.use_case,
                "month": ev.month,
                "source": outcome["source"],
                "quarantined_rows": ev.bad_rows,
                "rule_counts": outcome["rule_counts"],
                "data_docs_url": ev.data_docs_url,
            },
        )
        outcome["quarantine"] = {"rows_uri": rows_uri, "rows": ev.bad_rows}
    manifest = {
        "source": {"path": ev.source["path"], "digest": ev.source["digest"], "rows": ev.rows},
        "contract": ev.contract(),
    }
    rows: pa.Table | snapshots.Encoded = ev.valid
    encoding: dict[str, float] = {}
    if ev.encoded is not None:
        rows, seconds = ev.encoded.result()
        encoding["snapshot_encode"] = round(seconds, 3)  # in a thread, alongside the checkpoint
    snapshot, created = snapshots.write_snapshot(lake, ev.use_case, ev.month, rows, manifest)
    outcome["snapshot"] = {
        "uri": lake.uri(snapshot.data_path),
        "digest": snapshot.digest,
        "rows": snapshot.rows,
        "created": created,
    }
    clock.lap("write")
    ev.docs_rendered()
    clock.lap("data_docs")
    outcome["timings"] = {**ev.timings, **encoding, **clock.laps}
    return outcome


def raw_paths(use_case: UseCase, month: str) -> dict[str, str]:
    """Lake path of the month's raw file for each taxi type the use case lists."""
    return {t: Lake.raw_path(use_case.data.dataset, t, month) for t in use_case.data.taxi_types}


def validate_month(lake: Lake, use_case: UseCase, month: str, root: Path | None = None) -> dict[str, Any]:
    """Validate the month's raw files in the lake and write the results (see :func:`publish`).

    The month is every listed taxi type whose raw file has landed (one is enough). Raises
    :class:`RawFileMissing` when none has.
    """
    paths = raw_paths(use_case, month)
    started = time.perf_counter()
    present = {t: p for t, p in paths.items() if lake.exists(p)}
    if not present:
        raise RawFileMissing(
            f"no raw file for {use_case.name} {month} at {' or '.join(lake.uri(p) for p in paths.values())}: "
            f"land one first (mlplatform ingest FILE --use-case {use_case.name} --month {month})"
        )
    files = [RawFile(p, lake.read_bytes(p), (t,)) for t, p in present.items()]
    history = history_row_counts(lake, use_case, month)
    fetched = round(time.perf_counter() - started, 3)
    evaluation = evaluate_files(files, use_case, month, history=history, root=root, encode_snapshot=True)
    outcome = publish(lake, evaluation)
    outcome["timings"] = {"fetch": fetched, **outcome["timings"]}
    return outcome


def alert_for(outcome: dict[str, Any], log_url: str | None = None):  # -> alerts.Alert | None
    """The Slack alert an outcome calls for: breach, quarantine summary, notice; none on a clean pass."""
    from mlplatform.adapters.alerts import Alert

    name, month, severity = outcome["use_case"], outcome["month"], outcome["severity"]
    source = outcome["source"]
    fields = {
        "Use case": name,
        "Month": month,
        "Suite": outcome["suite"],
        "Rows": f"{outcome['rows']:,}",
        "Quarantined": f"{outcome['quarantined_rows']:,} ({outcome['bad_row_share']:.2%})",
        "Raw file": f"`{source['path']}` (sha256 {source['digest'][:12]})",
    }
    links = {"Data Docs": outcome.get("data_docs_url"), "Task log": log_url}
    if severity == "breach":
        return Alert(
            title=f"{name} {month}: data contract breached, nothing validated",
            severity="breach",
            lines=(
                *(f"• {b}" for b in outcome["breaches"]),
                "The raw file is kept as delivered; nothing was written to validated/. "
                f"Breach record: `{outcome['breach_record']}`",
            ),
            fields=fields,
            links=links,
        )
    if severity == "quarantine":
        counts = outcome["rule_counts"]
        return Alert(
            title=f"{name} {month}: {outcome['quarantined_rows']:,} rows quarantined, month validated",
            severity="warning",
            lines=(
                *(f"• {rule}: {n:,} rows ({n / outcome['rows']:.2%})" for rule, n in counts.items()),
                *(f"• notice: {w}" for w in outcome["warnings"]),
                f"Quarantined rows: `{outcome['quarantine']['rows_uri']}`",
            ),
            fields=fields,
            links={**links, "Snapshot": (outcome.get("snapshot") or {}).get("uri")},
        )
    if outcome["warnings"]:
        return Alert(
            title=f"{name} {month}: month validated with notices",
            severity="info",
            lines=tuple(f"• {w}" for w in outcome["warnings"]),
            fields=fields,
            links=links,
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mlplatform.stages.contracts sync``: regenerate the committed suites from the specs."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mlplatform.stages.contracts", description=main.__doc__)
    parser.add_argument("command", choices=["sync"])
    parser.add_argument(
        "--root", type=Path, help="context folder (default: MLPLATFORM_GX_ROOT or the repo's)"
    )
    args = parser.parse_args(argv)
    root = sync_context(args.root)
    print(f"synced the Great Expectations context at {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
