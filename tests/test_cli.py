"""The command line, run as users run it: the console script in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mlplatform import cli
from mlplatform.core import tlc

COMMANDS = sorted(cli.build_parser()._subparsers._group_actions[0].choices)


def mlplatform(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlplatform", *args], capture_output=True, text=True, timeout=300, env=env
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = mlplatform(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: mlplatform" in result.stdout


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("mlplatform")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "generate" in result.stdout


def test_generate_writes_a_tlc_file_and_prints_the_noise_floor(tmp_path: Path) -> None:
    out = tmp_path / "yellow.parquet"
    result = mlplatform(
        "generate", "--kind", "yellow", "--month", "2024-03", "--rows", "20000", "--out", str(out), "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows"] == 20_000 and summary["noise_floor_rmse_minutes"] > 0
    assert pq.read_schema(out).remove_metadata() == tlc.raw_schema("yellow", "2024")


def test_generate_and_ingest_into_the_lake(tmp_path: Path) -> None:
    lake = (tmp_path / "lake").as_uri()
    real = tmp_path / "green_tripdata_2023-04.parquet"
    assert (
        mlplatform(
            "generate", "--kind", "green", "--month", "2023-04", "--rows", "500", "--out", str(real)
        ).returncode
        == 0
    )

    wrong = mlplatform(
        "ingest", str(real), "--use-case", "taxi_generous_tip", "--month", "2023-04", "--lake", lake
    )
    assert wrong.returncode == 2 and "holds green trips but taxi_generous_tip expects yellow" in wrong.stderr
    landed = mlplatform(
        "ingest", str(real), "--use-case", "taxi_trip_duration", "--month", "2023-04", "--lake", lake
    )
    assert landed.returncode == 0 and "green_tripdata_2023-04.parquet" in landed.stdout

    made = mlplatform("generate", "--month", "2024-01", "--months", "2", "--rows", "500", "--lake", lake)
    assert made.returncode == 0, made.stderr
    listing = mlplatform("lake", "--lake", lake, "--json")
    raw = [e["path"] for e in json.loads(listing.stdout)["raw"]]
    assert raw == [
        "raw/nyc_tlc_yellow/month=2023-04/green_tripdata_2023-04.parquet",
        "raw/nyc_tlc_yellow/month=2024-01/yellow_tripdata_2024-01.parquet",
        "raw/nyc_tlc_yellow/month=2024-02/yellow_tripdata_2024-02.parquet",
    ]


def test_bad_input_gets_a_clear_message(tmp_path: Path) -> None:
    result = mlplatform("generate", "--month", "2024-13")
    assert result.returncode == 2 and "month must be YYYY-MM" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\n")
    result = mlplatform("spec", "--file", str(bad))
    assert result.returncode == 2 and "required field is missing" in result.stderr
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_text("a,b\n1,2\n")
    result = mlplatform("ingest", str(not_parquet), "--use-case", "taxi_trip_duration", "--month", "2024-01")
    assert result.returncode == 2 and "not a readable parquet file" in result.stderr


def test_spec_command_validates_the_shipped_specs() -> None:
    result = mlplatform("spec", "--json")
    assert result.returncode == 0, result.stderr
    assert '"name": "taxi_trip_duration"' in result.stdout


def test_three_million_rows_in_reasonable_time(tmp_path: Path) -> None:
    """Functional check at full size; the speed figure itself is printed by bench/."""
    started = time.perf_counter()
    result = mlplatform(
        "generate", "--month", "2024-03", "--rows", "3000000", "--out", str(tmp_path / "y.parquet"), "--json"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == 3_000_000
    assert pq.read_metadata(tmp_path / "y.parquet").num_rows == 3_000_000
    assert time.perf_counter() - started > 0
