"""The validate stage: a month's raw files fetched from the lake, judged, and the verdict written.

:func:`validate_month` is what the validate DAG's ``check_contract`` task runs: the raw
file of every taxi type the use case lists that has landed, the volume history, then
:func:`~mlplatform.stages.contracts.verdict.evaluate_files` and
:func:`~mlplatform.stages.contracts.results.publish`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core.spec import UseCase
from mlplatform.core.tlc import TaxiType
from mlplatform.stages.contracts.outcome import ContractOutcome
from mlplatform.stages.contracts.raw import RawFile, RawFileMissing
from mlplatform.stages.contracts.results import publish, quarantine_month_folder
from mlplatform.stages.contracts.trend import history_rule_shares
from mlplatform.stages.contracts.verdict import evaluate_files
from mlplatform.stages.contracts.volume import history_row_counts


def raw_paths(use_case: UseCase, month: str) -> dict[TaxiType, str]:
    """Lake path of the month's raw file for each taxi type the use case lists."""
    return {t: Lake.raw_path(use_case.data.dataset, t, month) for t in use_case.data.taxi_types}


def validate_month(lake: Lake, use_case: UseCase, month: str, root: Path | None = None) -> ContractOutcome:
    """Validate the month's raw files in the lake and write the results (see :func:`.results.publish`).

    The month is every listed taxi type whose raw file has landed (one is enough). Raises
    :class:`RawFileMissing` when none has.
    """
    # A run killed mid-write leaves hidden temp files; the next run of the month sweeps them.
    lake.sweep(snapshots.month_folder(use_case.name, month))
    lake.sweep(quarantine_month_folder(use_case.name, month))
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
    rule_history = history_rule_shares(lake, use_case, month)
    fetched = round(time.perf_counter() - started, 3)
    evaluation = evaluate_files(
        files, use_case, month, history=history, root=root, encode_snapshot=True, rule_history=rule_history
    )
    outcome = publish(lake, evaluation)
    return dataclasses.replace(outcome, timings={"fetch": fetched, **outcome.timings})
