"""Synthetic NYC taxi months in the exact TLC trip-record format, calibrated on real months.

The generator stands in for the TLC download, which is out of reach at run time. Its
files have TLC's column names and the Arrow types of the month's publication period
(yellow or green), and the shape of real months. Green months follow tables derived from
real green months (``calibration/green.json`` and ``calibration/green_zone_pairs.parquet``,
made by ``bench/calibrate_generator.py``): the zone and zone-pair mix of metered records
and of records with blank codes, road distances between zones, travel speeds by pickup
borough, weekday/weekend and hour, zone slowness, hourly volume, the shares of zero-distance
and no-trip records, and the code mixes and null patterns. Yellow months use the same
geography and speeds with a pickup mix from published figures (``calibration/yellow_prior.json``).

By default a month holds TLC's own pathologies at the shares of real months of the same
fare regime (``defects``, ``calibration/pathologies.json``, which names the months
behind each share): zero distances, refunds and voids negative in every money part, meters
left running, trips begun the month before, and the green vendors' itemisation quirks. The
contract quarantines each by its rule. ``generate_month(..., clean=True)`` (``mlplatform
generate --clean``) leaves them out, for noise-floor studies. Money is itemised by the fare
table in force at each pickup (:mod:`mlplatform.core.fares`).

Trip duration is a known function of the observed features times log-normal noise, so
the irreducible error of any file is known: :func:`expected_duration_minutes` is the best
possible prediction and :attr:`GeneratedMonth.noise_floor_rmse` its RMSE (over every record
but the meters left running, which carry no travel time). Records with a zero distance (an
odometer gap) take the duration of the zone pair's typical distance, or, for a known share
of them, are no-trips lasting under a minute; the expectation accounts for both. Knobs in
:class:`Drift` shift the data the way production data drifts; :data:`CORRUPTIONS` break it
the way bad deliveries do. The same seed always gives the same file.

Modules: ``world`` (the calibration tables, drift and the duration function), ``trips``
(a month's trips, their codes and money, the file layout, and its shape), ``defects``
(TLC's own pathologies by fare regime, and bad deliveries).
"""

from mlplatform.core.generator.defects import CORRUPTIONS, FILE_CORRUPTIONS, corrupt, corrupted_bytes
from mlplatform.core.generator.trips import (
    GeneratedMonth,
    MonthShape,
    generate_month,
    read_generator_metadata,
    shape_summary,
)
from mlplatform.core.generator.world import (
    Drift,
    borough_codes,
    borough_layout,
    expected_duration_minutes,
    fixed_minutes,
    moving_minutes,
    world,
)

__all__ = [
    "CORRUPTIONS",
    "FILE_CORRUPTIONS",
    "Drift",
    "GeneratedMonth",
    "MonthShape",
    "borough_codes",
    "borough_layout",
    "corrupt",
    "corrupted_bytes",
    "expected_duration_minutes",
    "fixed_minutes",
    "generate_month",
    "moving_minutes",
    "read_generator_metadata",
    "shape_summary",
    "world",
]
