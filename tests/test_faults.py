"""Writers killed with SIGKILL at random moments lose nothing and leave nothing behind.

Validation, snapshotting, batch scoring and monitoring each run for real in a child process
(forked by ``fault_child.py``, warm) against a ``file://`` lake, and are killed after a
seeded random delay within the length of an unkilled run. While a child runs, a reader
in this process reads every visible object again and again. Asserted per trial:

- no partial object is ever visible: each object a reader sees, during the run or after
  the kill, is one the unkilled run writes, complete;
- the killed writer's hidden temporaries are swept by the next run (which writes to the
  same folders), so none is left;
- the next run ends with the lake the unkilled run left: the same objects, data files
  byte-identical, records equal apart from the times they were written.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlplatform.adapters.lake import Lake, is_temp
from mlplatform.stages import ingest

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
TRIALS = 3  # per stage: twelve kills, and the module stays around a minute on an idle machine
# What a record says about when it was written, the only difference between two runs: the
# times, and the Data Docs page of the run's validation result (named after its run time).
WRITTEN_AT = {"created_at", "published_at", "computed_at", "recorded_at", "data_docs_url"}


# -- the warm writer ------------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    killed: bool


class Writers:
    """``fault_child.py`` as a subprocess: one stage run at a time, killed or not."""

    def __init__(self, env: dict[str, str], stderr: IO[bytes]) -> None:
        self.stderr = stderr
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "fault_child.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
        )
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line, "fault_child.py stopped; see its stderr"
        return line

    def run(self, request: dict[str, str], kill_after: float | None = None, watch: Any = None) -> Run:
        """Run a stage; with ``kill_after``, SIGKILL it that many seconds after the fork,
        calling ``watch()`` (a reader) meanwhile."""
        assert self.process.stdin is not None
        started = time.monotonic()
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        pid = int(self._line().removeprefix("started "))
        if kill_after is not None:
            while time.monotonic() - started < kill_after:
                if watch is not None:
                    watch()
                else:
                    time.sleep(0.01)
            os.kill(pid, signal.SIGKILL)  # a zombie at worst: the child is reaped only after this
        self.process.stdin.write("reap\n")
        self.process.stdin.flush()
        ended, status = self._line().removeprefix("ended ").split()
        assert int(ended) == pid
        killed = os.WIFSIGNALED(int(status)) and os.WTERMSIG(int(status)) == signal.SIGKILL
        if not killed and os.waitstatus_to_exitcode(int(status)) != 0:
            self.stderr.seek(0)
            tail = self.stderr.read().decode(errors="replace")[-3000:]
            pytest.fail(f"{request['stage']} failed when nothing killed it:\n{tail}")
        return Run(time.monotonic() - started, killed)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- what a reader sees ---------------------------------------------------------------------------
def without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if k not in WRITTEN_AT}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def content(path: str, data: bytes) -> Any:
    """What must not differ between two runs: the bytes, or a record without its write times."""
    if path.endswith(".json"):
        return without_times(json.loads(data))
    if path.endswith(".parquet"):
        table = pq.read_table(io.BytesIO(data))  # a partial parquet file fails here
        times = [n for n in table.column_names if n in WRITTEN_AT]
        return table.drop_columns(times) if times else data
    return data


def same(a: Any, b: Any) -> bool:
    return a.equals(b) if isinstance(a, pa.Table) else a == b


def objects(lake: Lake) -> dict[str, Any]:
    return {e.path: content(e.path, lake.read_bytes(e.path)) for e in lake.list()}


def temporaries(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and is_temp(p.name))


def hidden(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*") if p.is_file())


# -- the world ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small trip-duration model saved as an MLflow pyfunc folder (no registry needed)."""
    import mlflow

    from mlplatform.adapters.pyfunc import TripPyfunc
    from mlplatform.core import generator, tlc
    from mlplatform.core.modelling import TripModel, input_defaults, trip_features
    from mlplatform.core.spec import load_spec
    from mlplatform.use_cases.taxi_trip_duration import build_estimator

    use_case = load_spec("taxi_trip_duration")
    train = tlc.normalise(generator.generate_month("yellow", "2024-01", 2_000, seed=11).table).to_pandas()
    estimator = build_estimator("hist_gradient_boosting", {"max_iter": 10}, use_case.features)
    estimator.fit(trip_features(train)[list(use_case.features.all)], train[use_case.target.column])
    model = TripModel(estimator, use_case.features.all, use_case.task, defaults=input_defaults(use_case))
    path = tmp_path_factory.mktemp("model") / "model"
    mlflow.pyfunc.save_model(str(path), python_model=TripPyfunc(model))
    return str(path)


