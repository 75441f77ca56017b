"""Validated snapshots are immutable, versioned by digest, and idempotent to rewrite."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from mlplatform.adapters import snapshots
from mlplatform.core import generator, tlc


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


def test_an_encoded_table_is_stored_as_the_same_snapshot_as_the_table(lake) -> None:
    table = tlc.normalise(generator.generate_month("yellow", "2024-03", 2000, seed=0).table)
    encoded = snapshots.encode(table)
    assert snapshots.encode(table).digest == encoded.digest  # same rows, same bytes
    assert hashlib.sha256(encoded.data).hexdigest() == encoded.digest
    snapshot, created = snapshots.write_snapshot(lake, "uc", "2024-03", encoded, {"source": "x"})
    assert created and snapshot.digest == encoded.digest and snapshot.rows == 2000
    assert snapshot.manifest["schema"] == {f.name: str(f.type) for f in tlc.NORMALISED_SCHEMA}
    again, created = snapshots.write_snapshot(lake, "uc", "2024-03", table, {"source": "x"})
    assert not created and again == snapshot
    stored = snapshots.read_table(lake, snapshot)
    assert stored.schema == table.schema and stored.equals(table)
