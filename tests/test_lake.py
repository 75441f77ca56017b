"""The lake over a local folder and over S3 (moto's server over real HTTP): same behaviour."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mlplatform.adapters.lake import Lake, inventory
from mlplatform.stages import ingest


@pytest.fixture(params=["file", "s3"])
def any_lake(request: pytest.FixtureRequest, tmp_path) -> Lake:
    if request.param == "file":
        return Lake((tmp_path / "lake").as_uri())
    bucket = request.getfixturevalue("s3_bucket")
    return Lake(f"s3://{bucket}/lake")


def test_round_trip(any_lake: Lake) -> None:
    table = pa.table({"a": [1, 2, 3]})
    uri = any_lake.write_parquet("validated/x/month=2024-01/data.parquet", table)
    assert uri == any_lake.uri("validated/x/month=2024-01/data.parquet")
    assert any_lake.read_parquet("validated/x/month=2024-01/data.parquet").equals(table)
    any_lake.write_json("monitoring/x/state.json", {"k": 1})
    assert any_lake.read_json("monitoring/x/state.json") == {"k": 1}
    assert [e.path for e in any_lake.list("validated")] == ["validated/x/month=2024-01/data.parquet"]
    assert any_lake.relative(uri) == "validated/x/month=2024-01/data.parquet"


def test_failed_write_leaves_nothing_visible(any_lake: Lake) -> None:
    any_lake.write_bytes("predictions/x/out.bin", b"old")
    with pytest.raises(RuntimeError), any_lake.open_atomic("predictions/x/out.bin") as handle:
        handle.write(b"half of the new")
        raise RuntimeError("the task died half way")
    assert any_lake.read_bytes("predictions/x/out.bin") == b"old"
    with pytest.raises(RuntimeError), any_lake.open_atomic("predictions/x/new.bin") as handle:
        handle.write(b"partial")
        raise RuntimeError("the task died half way")
    assert not any_lake.exists("predictions/x/new.bin")
    assert [e.path for e in any_lake.list("predictions")] == ["predictions/x/out.bin"]


def test_paths_cannot_escape_the_root(any_lake: Lake) -> None:
    with pytest.raises(ValueError, match="escapes the lake root"):
        any_lake.write_bytes("../outside", b"x")


def test_landing_never_overwrites_raw(any_lake: Lake) -> None:
    first, _ = ingest.land_generated(any_lake, "nyc", "yellow", "2024-01", 1_000, seed=1)
    assert first.changed and first.rows == 1_000
    again, _ = ingest.land_generated(any_lake, "nyc", "yellow", "2024-01", 1_000, seed=1)
    assert not again.changed and again.digest == first.digest

    with pytest.raises(ingest.LandingError, match="already holds a different delivery"):
        ingest.land_generated(any_lake, "nyc", "yellow", "2024-01", 1_000, seed=2)
    assert any_lake.digest(first.path) == first.digest

    replaced, _ = ingest.land_generated(any_lake, "nyc", "yellow", "2024-01", 1_000, seed=2, replace=True)
    assert replaced.changed and replaced.digest != first.digest
    superseded = [e.path for e in any_lake.list("raw/nyc/month=2024-01/superseded")]
    assert superseded == [f"raw/nyc/month=2024-01/superseded/{first.digest}.parquet"]


def test_inventory_groups_by_zone(any_lake: Lake) -> None:
    ingest.land_generated(any_lake, "nyc", "green", "2024-02", 100)
    zones = inventory(any_lake)
    assert [e.path for e in zones["raw"]] == ["raw/nyc/month=2024-02/green_tripdata_2024-02.parquet"]
    assert zones["validated"] == []
