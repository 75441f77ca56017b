"""Data contracts: what a raw TLC month must satisfy before training and scoring may read it.

A use case's contract is the Great Expectations suite named by ``contract.suite`` in its
spec, kept in the file data context under ``great_expectations/`` (see its README). The
suite is generated from the spec and committed; ``mlplatform contracts sync``
(:func:`sync_context`) rewrites it after a spec change, and a test checks the two agree.

A month is the raw file of every taxi type the use case lists (``data.taxi_types``) that
has landed. Validating it (:func:`evaluate_files`; :func:`evaluate` for one file) takes
four steps:

1. **Read**: parse each raw parquet file and compare its schema with the TLC format:
   readable, a listed taxi type, every required column, types TLC has published (``null``
   for a column TLC left entirely empty).
2. **Normalise** each with :func:`mlplatform.core.tlc.normalise`; the month is their rows
   together, the ``taxi_type`` column keeping which file each came from.
3. **Row rules**: each rule in :data:`RULE_NAMES` is computed once, vectorised, as a mask
   over all rows (nulls in keys, pickup outside the month, dropoff not after pickup,
   implausible duration, idle trips, implausible or zero distance, unknown zones, payment
   types, rate codes or vendors, negative fares, totals that do not add up under the fare
   schedule in force at each trip's pickup, bad flags, duplicates). Each rule's
   ``calibration`` names the TLC publication that sets it and the real months' figures.
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

:func:`validate_month` runs all of it for a month in the lake, writes the results (the
validated snapshot, quarantined rows, or the breach record) and returns them as a
:class:`ContractOutcome`. The raw file is only ever read. Encoding the snapshot takes
longer than the checkpoint, so a thread encodes the rows that would be validated, in
memory, while the checkpoint runs; the snapshot is stored only if the contract holds, and
dropped on a breach.

The package, one concept a module (the names its callers use are re-exported here):

============== ===========================================================================
``rules``      the row rules' table and TLC's domains, the rules computed over a month's
               trips (money against TLC's dated fare table, duplicates), the quarantine
               table, the volume bounds
``raw``        reading a raw file: parse, schema check, normalise (steps 1 and 2)
``suite``      the contract in GX: the file data context, the month's contract profile,
               the suite built from the spec, the checkpoint run (step 4)
``evaluation`` the four steps over a month's raw files (:class:`Evaluation`), and English
               for what failed; nothing written
``outcome``    the validate stage: the verdict written to the lake, :class:`ContractOutcome`
               (what the stage hands the alert, the DAG and XCom) and its Slack alert
``trend``      each rule's quarantine share month by month (:class:`RuleTrend`), its jumps
============== ===========================================================================
"""

from __future__ import annotations

from mlplatform.stages.contracts.evaluation import evaluate, evaluate_files
from mlplatform.stages.contracts.outcome import ContractOutcome, alert_for, validate_month
from mlplatform.stages.contracts.raw import RawFile, RawFileMissing
from mlplatform.stages.contracts.rules import (
    DUPLICATE_KEY,
    FARE_TOLERANCE,
    FLAGS,
    KEY_COLUMNS,
    PAYMENT_TYPES,
    RATE_CODES,
    RULE_NAMES,
    VENDORS,
    ZONE_IDS,
    history_row_counts,
    month_window_us,
    row_rule_masks,
)
from mlplatform.stages.contracts.suite import data_docs_index, sync_context
from mlplatform.stages.contracts.trend import (
    RuleTrend,
    folder_trend,
    history_rule_shares,
    lake_trend,
    rule_jumps,
)

__all__ = [
    "DUPLICATE_KEY",
    "FARE_TOLERANCE",
    "FLAGS",
    "KEY_COLUMNS",
    "PAYMENT_TYPES",
    "RATE_CODES",
    "RULE_NAMES",
    "VENDORS",
    "ZONE_IDS",
    "ContractOutcome",
    "RawFile",
    "RawFileMissing",
    "RuleTrend",
    "alert_for",
    "data_docs_index",
    "evaluate",
    "evaluate_files",
    "folder_trend",
    "history_row_counts",
    "history_rule_shares",
    "lake_trend",
    "month_window_us",
    "row_rule_masks",
    "rule_jumps",
    "sync_context",
    "validate_month",
]
