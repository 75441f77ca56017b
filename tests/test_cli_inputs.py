"""Path trouble on every command: a one-line message and exit 2 ("could not check"), never a hang.

A path may be missing, a folder, a FIFO (never opened: it would block the read forever), a
device or unreadable; each command that reads files says so before doing anything else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlplatform import cli

USE_CASE = "taxi_trip_duration"

COMMANDS: dict[str, Callable[[str], list[str]]] = {
    "validate": lambda p: ["validate", p, "--use-case", USE_CASE, "--month", "2024-03"],
    "ingest": lambda p: ["ingest", p, "--use-case", USE_CASE, "--month", "2024-03"],
    "train": lambda p: ["train", "--use-case", USE_CASE, "--train", p, "--valid", p],
    "score": lambda p: ["score", "--model", "models:/x@champion", "--input", p, "--output", "out.parquet"],
    "spec": lambda p: ["spec", "--file", p],
}


@pytest.fixture
def troubles(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Each kind of bad path, and what the message must say."""
    fifo = tmp_path / "yellow_tripdata_2024-03.parquet"
    os.mkfifo(fifo)
    return {
        "missing": (str(tmp_path / "nothing.parquet"), "does not exist"),
        "directory": (str(tmp_path), "is a directory"),
        "fifo": (str(fifo), "is a FIFO (named pipe)"),
        "device": ("/dev/null", "is not a regular file"),
        "under_a_file": (str(Path(__file__) / "x.parquet"), "does not exist"),
    }


@pytest.mark.parametrize("kind", ["missing", "directory", "fifo", "device", "under_a_file"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_path_trouble_is_one_line_and_exit_2(
    command: str, kind: str, troubles: dict[str, tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, says = troubles[kind]
    assert cli.main(COMMANDS[command](path)) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: "), captured.err
    assert path in captured.err and says in captured.err
    assert captured.out == ""


def test_run_data_must_be_a_folder(troubles: dict[str, tuple[str, str]], capsys) -> None:
    for kind in ("missing", "fifo", "device"):
        path, _ = troubles[kind]
        assert cli.main(["run", "--data", path]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and path in err and err.count("\n") == 1


def test_a_fifo_never_hangs_the_command_line(tmp_path: Path) -> None:
    """As users run it: the console script on a FIFO answers at once (nothing writes to the pipe)."""
    fifo = tmp_path / "yellow_tripdata_2024-03.parquet"
    os.mkfifo(fifo)
    result = subprocess.run(
        [sys.executable, "-m", "mlplatform", "validate", str(fifo), "--use-case", USE_CASE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stderr.strip().endswith("it was not opened")
    assert "Traceback" not in result.stderr


@pytest.fixture
def unreadable() -> Iterator[Path]:
    """A file nobody may read (root only through its capabilities)."""
    folder = Path(tempfile.mkdtemp(prefix="mlplatform-unreadable-"))
    path = folder / "yellow_tripdata_2024-03.parquet"
    path.write_bytes(b"PAR1")
    path.chmod(0o000)
    yield path
    shutil.rmtree(folder)


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv to drop its rights"
)
def test_an_unreadable_file_is_named_with_exit_2(unreadable: Path) -> None:
    """Root reads any file; the command runs without the capabilities that let it (setpriv)."""
    without_read_override = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    command = ["validate", str(unreadable), "--use-case", USE_CASE]
    result = subprocess.run(
        [*without_read_override, sys.executable, "-m", "mlplatform", *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"error: {unreadable} is not readable (permission denied)\n"


def test_the_month_comes_from_the_end_of_a_tlc_file_name(tmp_path: Path, capsys) -> None:
    from mlplatform.cli.commands import validation_month

    named = tmp_path / "backfill-2024-01_yellow_tripdata_2024-03.parquet"
    assert validation_month([named], None) == ("2024-03", "the file name")
    assert validation_month([named], "2024-05") == ("2024-05", "--month")
    with pytest.raises(cli.CannotCheck, match="pass --month YYYY-MM"):
        validation_month([tmp_path / "delivery-2024-03.parquet"], None)
    green = tmp_path / "green_tripdata_2024-04.parquet"
    with pytest.raises(cli.CannotCheck, match="name different months"):
        validation_month([named, green], None)
