"""Whole-DAG runs of `<use case>_ingest` with dag.test(): a source folder of TLC-named files,
a real lake, the raw Asset in the metadata DB and the alert webhook over HTTP."""

from __future__ import annotations

import io
import itertools
import json
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from mlplatform.adapters.lake import Lake
from mlplatform.airflow import dagkit
from mlplatform.core import generator, spec, tlc
from mlplatform.stages import ingest

from conftest import asset_event_extras

REPO = Path(__file__).resolve().parents[1]
USE_CASE = spec.load_spec("taxi_trip_duration")
MONTH = "2024-03"
_logical_dates = (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=i) for i in itertools.count())


@pytest.fixture(scope="module")
def ingest_dag(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real ingest DAG, in a bundle of its own."""
    from airflow.dag_processing.dagbag import DagBag

    patch = pytest.MonkeyPatch()
    bundle = tmp_path_factory.mktemp("dags")
    (bundle / "ingest.py").symlink_to(REPO / "dags" / "ingest.py")
    config = [
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(bundle)},
        }
    ]
    patch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(config))
    bag = DagBag(dag_folder=str(bundle / "ingest.py"))
    assert not bag.import_errors, bag.import_errors
    yield bag.dags[dagkit.dag_id(USE_CASE, "ingest")]
    patch.undo()


@pytest.fixture
def world(ingest_dag: Any, webhook_sink: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    lake = Lake((tmp_path / "lake").as_uri())
    source = tmp_path / "source"
    source.mkdir()
    monkeypatch.setenv("MLPLATFORM_LAKE_URI", lake.root_uri)
    monkeypatch.setenv("MLPLATFORM_RAW_SOURCE_URI", source.as_uri())
    webhook_sink.clear()
    return {"dag": ingest_dag, "lake": lake, "source": source, "sink": webhook_sink}


def publish(source: Path, taxi_type: tlc.TaxiType, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(generator.generate_month(taxi_type, MONTH, 500, seed=seed).table, buffer)
    (source / tlc.file_name(taxi_type, MONTH)).write_bytes(buffer.getvalue())
    return buffer.getvalue()


def run(dag: Any, month: str = MONTH) -> dict[str, str]:
    dag_run = dag.test(logical_date=next(_logical_dates), run_conf={"month": month})
    return {**{ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}, "run": str(dag_run.state)}


def raw_events() -> list[dict[str, Any]]:
    return asset_event_extras(dagkit.raw_asset(USE_CASE).uri)


def received(sink: Any) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{sink.url}/messages", timeout=10) as response:
        return json.load(response)


@pytest.mark.airflow_compat
def test_a_published_month_lands_once_and_starts_validation(world: dict) -> None:
    lake, source = world["lake"], world["source"]
    data = {t: publish(source, t) for t in USE_CASE.data.taxi_types}
    before = len(raw_events())

    states = run(world["dag"])

    assert states["run"] == "success" and states["announce"] == "success", states
    for taxi_type, content in data.items():
        assert lake.read_bytes(Lake.raw_path(USE_CASE.data.dataset, taxi_type, MONTH)) == content
    [event] = raw_events()[before:]
    assert event["month"] == MONTH and len(event["files"]) == len(data)

    states = run(world["dag"])  # nothing new at the source: no new event, nothing rewritten
    assert states["run"] == "success" and states["announce"] == "skipped", states
    assert len(raw_events()) == before + 1
    assert received(world["sink"]) == []


def test_a_different_file_never_replaces_a_landed_one(world: dict) -> None:
    lake, source = world["lake"], world["source"]
    first = {t: publish(source, t) for t in USE_CASE.data.taxi_types}
    assert run(world["dag"])["run"] == "success"
    publish(source, USE_CASE.data.taxi_type, seed=9)  # the source changed its file

    states = run(world["dag"])

    assert states["land"] == "failed" and states["announce"] == "upstream_failed", states
    path = Lake.raw_path(USE_CASE.data.dataset, USE_CASE.data.taxi_type, MONTH)
    assert lake.read_bytes(path) == first[USE_CASE.data.taxi_type]
    [message] = received(world["sink"])  # the failure notifier, with the task's log
    assert "task land failed" in message["text"]
    body = json.dumps(message["blocks"])
    assert "--replace" in body and "Task log" in body


def test_a_month_past_its_deadline_alerts_once_as_late(world: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(world["source"], "yellow")  # green never arrives
    monkeypatch.setenv("MLPLATFORM_RAW_DEADLINE_DAYS", "30")

    states = run(world["dag"])

    assert states["run"] == "failed" and states["wait_for_month"] == "failed", states
    assert list(world["lake"].list("raw")) == []
    [message] = received(world["sink"])
    assert message["text"] == f":warning: [warning] {USE_CASE.name} {MONTH}: raw data is late"
    assert "was due by 2024-05-01" in json.dumps(message["blocks"])


def test_a_month_published_while_waiting_resumes_the_deferred_wait(
    world: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing at the source yet: the wait defers to the trigger, which wakes it once TLC publishes."""
    from mlplatform.airflow.raw_month import RawMonthTrigger

    monkeypatch.setenv("MLPLATFORM_RAW_DEADLINE_DAYS", "100000")
    monkeypatch.setenv("MLPLATFORM_RAW_POKE_MINUTES", "0.02")  # a check every 1.2 s
    run_trigger, events = RawMonthTrigger.run, []

    async def recorded(trigger: RawMonthTrigger) -> Any:
        async for event in run_trigger(trigger):
            events.append(event.payload)
            yield event

    monkeypatch.setattr(RawMonthTrigger, "run", recorded)
    later = threading.Timer(3.0, lambda: [publish(world["source"], t) for t in USE_CASE.data.taxi_types])
    later.start()
    try:
        states = run(world["dag"])
    finally:
        later.cancel()

    assert states["run"] == "success" and states["announce"] == "success", states
    assert events == [{"month": MONTH, "found": list(USE_CASE.data.taxi_types), "late": False}]
    assert received(world["sink"]) == []


def test_deadline_and_settings() -> None:
    assert ingest.deadline("2024-12", 10) == datetime(2025, 1, 11, tzinfo=UTC)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLPLATFORM_RAW_DEADLINE_DAYS", "soon")
        with pytest.raises(ValueError, match="MLPLATFORM_RAW_DEADLINE_DAYS must be a number"):
            ingest.deadline_days()
        mp.delenv("MLPLATFORM_RAW_SOURCE_URI", raising=False)
        assert ingest.source_prefix() == ingest.TLC_SOURCE
