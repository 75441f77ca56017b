"""Whole-DAG runs of `<use case>_validate` with dag.test(): pass, no-op re-run, quarantine, breach.

Each run reads its settings when tasks run: the lake (``MLPLATFORM_LAKE_URI``), the GX
context (``MLPLATFORM_GX_ROOT``) and the alert webhook are pointed at temporary ones.
"""

from __future__ import annotations

import io
import itertools
import json
import shutil
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.airflow import dagkit
from mlplatform.core import generator, spec, tlc
from mlplatform.stages import ingest

from conftest import asset_event_extras

REPO = Path(__file__).resolve().parents[1]
USE_CASE = spec.load_spec("taxi_trip_duration")
DAG_ID = dagkit.dag_id(USE_CASE, "validate")
MONTH = "2024-03"
ROWS = 3000
# dag.test() makes one run per logical date: every manual run gets a fresh one.
_logical_dates = (datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=i) for i in itertools.count())


@pytest.fixture(scope="module")
def validate_dag(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real validate DAG, in a bundle of its own; a copy of the GX context."""
    from airflow.dag_processing.dagbag import DagBag

    patch = pytest.MonkeyPatch()
    bundle = tmp_path_factory.mktemp("dags")
    (bundle / "validate.py").symlink_to(REPO / "dags" / "validate.py")
    config = [
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(bundle)},
        }
    ]
    patch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(config))
    gx_root = tmp_path_factory.mktemp("gx") / "great_expectations"
    shutil.copytree(REPO / "great_expectations", gx_root, ignore=shutil.ignore_patterns("uncommitted"))
    patch.setenv("MLPLATFORM_GX_ROOT", str(gx_root))
    bag = DagBag(dag_folder=str(bundle / "validate.py"))
    assert not bag.import_errors, bag.import_errors
    yield bag.dags[DAG_ID]
    patch.undo()


@pytest.fixture
def world(validate_dag: Any, webhook_sink: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    lake = Lake((tmp_path / "lake").as_uri())
    monkeypatch.setenv("MLPLATFORM_LAKE_URI", lake.root_uri)
    webhook_sink.clear()
    return {"dag": validate_dag, "lake": lake, "sink": webhook_sink}


def land(lake: Lake, data: bytes, month: str = MONTH) -> str:
    d = USE_CASE.data
    return ingest.land_bytes(lake, d.dataset, d.taxi_type, month, data).path


def month_bytes(table: Any = None) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(
        table
        if table is not None
        else generator.generate_month("yellow", MONTH, ROWS, anomalies=False).table,
        buffer,
    )
    return buffer.getvalue()


def run(dag: Any, month: str | None = MONTH, logical_date: datetime | None = None) -> dict[str, str]:
    """One whole run; returns each task's final state (and the run's under ``"run"``)."""
    conf = {"month": month} if month else None
    dag_run = dag.test(logical_date=logical_date or next(_logical_dates), run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    return {**states, "run": str(dag_run.state)}


def received(sink: Any) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{sink.url}/messages", timeout=10) as response:
        return json.load(response)


def asset_events() -> list[dict[str, Any]]:
    return asset_event_extras(dagkit.validated_asset(USE_CASE).uri)


@pytest.mark.airflow_compat
def test_a_run_without_a_month_validates_its_logical_dates_and_a_rerun_is_a_no_op(world: dict) -> None:
    lake, dag = world["lake"], world["dag"]
    land(lake, month_bytes())
    events_before = len(asset_events())
    # No month param and no raw Asset event: the month of the logical date.
    states = run(dag, month=None, logical_date=datetime(2024, 3, 15, tzinfo=UTC))
    assert states == {
        "resolve_month": "success",
        "check_contract": "success",
        "report": "success",
        "announce": "success",
        "run": "success",
    }
    snapshot = snapshots.current_snapshot(lake, USE_CASE.name, MONTH)
    assert snapshot.manifest["contract"]["success"] is True
    assert asset_events()[events_before:] == [{"month": MONTH, "digest": snapshot.digest}]

    states = run(dag)  # the same raw file again: same snapshot, no new Asset event
    assert states["run"] == "success" and states["announce"] == "skipped"
    assert snapshots.current_snapshot(lake, USE_CASE.name, MONTH) == snapshot
    assert len(asset_events()) == events_before + 1
    assert received(world["sink"]) == []


def test_quarantine_run_validates_the_rest_and_keeps_the_notice_out_of_slack(world: dict) -> None:
    lake = world["lake"]
    table = generator.corrupt(
        generator.generate_month("yellow", MONTH, ROWS, anomalies=False).table, "other_year", 0.01
    )
    land(lake, month_bytes(table))
    states = run(world["dag"])
    assert states["run"] == "success" and states["announce"] == "success"
    snapshot = snapshots.current_snapshot(lake, USE_CASE.name, MONTH)
    quarantined = snapshot.manifest["contract"]["quarantined_rows"]
    assert quarantined > 0 and snapshot.rows == ROWS - quarantined
    assert snapshot.manifest["contract"]["rule_counts"] == {"pickup_outside_month": quarantined}
    assert [e.path.rsplit("/", 1)[1] for e in lake.list(f"quarantine/{USE_CASE.name}")] == [
        "rows.parquet",
        "summary.json",
    ]
    assert received(world["sink"]) == []  # no history to jump from: the stored outcome says it all


def test_a_rule_share_jump_warns_once(world: dict) -> None:
    lake = world["lake"]
    for month in ("2023-12", "2024-01", "2024-02"):  # three usual months: nothing outside the month
        trips = generator.generate_month("yellow", month, 100, anomalies=False).table
        block = {"success": True, "severity": "pass", "rows": ROWS, "rule_counts": {}}
        manifest = {"source": {"path": "raw", "digest": "0", "rows": ROWS}, "contract": block}
        snapshots.write_snapshot(lake, USE_CASE.name, month, tlc.normalise(trips), manifest)
    table = generator.corrupt(
        generator.generate_month("yellow", MONTH, ROWS, anomalies=False).table, "other_year", 0.01
    )
    land(lake, month_bytes(table))
    states = run(world["dag"])
    assert states["run"] == "success" and states["announce"] == "success"  # a warning, not a breach
    [jump] = snapshots.current_snapshot(lake, USE_CASE.name, MONTH).manifest["contract"]["jumps"]
    assert jump.startswith("pickup_outside_month jumped to ")
    [message] = received(world["sink"])
    assert message["text"].startswith(":warning: [warning]") and "jumped" in message["text"]
    assert "pickup_outside_month jumped" in json.dumps(message["blocks"])


def test_breach_run_fails_with_what_broke_and_alerts_once(
    world: dict, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    lake = world["lake"]
    table = generator.generate_month("yellow", MONTH, ROWS, anomalies=False).table
    raw = land(lake, generator.corrupted_bytes(table, "csv_as_parquet"))
    digest = lake.digest(raw)
    states = run(world["dag"])
    assert states["run"] == "failed"
    assert states["check_contract"] == "success" and states["report"] == "failed"
    assert states["announce"] == "upstream_failed"
    output = capfd.readouterr().out + capfd.readouterr().err + caplog.text
    assert "breached contract nyc_tlc_trips: unreadable file" in output
    assert lake.digest(raw) == digest and list(lake.list("validated")) == []
    [record] = [e.path for e in lake.list(f"quarantine/{USE_CASE.name}")]
    assert record.endswith(f"{digest}/breach.json")
    assert "not a readable parquet file" in lake.read_json(record)["what_broke"][0]
    # One problem, one message: the failure callback stays silent after the breach alert.
    [message] = received(world["sink"])
    assert message["text"].startswith(":rotating_light: [breach]")
    assert "Data Docs" in json.dumps(message["blocks"])


def test_a_real_green_and_a_generated_yellow_file_make_one_month(world: dict) -> None:
    """Any TLC month dropped into the lake flows: TLC's own green file beside a yellow one."""
    lake, month = world["lake"], "2021-01"
    real = REPO / "tests" / "fixtures" / "real_tlc" / f"green_tripdata_{month}.parquet"
    ingest.land_bytes(lake, USE_CASE.data.dataset, "green", month, real.read_bytes())
    land(
        lake, month_bytes(generator.generate_month("yellow", month, ROWS, anomalies=False).table), month=month
    )
    states = run(world["dag"], month=month)
    assert states["run"] == "success" and states["announce"] == "success"
    snapshot = snapshots.current_snapshot(lake, USE_CASE.name, month)
    contract = snapshot.manifest["contract"]
    assert contract["success"] and 0 < contract["bad_row_share"] < USE_CASE.contract.max_bad_row_share
    kinds = snapshots.read_table(lake, snapshot, ["taxi_type"]).column(0).value_counts().to_pylist()
    assert {k["values"] for k in kinds} == {"green", "yellow"}
    assert contract["rule_counts"]["zero_distance"] > 0
    assert received(world["sink"]) == []  # a usual real month: no Slack message


def test_a_use_case_outside_the_package_gets_every_dag(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A team adds a spec and its model module in a folder of its own; no file of mlplatform changes."""
    import yaml
    from airflow.dag_processing.dagbag import DagBag

    folder = tmp_path / "team_use_cases"
    folder.mkdir()
    raw = yaml.safe_load((spec.USE_CASES_DIR / "taxi_trip_duration.yaml").read_text())
    raw = {**raw, "name": "team_trip_duration", "model": {**raw["model"], "module": "team_model"}}
    (folder / "team_trip_duration.yaml").write_text(yaml.safe_dump(raw))
    shutil.copy(spec.USE_CASES_DIR / "taxi_trip_duration.py", folder / "team_model.py")
    monkeypatch.setenv(spec.USE_CASES_DIR_VARIABLE, str(folder))
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    stages = {p.stem for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_")}
    assert {f"team_trip_duration_{s}" for s in stages} <= set(bag.dag_ids)
    assert {f"taxi_trip_duration_{s}" for s in stages} <= set(bag.dag_ids)
    assert spec.load_spec("team_trip_duration").model_file == folder / "team_model.py"
