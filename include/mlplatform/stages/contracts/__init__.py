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

:func:`validate_month` runs all of it for a month in the lake and writes the results
(:func:`publish`): the validated snapshot, quarantined rows, or the breach record, and
returns them as a :class:`ContractOutcome`. The raw file is only ever read. Encoding the
snapshot takes longer than the checkpoint, so a thread encodes the rows that would be
validated, in memory, while the checkpoint runs; the snapshot is stored only if the
contract holds, and dropped on a breach.

The package, one job a module (the public names are re-exported here, so callers write
``contracts.validate_month(...)``):

============== ===========================================================================
``context``    where the GX file data context lives, the names of its objects
``suite``      the contract as a GX suite; :func:`sync_context` writes the context
``rules``      the row rules' table (:data:`ROW_RULES`), TLC's domains, the calibrations
``arrays``     Arrow column helpers the rules share
``money``      the money columns against TLC's dated fare table (:mod:`mlplatform.core.fares`):
               ``fare_inconsistent`` and its fare readings, amounts in cents, empty surcharges
``masks``      the row rules computed over a month's trips; the quarantine table
``duplicates`` the duplicate detector behind ``duplicate_row``
``raw``        reading a raw file: parse, schema check, normalise (steps 1 and 2)
``volume``     the volume history and the allowed row count
``profile``    the month's contract profile, the one row the checkpoint validates
``checkpoint`` the checkpoint run (step 4) and the :class:`Evaluation` record
``explain``    English for the failed checks
``verdict``    the four steps over a month's raw files (:func:`evaluate_files`), nothing written
``results``    the verdict written to the lake (:func:`publish`)
``outcome``    :class:`ContractOutcome`, what the stage hands the alert, the DAG and XCom
``validate``   the validate stage: fetch from the lake, evaluate, publish
``trend``      each rule's quarantine share month by month (:class:`RuleTrend`), its jumps
``alert``      the Slack alert an outcome calls for (a breach or a jump; a usual month: none)
``threads``    work run in threads alongside the step, and step timings
``__main__``   ``python -m mlplatform.stages.contracts sync``
============== ===========================================================================

(No module is named after a function the package re-exports, so ``contracts.publish`` is
always the function and ``mlplatform.stages.contracts.results`` always the module.)
"""

from __future__ import annotations

from mlplatform.stages.contracts.alert import alert_for
from mlplatform.stages.contracts.checkpoint import Check, Evaluation
from mlplatform.stages.contracts.context import (
    BATCH_DEFINITION,
    DATA_DOCS_SITE,
    DATASOURCE,
    checkpoint_name,
    data_docs_index,
    gx_root,
    open_context,
    validation_definition_name,
)
from mlplatform.stages.contracts.masks import month_window_us, quarantine_table, row_rule_hits, row_rule_masks
from mlplatform.stages.contracts.outcome import ContractOutcome, QuarantineWritten, SnapshotWritten
from mlplatform.stages.contracts.profile import NONE
from mlplatform.stages.contracts.raw import RawFile, RawFileMissing, RawRead, read_raw
from mlplatform.stages.contracts.results import publish, quarantine_folder
from mlplatform.stages.contracts.rules import (
    BAD_ROW_SHARE_CALIBRATION,
    DUPLICATE_KEY,
    FARE_PARTS,
    FARE_READINGS,
    FARE_TOLERANCE,
    FLAGS,
    KEY_COLUMNS,
    PAYMENT_TYPES,
    RATE_CODES,
    READING_NAMES,
    ROW_RULES,
    RULE_NAMES,
    SURCHARGES,
    VENDORS,
    ZONE_IDS,
    FareReading,
    RowRule,
)
from mlplatform.stages.contracts.suite import build_suite, sync_context
from mlplatform.stages.contracts.trend import (
    RuleTrend,
    folder_trend,
    history_rule_shares,
    lake_trend,
    rule_jumps,
)
from mlplatform.stages.contracts.validate import raw_paths, validate_month
from mlplatform.stages.contracts.verdict import evaluate, evaluate_files
from mlplatform.stages.contracts.volume import HISTORY_MONTHS, history_row_counts, volume_bounds

__all__ = [
    "BAD_ROW_SHARE_CALIBRATION",
    "BATCH_DEFINITION",
    "DATASOURCE",
    "DATA_DOCS_SITE",
    "DUPLICATE_KEY",
    "FARE_PARTS",
    "FARE_READINGS",
    "FARE_TOLERANCE",
    "FLAGS",
    "HISTORY_MONTHS",
    "KEY_COLUMNS",
    "NONE",
    "PAYMENT_TYPES",
    "RATE_CODES",
    "READING_NAMES",
    "ROW_RULES",
    "RULE_NAMES",
    "SURCHARGES",
    "VENDORS",
    "ZONE_IDS",
    "Check",
    "ContractOutcome",
    "Evaluation",
    "FareReading",
    "QuarantineWritten",
    "RawFile",
    "RawFileMissing",
    "RawRead",
    "RowRule",
    "RuleTrend",
    "SnapshotWritten",
    "alert_for",
    "build_suite",
    "checkpoint_name",
    "data_docs_index",
    "evaluate",
    "evaluate_files",
    "folder_trend",
    "gx_root",
    "history_row_counts",
    "history_rule_shares",
    "lake_trend",
    "month_window_us",
    "open_context",
    "publish",
    "quarantine_folder",
    "quarantine_table",
    "raw_paths",
    "read_raw",
    "row_rule_hits",
    "row_rule_masks",
    "rule_jumps",
    "sync_context",
    "validate_month",
    "validation_definition_name",
    "volume_bounds",
]
