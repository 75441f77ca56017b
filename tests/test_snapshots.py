"""Validated snapshots are immutable, versioned by digest, and idempotent to rewrite."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mlplatform import snapshots


def test_same_data_is_a_no_op_and_new_data_a_new_version(lake) -> None:
    first, created = snapshots.write_snapshot(lake, "uc", "2024-01", pa.table({"a": [1, 2]}), {"source": "x"})
    assert created and first.rows == 2 and first.manifest["source"] == "x"
    again, created = snapshots.write_snapshot(lake, "uc", "2024-01", pa.table({"a": [1, 2]}), {"source": "x"})
    assert not created and again == first

    second, created = snapshots.write_snapshot(lake, "uc", "2024-01", pa.table({"a": [1, 2, 3]}), {})
    assert created and second.digest != first.digest
    assert snapshots.current_snapshot(lake, "uc", "2024-01") == second
    # The old version stays addressable by its digest.
    assert (
        snapshots.read_table(lake, snapshots.read_snapshot(lake, "uc", "2024-01", first.digest)).num_rows == 2
    )


def test_current_snapshots_are_listed_by_month(lake) -> None:
    for month in ("2024-02", "2024-01"):
        snapshots.write_snapshot(lake, "uc", month, pa.table({"a": [1]}), {})
    assert [s.month for s in snapshots.current_snapshots(lake, "uc")] == ["2024-01", "2024-02"]
    assert snapshots.current_snapshot(lake, "uc", "2024-03") is None
    with pytest.raises(FileNotFoundError, match="no snapshot"):
        snapshots.read_snapshot(lake, "uc", "2024-01", "0" * 64)
