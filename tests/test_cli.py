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
        "ingest",
        str(real),
        "--use-case",
        "taxi_trip_duration",
        "--month",
        "2023-04",
        "--lake",
        lake,
        "--json",
    )
    assert landed.returncode == 0, landed.stderr
    record = json.loads(landed.stdout)
    assert record["state"] == "landed" and record["uri"].endswith("green_tripdata_2023-04.parquet")
    assert record["rows"] == 500

    made = mlplatform("generate", "--month", "2024-01", "--months", "2", "--rows", "500", "--lake", lake)
    assert made.returncode == 0, made.stderr
    listing = mlplatform("lake", "--lake", lake, "--json")
    raw = [e["path"] for e in json.loads(listing.stdout)["raw"]]
    assert raw == [
        "raw/nyc_tlc/month=2023-04/green_tripdata_2023-04.parquet",
        "raw/nyc_tlc/month=2024-01/yellow_tripdata_2024-01.parquet",
        "raw/nyc_tlc/month=2024-02/yellow_tripdata_2024-02.parquet",
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


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The command run in this process (quicker than a console script): exit code and stdout."""
    try:
        code = cli.main(list(args))
    except SystemExit as exit_:  # --help and --version exit from argparse
        code = int(exit_.code or 0)
    return code, capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from mlplatform import __version__

    assert run(capsys, "--version") == (0, f"mlplatform {__version__}\n")


def test_help_lists_the_use_cases_their_families_and_the_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mlplatform.core import spec

    top, train = run(capsys, "--help")[1], run(capsys, "train", "--help")[1]
    for use_case in spec.load_all():
        families = ", ".join(spec.model_families(use_case))
        assert f"{use_case.name}: families {families}" in top
        assert use_case.name in " ".join(train.split())  # help text is wrapped
    assert "2 could not check" in top
    assert "hist_gradient_boosting" in train


def test_results_are_a_table_by_default_and_json_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, table = run(capsys, "spec")
    assert code == 0
    header = next(line for line in table.splitlines() if "┃ use case" in line)
    assert "task" in header and "model family" in header
    assert any("taxi_trip_duration" in line and "regression" in line for line in table.splitlines())
    assert json.loads(run(capsys, "spec", "taxi_trip_duration", "--json")[1])["name"] == "taxi_trip_duration"

    lake = (tmp_path / "lake").as_uri()
    assert run(capsys, "generate", "--month", "2024-01", "--rows", "300", "--lake", lake, "--quiet")[0] == 0
    listing = run(capsys, "lake", "--lake", lake)[1]
    assert "raw" in listing and "yellow_tripdata_2024-01.parquet" in listing
    assert "raw" in json.loads(run(capsys, "lake", "--lake", lake, "--json")[1])


def test_progress_stays_off_stdout_and_quiet_when_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("generate", "--month", "2024-01", "--months", "2", "--rows", "300", "--out", str(tmp_path))
    assert cli.main([*args, "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert [json.loads(line)["month"] for line in captured.out.splitlines()] == ["2024-01", "2024-02"]


def bash_complete(script: str, line: str) -> list[str]:
    """What bash completes for ``line`` (words so far, the last one being completed) with ``script``."""
    words = line.split(" ")
    program = (
        f"{script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        '_mlplatform_complete; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


def test_bash_completion_completes_commands_options_and_values(capsys: pytest.CaptureFixture[str]) -> None:
    script = run(capsys, "completion", "bash")[1]
    assert "complete -o filenames -F _mlplatform_complete mlplatform" in script
    assert set(bash_complete(script, "mlplatform va")) == {"validate"}
    assert "--use-case" in bash_complete(script, "mlplatform validate --")
    assert set(bash_complete(script, "mlplatform train --use-case taxi_")) == {
        "taxi_generous_tip",
        "taxi_trip_duration",
    }
    assert set(bash_complete(script, "mlplatform generate --kind ")) == {"yellow", "green"}
    assert bash_complete(script, "mlplatform contracts s") == ["sync"]
    assert "etc" in bash_complete(script, "mlplatform validate et")  # file names elsewhere
    zsh = run(capsys, "completion", "zsh")[1]
    assert "bashcompinit" in zsh and script in zsh


def test_config_prints_the_effective_settings_with_their_sources(capsys: pytest.CaptureFixture[str]) -> None:
    settings = pytest.importorskip("mlplatform.adapters.settings")
    if not hasattr(settings, "effective_settings"):
        pytest.skip("the settings module does not list its effective values yet")
    expected = {s.name: s.source for s in settings.effective_settings()}
    code, listed = run(capsys, "config", "--json")
    assert code == 0
    assert {r["name"]: r["source"] for r in json.loads(listed)} == expected
    assert all(set(r) == {"name", "value", "source"} for r in json.loads(listed))
    code, table = run(capsys, "config")
    assert code == 0 and "effective settings" in table
    assert all(name in table for name in expected)
