"""Stage runs to kill: a warm process that forks one real stage run per request.

``python tests/fault_child.py`` imports the stages once (seconds on a busy machine), then
serves requests from stdin, one at a time, one JSON object a line::

    {"stage": "validate" | "snapshot" | "score" | "monitor", "lake": URI, "model": PATH}

For each it forks a child that runs the stage's functions on the lake as the DAG tasks do
and prints ``started <pid>``. The test may SIGKILL that pid at any moment; it then sends a
line (any) and the child is reaped only now (until then its pid cannot be reused, so the
kill never hits another process), and ``ended <pid> <wait status>`` is printed. Nothing
runs in this process but imports: no thread is started before a fork.
"""

from __future__ import annotations

import io
import json
import os
import sys
import traceback

import pyarrow as pa
import pyarrow.parquet as pq

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import generator, tlc
from mlplatform.core.records import ModelRef
from mlplatform.core.spec import load_spec
from mlplatform.stages import contracts, monitoring, scoring

USE_CASE = load_spec("taxi_trip_duration")
# Snapshotting, scoring and monitoring run under a name no other test registers a model
# under: with no champion in the registry, what monitoring computes does not depend on
# which tests ran before. Validation keeps the real name: its checkpoint is named after it.
ISOLATED = USE_CASE.model_copy(update={"name": "fault_trip_duration"})
MONTH = "2024-03"
ROWS = 3_000
STAGES = ("validate", "snapshot", "score", "monitor")


def month_trips() -> pa.Table:
    """The month the snapshot stage stores (normalised trips; the same every time)."""
    return tlc.normalise(generator.generate_month("yellow", MONTH, ROWS, seed=1).table)


def raw_month() -> bytes:
    """The raw file the validate stage judges: with the zero-distance records real months have,
    so a run writes quarantined rows as well as the snapshot."""
    buffer = io.BytesIO()
    pq.write_table(generator.generate_month("yellow", MONTH, ROWS, seed=1, anomalies=True).table, buffer)
    return buffer.getvalue()


def run_stage(stage: str, lake: Lake, model_path: str | None) -> None:
    """One run of ``stage`` on ``lake``, through the functions its DAG task calls."""
    if stage == "validate":
        contracts.validate_month(lake, USE_CASE, MONTH)
    elif stage == "snapshot":
        contract = {"success": True, "suite": ISOLATED.contract.suite, "bad_row_share": 0.0}
        snapshots.write_snapshot(lake, ISOLATED.name, MONTH, month_trips(), {"contract": contract})
    elif stage == "score":
        snapshot = scoring.checked_snapshot(lake, ISOLATED, MONTH, [])
        model = scoring.load_model(str(model_path))
        ref = ModelRef(ISOLATED.model_name, "1", alias="champion")
        scoring.publish(lake, scoring.score_snapshot(lake, ISOLATED, snapshot, ref, model))
    elif stage == "monitor":
        monitoring.monitor(lake, ISOLATED, MONTH)
    else:
        raise ValueError(f"unknown stage {stage!r}: one of {', '.join(STAGES)}")


def child(request: dict[str, str]) -> None:
    """The forked child: run the stage, exit without running the parent's exit handlers."""
    status = 1
    try:
        os.dup2(2, 1)  # stdout is the protocol's: anything the stage prints goes to stderr
        run_stage(request["stage"], Lake(request["lake"]), request.get("model"))
        status = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(status)


def serve() -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            child(request)
        print(f"started {pid}", flush=True)
        sys.stdin.readline()  # the test has killed the child, or chosen not to
        _, status = os.waitpid(pid, 0)
        print(f"ended {pid} {status}", flush=True)


if __name__ == "__main__":
    serve()