@pytest.fixture(scope="module")
def writers(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str) -> Iterator[Writers]:
    gx_root = tmp_path_factory.mktemp("gx") / "great_expectations"
    shutil.copytree(HERE.parent / "great_expectations", gx_root, ignore=shutil.ignore_patterns("uncommitted"))
    env = {**os.environ, "MLPLATFORM_GX_ROOT": str(gx_root), "MLFLOW_TRACKING_URI": mlflow_server}
    env.pop("MLPLATFORM_ALERT_WEBHOOK_URL", None)
    with (tmp_path_factory.mktemp("logs") / "fault_child.log").open("w+b") as stderr:
        process = Writers(env, stderr)
        try:
            yield process
        finally:
            process.close()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, writers: Writers, model_path: str) -> dict[str, Path]:
    """Per stage, the lake it starts from: written by the stages before it, as in production."""
    import fault_child

    base = tmp_path_factory.mktemp("inputs")
    raw = Lake((base / "validate").as_uri())
    d = fault_child.USE_CASE.data
    ingest.land_bytes(raw, d.dataset, "yellow", fault_child.MONTH, fault_child.raw_month())
    (base / "snapshot").mkdir()
    lake = Lake((base / "score").as_uri())
    writers.run({"stage": "snapshot", "lake": lake.root_uri})
    shutil.copytree(base / "score", base / "monitor")
    writers.run({"stage": "score", "lake": Lake((base / "monitor").as_uri()).root_uri, "model": model_path})
    return {stage: base / stage for stage in fault_child.STAGES}


def fresh(source: Path, root: Path) -> Lake:
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(source, root)
    return Lake(root.as_uri())


# -- the trials -----------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["validate", "snapshot", "score", "monitor"])
def test_a_killed_write_loses_nothing_and_leaves_nothing(
    stage: str, writers: Writers, inputs: dict[str, Path], model_path: str, tmp_path: Path
) -> None:
    root = tmp_path / "lake"  # one place for every run, so the URIs records hold are the same
    lake = fresh(inputs[stage], root)
    request = {"stage": stage, "lake": lake.root_uri, "model": model_path}
    reference = writers.run(request)
    expected = objects(lake)
    assert hidden(root) == []

    def reader() -> None:  # every object visible now is one the unkilled run writes, whole
        for entry in lake.list():
            try:
                data = lake.read_bytes(entry.path)
            except FileNotFoundError:  # listed, then replaced by a rename: the next pass reads it
                continue
            assert entry.path in expected, f"{entry.path} is visible but no run writes it"
            assert same(content(entry.path, data), expected[entry.path]), f"{entry.path} is partial"

    rng = random.Random(f"faults-{stage}")
    killed = 0
    for trial in range(TRIALS):
        lake = fresh(inputs[stage], root)
        run = writers.run(request, kill_after=rng.uniform(0.02, 1.0) * reference.seconds, watch=reader)
        killed += run.killed
        reader()  # after the kill: still nothing partial
        writers.run(request)  # the next run
        assert temporaries(root) == [], f"trial {trial}: the next run left temporaries"
        found = objects(lake)
        assert sorted(found) == sorted(expected), f"trial {trial}: other objects than an unkilled run"
        differ = [p for p in expected if not same(found[p], expected[p])]
        assert differ == [], f"trial {trial}: other content than an unkilled run's"
    assert killed, f"no {stage} run was killed before it ended; the delays are too long"
