"""The lake over a local folder and over S3 (moto's server over real HTTP): same behaviour;
leftovers of writers killed mid-write are recognised and swept."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pytest

from mlplatform.adapters.lake import TEMP_GRACE_SECONDS, Lake, inventory, is_stale_temp, is_temp, temp_name
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


def test_create_if_absent_is_atomic(any_lake: Lake) -> None:
    """On S3 a conditional PutObject (``If-None-Match: *``), which moto's server honours."""
    assert any_lake.write_if_absent("alerts/claims/a/0/000000.json", b"first")
    assert not any_lake.write_if_absent("alerts/claims/a/0/000000.json", b"second")
    assert any_lake.read_bytes("alerts/claims/a/0/000000.json") == b"first"
    # Writers racing for one path: exactly one creates it, and what it wrote is what is there.
    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda n: any_lake.write_if_absent("raced.json", b"%d" % n), range(8)))
    assert created.count(True) == 1
    assert any_lake.read_bytes("raced.json") == b"%d" % created.index(True)
    assert [e.path for e in any_lake.list("alerts")] == ["alerts/claims/a/0/000000.json"]  # no leftovers


def test_inventory_groups_by_zone(any_lake: Lake) -> None:
    ingest.land_generated(any_lake, "nyc", "green", "2024-02", 100)
    zones = inventory(any_lake)
    assert [e.path for e in zones["raw"]] == ["raw/nyc/month=2024-02/green_tripdata_2024-02.parquet"]
    assert zones["validated"] == []


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _leftover(lake: Lake, folder: str, name: str, pid: int, age_seconds: float = 0.0) -> Path:
    """A temporary as a writer with ``pid`` leaves it when it is killed mid-write."""
    mine = temp_name(name)
    path = Path(lake.root_uri.removeprefix("file://"), folder, mine.replace(f"-{os.getpid()}-", f"-{pid}-"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    os.utime(path, (time.time() - age_seconds, time.time() - age_seconds))
    return path


def test_temporaries_of_killed_writers_are_recognised_and_swept(lake: Lake) -> None:
    folder = "predictions/x/month=2024-01/v1-abc"
    dead = _leftover(lake, folder, "predictions.parquet", _dead_pid())
    alive = _leftover(lake, folder, "other.parquet", os.getppid())  # a live writer's: kept
    own = _leftover(lake, folder, "mine.parquet", os.getpid())  # in use by this process: kept
    old = _leftover(lake, folder, "old.parquet", os.getppid(), age_seconds=2 * TEMP_GRACE_SECONDS)
    earlier = Path(dead.parent, ".tmp-" + "0" * 32 + "-predictions.parquet")  # an earlier release's name
    earlier.write_bytes(b"")
    os.utime(earlier, (time.time() - 2 * TEMP_GRACE_SECONDS,) * 2)
    assert all(is_temp(p.name) for p in (dead, alive, own, old, earlier))
    assert not is_temp("predictions.parquet") and not is_temp(".hidden")
    assert list(lake.list("predictions")) == []  # hidden from readers

    swept = lake.sweep("predictions")
    assert sorted(swept) == sorted(f"{folder}/{p.name}" for p in (dead, old, earlier))
    assert sorted(p.name for p in dead.parent.iterdir()) == sorted([alive.name, own.name])
    assert lake.sweep("predictions") == [] and lake.sweep("nothing/here") == []


def test_the_next_write_to_a_folder_sweeps_its_leftovers(lake: Lake) -> None:
    folder = "monitoring/x/history/window=2024-01"
    dead = _leftover(lake, folder, "metrics.json", _dead_pid())
    elsewhere = _leftover(lake, "monitoring/y", "metrics.json", _dead_pid())
    lake.write_json(f"{folder}/metrics.json", {"k": 1})
    assert sorted(p.name for p in dead.parent.iterdir()) == ["metrics.json"]
    assert elsewhere.exists()  # another folder: swept by its own next write or by sweep()


def test_a_temporary_is_named_after_its_object_and_writer() -> None:
    name = temp_name("data.parquet")
    assert name.startswith(".data.parquet.tmp-") and f"-{os.getpid()}-" in name and is_temp(name)
    assert is_stale_temp(name, age_seconds=2 * TEMP_GRACE_SECONDS)
    assert not is_stale_temp(name, age_seconds=0.0)  # this process is alive


def test_there_is_nothing_to_sweep_on_s3(s3_bucket: str) -> None:
    lake = Lake(f"s3://{s3_bucket}/lake")
    lake.write_bytes("predictions/x/out.bin", b"x")
    assert lake.sweep() == []
