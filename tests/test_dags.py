"""DAG integrity, parametrized over every DAG in the bundle (as Airflow's own tests do)."""

from __future__ import annotations

import time
from pathlib import Path
from unittest import mock

import pytest

from mlplatform.airflow import dagkit

DAGS_FOLDER = Path(__file__).resolve().parents[1] / "dags"
DAG_FILES = sorted(p for p in DAGS_FOLDER.glob("*.py") if not p.name.startswith("_"))

# The DAG integrity tests run on every Airflow the bundle supports (`make test-mwaa`).
pytestmark = pytest.mark.airflow_compat


def _forbidden(*args, **kwargs):
    raise AssertionError("Variable or connection access at DAG parse time")


@pytest.fixture(scope="module")
def dag_bag(airflow_db):
    """Parse the bundle once, with Variable and connection lookups made to fail."""
    from airflow.dag_processing.dagbag import DagBag

    with (
        mock.patch("airflow.sdk.Variable.get", side_effect=_forbidden),
        mock.patch("airflow.sdk.BaseHook.get_connection", side_effect=_forbidden),
        mock.patch("airflow.models.variable.Variable.get", side_effect=_forbidden),
        mock.patch(
            "airflow.models.connection.Connection.get_connection_from_secrets", side_effect=_forbidden
        ),
    ):
        started = time.perf_counter()
        bag = DagBag(dag_folder=str(DAGS_FOLDER))
        bag.parse_seconds = time.perf_counter() - started
    return bag


def test_no_import_errors(dag_bag) -> None:
    assert dag_bag.import_errors == {}, "\n".join(f"{k}: {v}" for k, v in dag_bag.import_errors.items())


def test_every_stage_of_every_use_case_has_a_dag(dag_bag) -> None:
    stages = {p.stem for p in DAG_FILES}
    expected = {dagkit.dag_id(u, s) for u in dagkit.use_cases() for s in stages}
    assert expected <= set(dag_bag.dag_ids)


def test_parse_time_is_recorded(dag_bag, record_property) -> None:
    record_property("dag_bag_parse_seconds", round(dag_bag.parse_seconds, 3))
    for stat in dag_bag.dagbag_stats:
        record_property(f"parse_seconds[{Path(stat.file).name}]", stat.duration.total_seconds())
    print(f"parsed {len(dag_bag.dag_ids)} DAGs from {len(DAG_FILES)} files in {dag_bag.parse_seconds:.2f}s")


def _dag_ids() -> list[str]:
    from airflow.dag_processing.dagbag import DagBag

    return sorted(DagBag(dag_folder=str(DAGS_FOLDER)).dag_ids)


@pytest.mark.parametrize("dag_id", _dag_ids())
def test_dag_conventions(dag_bag, dag_id: str) -> None:
    dag = dag_bag.get_dag(dag_id)
    assert dag.doc_md and len(dag.doc_md.strip()) > 100, "doc_md must explain how to operate the DAG"
    assert "mlplatform" in dag.tags
    assert any(t.startswith("use_case:") for t in dag.tags) and any(t.startswith("stage:") for t in dag.tags)
    assert dag.start_date is not None and dag.start_date.tzinfo is not None
    assert dag.catchup is not None
    for task in dag.tasks:
        assert task.owner and task.owner != "airflow", f"{task.task_id} has no owner"
        assert task.retries is not None, f"{task.task_id} has no retries"
    for name, param in dag.params.items():
        assert param.description, f"param {name} needs a description for the trigger form"


@pytest.mark.parametrize("dag_id", _dag_ids())
def test_every_task_alerts_on_failure_through_the_notifier(dag_bag, dag_id: str) -> None:
    """A task that fails for good, in any DAG, posts one alert with a link to its log."""
    from airflow.sdk.bases.notifier import BaseNotifier

    from mlplatform.airflow.dagkit import FailureNotifier

    for task in dag_bag.get_dag(dag_id).tasks:
        callbacks = task.on_failure_callback
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        notifiers = [c for c in callbacks if isinstance(c, FailureNotifier)]
        assert notifiers, f"{task.task_id} of {dag_id} has no FailureNotifier in on_failure_callback"
        assert all(isinstance(n, BaseNotifier) for n in notifiers)


def test_dag_files_import_nothing_heavy() -> None:
    """pandas, sklearn, mlflow, GX and boto3 belong inside task bodies, not at parse time."""
    import subprocess
    import sys

    heavy = ["pandas", "sklearn", "mlflow", "great_expectations", "boto3", "evidently", "matplotlib"]
    code = (
        "import sys, runpy\n"
        f"for f in {[str(p) for p in DAG_FILES]!r}: runpy.run_path(f)\n"
        f"print('HEAVY=' + ','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    heavy_loaded = result.stdout.strip().splitlines()[-1].removeprefix("HEAVY=")
    assert heavy_loaded == "", f"heavy modules imported at parse time: {heavy_loaded}"


@pytest.mark.parametrize("use_case", dagkit.use_cases(), ids=lambda u: u.name)
def test_stages_follow_the_assets_their_data_comes_in(dag_bag, use_case) -> None:
    """Raw months start validation; published predictions, and ground truth a pending window
    waits for, start monitoring (no calendar)."""

    def followed(stage: str) -> set[str]:
        return {
            a.uri for a in dag_bag.get_dag(dagkit.dag_id(use_case, stage)).timetable.asset_condition.objects
        }

    def emitted(stage: str) -> set[str]:
        dag = dag_bag.get_dag(dagkit.dag_id(use_case, stage))
        return {o.uri for t in dag.tasks for o in t.outlets}

    assert followed("validate") == emitted("ingest") == {dagkit.raw_asset(use_case).uri}
    if use_case.serving.mode in ("batch", "both"):
        assert emitted("batch_score") == {dagkit.predictions_asset(use_case).uri}
        assert emitted("validate") == {dagkit.validated_asset(use_case).uri}
        assert followed("monitor") == emitted("batch_score") | emitted("validate")


def test_a_backfill_is_a_param_a_run_type_or_a_backfill_s_asset_events() -> None:
    backfill_run = type("Run", (), {"run_type": "backfill"})()
    manual_run = type("Run", (), {"run_type": "manual"})()
    assert dagkit.is_backfill(None, backfill_run)
    assert dagkit.is_backfill({"backfill": True}, manual_run)
    assert dagkit.is_backfill({}, manual_run, [{"month": "2024-04"}, {"month": "2024-05", "backfill": True}])
    assert not dagkit.is_backfill({"backfill": False}, manual_run, [{"month": "2024-04", "backfill": False}])


@pytest.mark.parametrize("use_case", dagkit.use_cases(), ids=lambda u: u.name)
def test_the_approval_and_its_reminder_wait_for_the_request(dag_bag, use_case) -> None:
    """Only a request posted to Slack is waited on (a skipped request skips both)."""
    dag = dag_bag.get_dag(dagkit.dag_id(use_case, "promote"))
    assert dag.get_task("request_approval").upstream_task_ids == {"route", "ask_live"}
    assert dag.get_task("approval").upstream_task_ids == {"request_approval"}
    assert dag.get_task("remind").upstream_task_ids == {"request_approval"}
