"""The row rules: what every trip of a month must satisfy, why, and the TLC figures behind each.

This is the table the contract is made of. :mod:`mlplatform.stages.contracts.masks`
computes each rule over a month's rows; :mod:`mlplatform.stages.contracts.suite` turns
each into an expectation on the month's profile; the domains below are the TLC data
dictionary's. Money follows TLC's dated fare table (:mod:`mlplatform.core.fares`): each
surcharge is owed at the rate in force at the trip's pickup, and the ways TLC's files are
known to itemise it otherwise are the :data:`FARE_READINGS` (judged in
:mod:`mlplatform.stages.contracts.money`).
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
SURCHARGES = ("improvement_surcharge", "congestion_surcharge", "airport_fee", "cbd_congestion_fee")
"""Per-trip surcharges TLC itemises in their own columns, each named as its rate in
:class:`mlplatform.core.fares.FareSchedule`: the rate a trip owes is the one in force at its
pickup (:func:`mlplatform.core.fares.schedule_codes`)."""


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
FARE_PARTS = (
    "fare_amount",
    "extra",
    "mta_tax",
    "tip_amount",
    "tolls_amount",
    "ehail_fee",
    *SURCHARGES,
)
"""The columns whose sum ``total_amount`` must equal (``fare_inconsistent``)."""


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
