"""Batch scoring: whole `<use case>_batch_score` runs with dag.test() against a real MLflow
server, the command line, atomic replacement, and SageMaker Batch Transform on moto."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlplatform.adapters import registry, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import generator, tlc
from mlplatform.core.records import ModelRef, ScoredOutput
from mlplatform.core.spec import UseCase, load_spec
from mlplatform.stages import scoring

from conftest import load_dag_module

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
USE_CASE = load_spec("taxi_trip_duration")
ROWS = 3_000
_logical_dates = (datetime(2031, 1, 1, tzinfo=UTC) + timedelta(hours=i) for i in itertools.count())
_registered: dict[tuple[str, str], list[str]] = {}


# -- shared by the scoring, serving and deploy tests -------------------------------------------
def normalised_trips(month: str, rows: int = ROWS, seed: int = 1) -> pa.Table:
    return tlc.normalise(generator.generate_month("yellow", month, rows, seed=seed).table)


def add_snapshot(
    lake: Lake, month: str, *, success: bool = True, seed: int = 1, rows: int = ROWS
) -> snapshots.Snapshot:
    """A validated snapshot of generated trips, with the contract result the validate DAG records."""
    contract = {
        "success": success,
        "suite": USE_CASE.contract.suite,
        "bad_row_share": 0.0 if success else 0.2,
    }
    snapshot, _ = snapshots.write_snapshot(
        lake, USE_CASE.name, month, normalised_trips(month, rows, seed), {"contract": contract}
    )
    return snapshot


def registered_versions(tracking_uri: str, name: str = USE_CASE.model_name) -> list[str]:
    """Three registered versions of a small TripModel (each predicts differently), made once."""
    import mlflow

    key = (tracking_uri, name)
    if key in _registered and _still_registered(tracking_uri, name, _registered[key]):
        return _registered[key]
    import sklearn

    from mlplatform.adapters.pyfunc import TripPyfunc
    from mlplatform.core.modelling import TripModel, input_columns, input_defaults, trip_features
    from mlplatform.stages.training import model_signature
    from mlplatform.use_cases.taxi_trip_duration import build_estimator

    requirements = [f"scikit-learn=={sklearn.__version__}", f"mlflow=={mlflow.__version__}"]
    features = USE_CASE.features.all
    train = normalised_trips("2024-01", 4_000, seed=11).to_pandas()
    inputs = train[input_columns(features)]
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(f"{name}-tests")
    versions = []
    for iterations in (10, 25, 40):
        estimator = build_estimator("hist_gradient_boosting", {"max_iter": iterations}, USE_CASE.features)
        estimator.fit(trip_features(train)[list(features)], train[USE_CASE.target.column])
        model = TripModel(estimator, features, USE_CASE.task, defaults=input_defaults(USE_CASE))
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=TripPyfunc(model),
                signature=model_signature(USE_CASE, model, inputs.head(20)),
                registered_model_name=name,
                pip_requirements=requirements,  # given: inferring them costs seconds per model
            )
        versions.append(str(info.registered_model_version))
    _registered[key] = versions
    return versions


def _still_registered(tracking_uri: str, name: str, versions: list[str]) -> bool:
    """Whether the cached versions are still these tests' models: another module may have
    deleted the registered model and registered its own under the same numbers."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        runs = [client.get_model_version(name, v).run_id for v in versions]
    except MlflowException:
        return False
    return all(client.get_run(r).info.experiment_id == _experiment_id(client, name) for r in runs)


def _experiment_id(client: Any, name: str) -> str | None:
    experiment = client.get_experiment_by_name(f"{name}-tests")
    return experiment.experiment_id if experiment else None


def set_alias(name: str, alias: str, version: str | None) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    if version is None:
        client.delete_registered_model_alias(name, alias)
    else:
        client.set_registered_model_alias(name, alias, version)


def run_dag(dag: Any, **conf: Any) -> dict[str, str]:
    """One whole run with dag.test(); each task's final state (mapped tasks: the last index)."""
    run = dag.test(logical_date=next(_logical_dates), run_conf=conf)
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def with_serving(use_case: UseCase, **changes: Any) -> UseCase:
    return use_case.model_copy(update={"serving": use_case.serving.model_copy(update=changes)})


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def versions(mlflow_server: str) -> list[str]:
    return registered_versions(mlflow_server)


