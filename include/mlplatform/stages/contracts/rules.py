"""The row rules: what every trip of a month must satisfy, why, and the TLC figures behind each.

This is the table the contract is made of. :mod:`mlplatform.stages.contracts.masks`
computes each rule over a month's rows; :mod:`mlplatform.stages.contracts.suite` turns
each into an expectation on the month's profile; the domains below are the TLC data
dictionary's.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlplatform.core import tlc

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
FARE_PARTS = (
    "fare_amount",
    "extra",
    "mta_tax",
    "tip_amount",
    "tolls_amount",
    "improvement_surcharge",
    "ehail_fee",
    *SURCHARGE_RATES,
)
"""The columns whose sum ``total_amount`` must equal (``fare_inconsistent``)."""


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
