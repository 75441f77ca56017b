"""Publishing: a complete predictions file becomes the month's current one (``CURRENT.json``).

``CURRENT.json`` moves only once the new file is complete and has one row per modelled
snapshot row; superseded outputs stay where they are, addressed by model version and
snapshot digest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from mlplatform.adapters.lake import Lake
from mlplatform.core.records import ScoredOutput

POINTER = "CURRENT.json"


def pointer_path(use_case: str, month: str) -> str:
    """The lake path of the month's ``CURRENT.json``."""
    return f"predictions/{use_case}/month={month}/{POINTER}"


def publish(lake: Lake, output: ScoredOutput | Mapping[str, Any]) -> ScoredOutput:
    """Make a scored output the month's current predictions, after checking it is complete.

    Complete means: the file exists, holds one row per modelled snapshot row, and its rows carry
    the model version and snapshot digest the output claims. Otherwise nothing moves and
    the previous predictions stay current. ``output`` may be the record or its XCom form.
    """
    if not isinstance(output, ScoredOutput):
        output = ScoredOutput.from_dict(output)
    path = output.path
    if not lake.exists(path):
        raise RuntimeError(f"cannot publish {lake.uri(path)}: the file does not exist; re-run the scoring")
    meta = lake.open_parquet(path)
    try:
        rows = meta.metadata.num_rows
        first = meta.read_row_group(0, columns=["model_version", "snapshot_digest"]) if rows else None
    finally:
        meta.close()
    # One prediction per modelled row: every snapshot row, unless the spec filters rows.
    expected = output.expected_rows
    if rows != expected or rows > output.snapshot_rows:
        raise RuntimeError(
            f"cannot publish {lake.uri(path)}: it holds {rows} predictions where {expected} rows of the "
            f"snapshot ({output.snapshot_rows} rows) are modelled; the previous predictions stay "
            "current; re-run the month"
        )
    if first is not None and (
        str(first["model_version"][0].as_py()) != str(output.model.version)
        or first["snapshot_digest"][0].as_py() != output.snapshot_digest
    ):
        raise RuntimeError(f"cannot publish {lake.uri(path)}: its rows name another model or snapshot")
    record = dataclasses.replace(output, rows=rows, published_at=datetime.now(UTC).isoformat())
    lake.write_json(pointer_path(output.use_case, output.month), record.to_dict())
    return record


def current_predictions(lake: Lake, use_case: str, month: str) -> ScoredOutput | None:
    """The record of the month's current predictions, or ``None`` when it has none."""
    pointer = pointer_path(use_case, month)
    return ScoredOutput.from_dict(lake.read_json(pointer)) if lake.exists(pointer) else None


def read_predictions(lake: Lake, use_case: str, month: str, columns: list[str] | None = None) -> pa.Table:
    """The month's current predictions as a table."""
    record = current_predictions(lake, use_case, month)
    if record is None:
        raise FileNotFoundError(f"{use_case} has no predictions for {month}: run {use_case}_batch_score")
    return lake.read_parquet(record.path, columns=columns)