@pytest.fixture
def world(
    versions: list[str], airflow_db: Path, webhook_sink: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """A fresh lake in the settings, no alerts yet, champion = the first version."""
    lake = Lake((tmp_path / "lake").as_uri())
    monkeypatch.setenv("MLPLATFORM_LAKE_URI", lake.root_uri)
    webhook_sink.clear()
    set_alias(USE_CASE.model_name, "champion", versions[0])
    return {"lake": lake, "versions": versions, "alerts": webhook_sink.messages}


# -- the tests ----------------------------------------------------------------------------------
def test_the_month_of_a_run() -> None:
    assert scoring.month_of_run("2023-07", None) == "2023-07"
    assert scoring.month_of_run(None, datetime(2024, 4, 1, tzinfo=UTC)) == "2024-03"
    assert scoring.month_of_run(None, datetime(2024, 4, 2, 6, tzinfo=UTC)) == "2024-03"
    assert scoring.month_of_run(None, datetime(2024, 1, 1, tzinfo=UTC)) == "2023-12"
    with pytest.raises(ValueError, match="`month` param"):
        scoring.month_of_run(None, None)


@pytest.mark.airflow_compat
def test_a_month_is_scored_by_the_champion_and_a_rerun_is_identical(world: dict[str, Any]) -> None:
    lake, champion = world["lake"], world["versions"][0]
    snapshot = add_snapshot(lake, "2024-03")
    dag = load_dag_module("batch_score").build(USE_CASE)

    states = run_dag(dag, month="2024-03")

    assert set(states.values()) == {"success"}, states
    record = scoring.current_predictions(lake, USE_CASE.name, "2024-03")
    assert record is not None
    assert record.model.version == champion and record.snapshot_digest == snapshot.digest
    table = scoring.read_predictions(lake, USE_CASE.name, "2024-03")
    assert table.num_rows == snapshot.rows  # one prediction per valid row
    assert set(table["model_version"].to_pylist()) == {int(champion)}
    assert set(table["snapshot_digest"].to_pylist()) == {snapshot.digest}
    assert table["row_id"].to_pylist() == [f"{snapshot.digest[:16]}-{i}" for i in range(snapshot.rows)]
    model = scoring.load_model(f"models:/{USE_CASE.model_name}/{champion}")
    trips = snapshots.read_table(lake, snapshot).to_pandas()
    expected = model.predict(trips[scoring.model_inputs(model)])["prediction"].to_numpy()
    np.testing.assert_allclose(table["prediction"].to_numpy(), expected, rtol=1e-12)

    states = run_dag(dag, month="2024-03")

    assert set(states.values()) == {"success"}, states
    assert scoring.read_predictions(lake, USE_CASE.name, "2024-03").equals(table)
    again = scoring.current_predictions(lake, USE_CASE.name, "2024-03")
    assert again is not None and again.path == record.path
    assert world["alerts"]() == []


def test_a_contract_breach_stops_scoring_with_an_alert(world: dict[str, Any]) -> None:
    lake = world["lake"]
    good = add_snapshot(lake, "2024-04", seed=3)
    ref = registry.resolve(USE_CASE.model_name)
    before = scoring.publish(lake, scoring.score_snapshot(lake, USE_CASE, good, ref))
    add_snapshot(lake, "2024-04", success=False, seed=4)  # a later, broken delivery is current now

    states = run_dag(load_dag_module("batch_score").build(USE_CASE), month="2024-04")

    assert states["check_contract"] == "failed"
    assert states["score"] == "upstream_failed" and states["publish"] == "upstream_failed"
    after = scoring.current_predictions(lake, USE_CASE.name, "2024-04")
    assert after == before  # the previous predictions stay in force
    [alert] = world["alerts"]()  # one message: the task's own, not a second from the failure callback
    text = json.dumps(alert)
    assert "scoring of 2024-04 stopped" in alert["text"] and "breach" in alert["text"]
    assert "failed the contract" in text and "re-run taxi_trip_duration_validate for 2024-04" in text


def test_the_scored_output_keeps_its_json_form() -> None:
    """XCom and CURRENT.json keep the keys, order and values they always had."""
    written = {
        "use_case": "taxi_trip_duration",
        "month": "2024-03",
        "path": "predictions/taxi_trip_duration/month=2024-03/v3-0123456789ab/predictions.parquet",
        "uri": "file:///lake/predictions/taxi_trip_duration/month=2024-03/v3-0123456789ab/predictions.parquet",
        "rows": 10,
        "model": {
            "name": "taxi_trip_duration",
            "version": "3",
            "alias": "champion",
            "run_id": "abc",
            "source": "models:/m-1",
            "uri": "models:/taxi_trip_duration/3",
        },
        "snapshot_digest": "0123456789abcdef" * 4,
        "snapshot_rows": 12,
        "data_filter": "payment_type == 1",
        "target": "local",
        "published_at": "2024-04-01T00:00:00+00:00",
    }
    record = ScoredOutput.from_dict(written)
    assert record.to_dict() == written and list(record.to_dict()) == list(written)
    assert record.model.version == "3" and record.expected_rows == 10
    unpublished = {k: v for k, v in written.items() if k != "published_at"}
    assert ScoredOutput.from_dict(unpublished).to_dict() == unpublished
    assert ScoredOutput.from_dict({**unpublished, "data_filter": None}).expected_rows == 12
    with pytest.raises(ValueError, match="lacks snapshot_rows"):
        ScoredOutput.from_dict({k: v for k, v in unpublished.items() if k != "snapshot_rows"})


def test_the_checked_snapshot_keeps_the_xcom_form_of_check_contract() -> None:
    """`check_contract` hands the scoring tasks the month, digest and rows, as it always did."""
    written = {"month": "2024-03", "digest": "0123456789abcdef" * 4, "rows": 12}
    record = scoring.CheckedSnapshot.from_dict(written)
    assert record.to_dict() == written and list(record.to_dict()) == list(written)


def test_a_missing_month_stops_with_what_to_do(lake: Lake) -> None:
    with pytest.raises(scoring.InputRejected, match=r"no validated snapshot for 2024-09.*_validate DAG"):
        scoring.checked_snapshot(lake, USE_CASE, "2024-09", ["trip_distance"])


def test_a_failed_run_leaves_the_previous_output_intact(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = world["lake"]
    snapshot = add_snapshot(lake, "2024-05", rows=2_500)
    ref = registry.resolve(USE_CASE.model_name)
    use_case = with_serving(USE_CASE, batch_rows=1_000)
    record = scoring.publish(lake, scoring.score_snapshot(lake, use_case, snapshot, ref))
    before = lake.read_bytes(record.path)
    real = scoring.predictor

    def dies_on_the_second_batch(model: Any) -> Any:
        predict, calls = real(model), itertools.count()
        return lambda frame: predict(frame) if next(calls) == 0 else (_ for _ in ()).throw(MemoryError())

    monkeypatch.setattr(scoring.batch, "predictor", dies_on_the_second_batch)
    with pytest.raises(MemoryError):
        scoring.score_snapshot(lake, use_case, snapshot, ref)

    assert lake.read_bytes(record.path) == before
    assert scoring.current_predictions(lake, USE_CASE.name, "2024-05") == record
    assert {e.path for e in lake.list(f"predictions/{USE_CASE.name}/month=2024-05")} == {
        record.path,
        f"predictions/{USE_CASE.name}/month=2024-05/CURRENT.json",
    }


def test_a_classifier_scores_only_the_rows_its_spec_models(lake: Lake, tmp_path: Path) -> None:
    """The tip classifier models card trips only (data.filter): labels and probabilities for
    those rows, each at its position in the snapshot, and nothing for cash trips."""
    import mlflow.pyfunc

    from mlplatform.adapters.pyfunc import TripPyfunc
    from mlplatform.core.modelling import (
        TripModel,
        build_estimator,
        modelled_rows,
        target_values,
        trip_features,
    )

    tips = load_spec("taxi_generous_tip")
    train = modelled_rows(normalised_trips("2024-01", 3_000, seed=2).to_pandas(), tips.data.filter)
    estimator = build_estimator(tips, "linear")
    estimator.fit(
        trip_features(train)[list(tips.features.all)],
        target_values(train, tips.target.column, tips.target.expression),
    )
    mlflow.pyfunc.save_model(
        str(tmp_path / "model"),
        python_model=TripPyfunc(TripModel(estimator, tips.features.all, tips.task, tips.target.labels)),
        pip_requirements=[],
    )
    contract = {"contract": {"success": True}}
    snapshot, _ = snapshots.write_snapshot(
        lake, tips.name, "2024-02", normalised_trips("2024-02", 2_000), contract
    )
    ref = ModelRef(tips.model_name, "4")

    record = scoring.publish(
        lake, scoring.score_snapshot(lake, tips, snapshot, ref, scoring.load_model(str(tmp_path / "model")))
    )

    table = scoring.read_predictions(lake, tips.name, "2024-02").to_pandas()
    card = snapshots.read_table(lake, snapshot, ["payment_type"]).to_pandas()["payment_type"] == 1
    assert 0 < record.rows == len(table) == card.sum() < snapshot.rows
    assert table["row_index"].tolist() == card[card].index.tolist()
    assert set(table["label"]) <= set(tips.target.labels) and table["probability"].between(0, 1).all()
    assert ((table["probability"] >= 0.5) == (table["label"] == "generous")).all()


def test_the_score_command_scores_any_tlc_file(world: dict[str, Any], tmp_path: Path) -> None:
    raw = tmp_path / "yellow_tripdata_2024-06.parquet"
    pq.write_table(generator.generate_month("yellow", "2024-06", 2_000, seed=5).table, raw)
    out = tmp_path / "scored" / "predictions.parquet"
    out.parent.mkdir()
    uri = f"models:/{USE_CASE.model_name}@champion"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlplatform",
            "score",
            "--json",
            "--quiet",
            "--model",
            uri,
            "--input",
            str(raw),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows"] == 2_000 and summary["model"].endswith(f"/{world['versions'][0]}")
    table = pq.read_table(out)
    assert table.num_rows == 2_000 and set(table["model_version"].to_pylist()) == {int(world["versions"][0])}
    assert (table["prediction"].to_numpy() > 0).all()


# -- SageMaker Batch Transform, on moto ---------------------------------------------------------------
def play_sagemaker(client: Any, job_name: str, lake: Lake, model_dir: Path) -> None:
    """Do what SageMaker does for a transform job moto accepted: copy the model data to the
    model directory, run the job's container (the serving app, configured from the SageMaker
    model's environment) on every staged part and write its answers as ``<part>.out``."""
    from test_sagemaker_container import copy_model_data
    from test_serving import running_app

    job = client.describe_transform_job(TransformJobName=job_name)
    model = client.describe_model(ModelName=job["ModelName"])
    container = model["PrimaryContainer"]
    environment = container["Environment"]
    assert environment["MLPLATFORM_MODEL_URI"] == "/opt/ml/model"
    if not any(model_dir.iterdir()):
        copy_model_data(container["ModelDataSource"]["S3DataSource"]["S3Uri"], model_dir)
    use_case = load_spec(environment["MLPLATFORM_USE_CASE"])
    source = lake.relative(job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"].rstrip("/"))
    target = lake.relative(job["TransformOutput"]["S3OutputPath"].rstrip("/"))
    with running_app(
        use_case,
        model_uri=str(model_dir),
        model_version=environment["MLPLATFORM_MODEL_VERSION"],
        log_predictions=environment["MLPLATFORM_SERVING_LOG_PREDICTIONS"] == "1",
    ) as (base, http):
        for entry in lake.list(source):
            answer = http.post(
                f"{base}/invocations",
                content=lake.read_bytes(entry.path),
                headers={"Content-Type": job["TransformInput"]["ContentType"]},
            )
            assert answer.status_code == 200, answer.text
            lake.write_bytes(f"{target}/{entry.path.rsplit('/', 1)[-1]}.out", answer.content)


def test_sagemaker_batch_transform_gives_the_same_predictions(
    world: dict[str, Any],
    s3_bucket: str,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import boto3
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
    from test_sagemaker_container import release_image, version_in_s3

    lake = Lake(f"s3://{s3_bucket}/lake")
    monkeypatch.setenv("MLPLATFORM_LAKE_URI", lake.root_uri)
    monkeypatch.setenv("MLPLATFORM_SAGEMAKER_ROLE_ARN", "arn:aws:iam::123456789012:role/mlplatform-sagemaker")
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/serving"
    monkeypatch.setenv("MLPLATFORM_SERVING_IMAGE_URI", image)
    monkeypatch.setenv("MLPLATFORM_SERVING_IMAGE_TAG", "2026.12.1")
    monkeypatch.setenv("MLPLATFORM_SERVING_KMS_KEY_ARN", "")
    release_image(moto_endpoint, image, "2026.12.1")
    snapshot = add_snapshot(lake, "2024-07", rows=2_500)
    use_case = with_serving(USE_CASE, target="sagemaker", batch_rows=1_000)
    client = boto3.client("sagemaker", endpoint_url=moto_endpoint)
    model_dir = tmp_path / "opt-ml-model"
    model_dir.mkdir()
    # The transform operator defers its wait to the triggerer: the job "runs" (the container
    # answers every part) when the trigger starts, and the deferred task resumes on its event.
    run, resumed = SageMakerTrigger.run, []

    async def job_runs_then_trigger_waits(trigger: Any) -> Any:
        play_sagemaker(client, trigger.job_name, lake, model_dir)
        async for event in run(trigger):
            resumed.append(event)
            yield event

    monkeypatch.setattr(SageMakerTrigger, "run", job_runs_then_trigger_waits)
    # moto completes a job at once; SageMaker takes minutes: the operator sees it in progress
    # and defers, until the trigger has run it.
    describe = SageMakerHook.describe_transform_job

    def in_progress_until_run(hook: Any, name: str) -> Any:
        answer = describe(hook, name)
        return answer if resumed else {**answer, "TransformJobStatus": "InProgress"}

    monkeypatch.setattr(SageMakerHook, "describe_transform_job", in_progress_until_run)
    # On AWS the registry keeps artifacts in S3: the champion here is such a version.
    from mlflow import MlflowClient

    registry = MlflowClient()
    in_s3 = version_in_s3(s3_bucket, world["versions"][0])
    registry.set_registered_model_alias(USE_CASE.model_name, "champion", in_s3.version)
    try:
        states = run_dag(
            load_dag_module("batch_score").build(use_case, transform_check_seconds=1), month="2024-07"
        )
    finally:
        registry.set_registered_model_alias(USE_CASE.model_name, "champion", world["versions"][0])

    assert set(states.values()) == {"success"}, states
    assert resumed and resumed[-1].payload["status"] == "success", resumed
    [summary] = client.list_transform_jobs(NameContains="2024-07")["TransformJobSummaries"]
    job = client.describe_transform_job(TransformJobName=summary["TransformJobName"])
    assert job["TransformJobStatus"] == "Completed"
    assert job["TransformInput"]["SplitType"] == "Line" and job["TransformOutput"]["AssembleWith"] == "Line"
    assert job["TransformResources"]["InstanceType"] == use_case.serving.instance_type
    version = in_s3.version
    model = client.describe_model(ModelName=job["ModelName"])
    assert model["PrimaryContainer"]["Image"] == f"{image}:2026.12.1"  # the release, never :latest
    assert model["PrimaryContainer"]["Environment"]["MLPLATFORM_MODEL_URI"] == "/opt/ml/model"
    data = model["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]
    assert data["S3Uri"].startswith(f"s3://{s3_bucket}/mlflow/") and data["CompressionType"] == "None"
    on_sagemaker = scoring.read_predictions(lake, USE_CASE.name, "2024-07")
    assert scoring.current_predictions(lake, USE_CASE.name, "2024-07").target == "sagemaker"  # type: ignore[union-attr]

    buffer = io.BytesIO()
    pyfunc = scoring.load_model(f"models:/{USE_CASE.model_name}/{version}")
    scoring.score_batches(
        pyfunc,
        snapshots.read_table(lake, snapshot).to_batches(max_chunksize=1_000),
        buffer,
        columns=scoring.model_inputs(pyfunc),
        digest=snapshot.digest,
        model_name=USE_CASE.model_name,
        model_version=version,
    )
    here = pq.read_table(io.BytesIO(buffer.getvalue()))
    assert on_sagemaker.num_rows == snapshot.rows
    assert on_sagemaker.drop_columns(["prediction"]).equals(here.drop_columns(["prediction"]))
    np.testing.assert_allclose(
        on_sagemaker["prediction"].to_numpy(), here["prediction"].to_numpy(), rtol=1e-9
    )
