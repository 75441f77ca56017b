"""The heavy steps as SageMaker jobs.

The job entrypoint (``python -m mlplatform.jobs``) is run as a process on a job directory
laid out as SageMaker lays out ``/opt/ml``: a Training job on a real TLC month (the model
written, the MLflow run logged on the test server), a Processing job validating a real
month, and failing jobs (the reason in ``output/failure``, a non-zero exit).

The DAG side runs whole train and validate DAGs with ``dag.test()`` on AWS settings against
moto: the operators' requests (the release's image, channels, hyperparameters, role,
output path) as SageMaker recorded them, the waits deferred to the triggerer, where the job
"runs" (the same entrypoint as a process on the channels moto's S3 holds, its output
uploaded where SageMaker would put it). moto cannot fail a job, so a failed job's
description comes from botocore's Stubber on the real API model: its ``FailureReason`` ends
the task once and reaches Slack once (a Training and a Processing job). The environment, not
the spec, picks the target.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from test_sagemaker_container import release_image
from test_scoring import USE_CASE, add_snapshot, run_dag, with_serving

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import tlc
from mlplatform.core.spec import serving_target
from mlplatform.stages import ingest, training

from conftest import REPO_ROOT, load_dag_module

pytestmark = pytest.mark.slow

REAL = REPO_ROOT / "tests" / "fixtures" / "real_tlc"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlplatform-dev-serving"
RELEASE = "2026.12.1-3f2a9c1"
ROLE = "arn:aws:iam::123456789012:role/mlplatform-dev-sagemaker"
ON_AWS = with_serving(USE_CASE, target=None)


# -- helpers --------------------------------------------------------------------------------------
def run_job(root: Path, *arguments: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m mlplatform.jobs`` as SageMaker starts it, below ``root`` instead of /opt/ml."""
    environment = {**os.environ, "MLPLATFORM_ENV": "local", "MLPLATFORM_JOB_ROOT": str(root), **env}
    return subprocess.run(
        [sys.executable, "-m", "mlplatform.jobs", *arguments],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=environment,
        cwd=REPO_ROOT,
    )


def real_snapshot(lake: Lake, month: str) -> snapshots.Snapshot:
    """A validated snapshot of TLC's own green month."""
    table = tlc.normalise(pq.read_table(REAL / f"green_tripdata_{month}.parquet"), "green")
    contract = {"success": True, "suite": USE_CASE.contract.suite, "bad_row_share": 0.04}
    snapshot, _ = snapshots.write_snapshot(lake, USE_CASE.name, month, table, {"contract": contract})
    return snapshot


def lay_out_training_job(
    root: Path, lake: Lake, assembled: training.TrainingSet, hyperparameters: dict
) -> None:
    """``/opt/ml`` as SageMaker prepares it for a Training job: channels and hyperparameters."""
    data = root / "input" / "data"
    folder = lake.relative(assembled.train_uri).rsplit("/", 1)[0]
    for channel, path in (
        ("train", lake.relative(assembled.train_uri)),
        ("validation", lake.relative(assembled.validation_uri)),
        ("lineage", f"{folder}/lineage.json"),
    ):
        (data / channel).mkdir(parents=True)
        (data / channel / path.rsplit("/", 1)[-1]).write_bytes(lake.read_bytes(path))
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))


@pytest.fixture
def gx_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A writable copy of the GX context (validation rebuilds Data Docs in it)."""
    root = tmp_path / "great_expectations"
    shutil.copytree(REPO_ROOT / "great_expectations", root, ignore=shutil.ignore_patterns("uncommitted"))
    monkeypatch.setenv("MLPLATFORM_GX_ROOT", str(root))
    return root


# -- the environment chooses ----------------------------------------------------------------------
def test_the_environment_chooses_the_target_unless_the_spec_pins_one() -> None:
    assert USE_CASE.serving.target is None  # the shipped specs pin nothing
    assert serving_target(USE_CASE, "local") == "local"
    assert serving_target(USE_CASE, "aws") == "sagemaker"
    pinned = with_serving(USE_CASE, target="local")
    assert serving_target(pinned, "aws") == "local"
    with pytest.raises(ValueError, match="environment must be 'local' or 'aws'"):
        serving_target(USE_CASE, "gcp")
    shown = subprocess.run(
        [sys.executable, "-m", "mlplatform", "spec", USE_CASE.name, "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert json.loads(shown.stdout)["serving_targets"] == {"local": "local", "aws": "sagemaker"}


def test_on_aws_the_dags_hand_the_heavy_steps_to_sagemaker(monkeypatch: pytest.MonkeyPatch) -> None:
    groups = {"train": "sagemaker_training", "validate": "sagemaker_validation"}
    groups |= {"deploy": "sagemaker", "batch_score": "sagemaker_transform"}
    for environment in ("local", "aws"):
        monkeypatch.setenv("MLPLATFORM_ENV", environment)
        for stage, group in groups.items():
            ids = load_dag_module(stage).build(USE_CASE).task_ids
            assert any(i.startswith(f"{group}.") for i in ids) == (environment == "aws"), (stage, ids)


# -- the container contract, as a process ---------------------------------------------------------
def test_a_training_job_fits_on_its_channels_logs_the_run_and_writes_the_model(
    mlflow_server: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    lake = Lake((tmp_path / "lake").as_uri())
    real_snapshot(lake, "2021-01")
    assembled = training.assemble_training_set(lake, USE_CASE, key="job-test", since="2021-01")
    root = tmp_path / "opt-ml"
    hyperparameters = {
        "use_case": USE_CASE.name,
        "family": USE_CASE.model.baseline,
        "reason": "container contract test",
        "airflow_run_id": "manual__job-test",
        "tags": json.dumps({"airflow.bundle_version": "unversioned"}),
    }
    lay_out_training_job(root, lake, assembled, hyperparameters)

    done = run_job(root, "train", MLFLOW_TRACKING_URI=mlflow_server)

    assert done.returncode == 0, done.stderr[-3000:]
    trained = json.loads((root / "model" / "trained.json").read_text())
    assert (root / "model" / "model" / "MLmodel").is_file()
    run = MlflowClient(mlflow_server).get_run(trained["run_id"])
    assert run.data.tags["mlplatform.reason"] == "container contract test"
    assert run.data.tags["airflow.run_id"] == "manual__job-test"
    assert run.data.tags["airflow.bundle_version"] == "unversioned"
    assert run.data.tags["mlplatform.family"] == USE_CASE.model.baseline
    assert run.data.metrics["val_rmse"] == pytest.approx(trained["val_rmse"])
    assert run.data.params["train_rows"] == str(assembled.train_rows)
    assert not (root / "output" / "failure").exists()


def test_a_failing_job_writes_its_reason_and_exits_non_zero(tmp_path: Path) -> None:
    root = tmp_path / "opt-ml"
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps({"use_case": USE_CASE.name}))
    (root / "input" / "data" / "lineage").mkdir(parents=True)
    (root / "input" / "data" / "lineage" / "lineage.json").write_text("{}")

    done = run_job(root, "train")  # no train channel

    assert done.returncode == 1
    failure = (root / "output" / "failure").read_text()
    assert failure.startswith("train job failed: JobInputMissing: channel train")
    assert (root / "output" / "message").read_text() == failure  # a Processing job's ExitMessage
    assert "Traceback" in done.stderr

    done = run_job(root, "validate", "--use-case", USE_CASE.name, "--month", "2021-13")
    assert done.returncode == 1
    assert "--month must be a month as YYYY-MM, got '2021-13'" in (root / "output" / "failure").read_text()


def test_a_processing_job_validates_a_real_month_into_the_lake(tmp_path: Path, gx_root: Path) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    ingest.land_bytes(
        lake,
        USE_CASE.data.dataset,
        "green",
        "2021-01",
        (REAL / "green_tripdata_2021-01.parquet").read_bytes(),
    )
    root = tmp_path / "opt-ml"

    done = run_job(
        root,
        "validate",
        "--use-case",
        USE_CASE.name,
        "--month",
        "2021-01",
        MLPLATFORM_LAKE_URI=lake.root_uri,
        MLPLATFORM_GX_ROOT=str(gx_root),
    )

    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads((root / "processing" / "output" / "outcome.json").read_text())
    assert outcome["success"] and outcome["month"] == "2021-01"
    current = snapshots.current_snapshot(lake, USE_CASE.name, "2021-01")
    assert current is not None and current.digest == outcome["snapshot"]["digest"]


# -- the DAG side, on moto ------------------------------------------------------------------------
@pytest.fixture
def aws(
    s3_bucket: str, moto_endpoint: str, airflow_db: Path, webhook_sink: Any, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """AWS settings (no SSM: each set in the environment), the lake in moto's S3, the release pushed."""
    import boto3

    lake = Lake(f"s3://{s3_bucket}/lake")
    monkeypatch.setenv("MLPLATFORM_ENV", "aws")
    monkeypatch.setenv("MLPLATFORM_LAKE_URI", lake.root_uri)
    monkeypatch.setenv("MLPLATFORM_SAGEMAKER_ROLE_ARN", ROLE)
    monkeypatch.setenv("MLPLATFORM_SERVING_IMAGE_URI", IMAGE)
    monkeypatch.setenv("MLPLATFORM_SERVING_IMAGE_TAG", RELEASE)
    monkeypatch.setenv("MLPLATFORM_SERVING_KMS_KEY_ARN", "")
    # The tracking server jobs are told about: the test server when a test started it.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", os.environ.get("MLFLOW_TRACKING_URI", "http://mlflow.internal"))
    release_image(moto_endpoint, IMAGE, RELEASE)
    webhook_sink.clear()
    return {"lake": lake, "client": boto3.client("sagemaker"), "alerts": webhook_sink.messages}


def download(prefix_uri: str, target: Path) -> None:
    """What SageMaker does with an S3Prefix input: every object below it, copied to ``target``."""
    import boto3

    bucket, _, prefix = prefix_uri.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        path = target / item["Key"].rsplit("/", 1)[-1]
        path.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, item["Key"], str(path))


def upload(source: Path, uri: str, name: str) -> None:
    import boto3

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    boto3.client("s3").upload_file(str(source), bucket, f"{prefix.rstrip('/')}/{name}")


def sagemaker_runs_jobs(monkeypatch: pytest.MonkeyPatch, kind: str, play: Any) -> list[dict[str, Any]]:
    """moto completes a job at once; SageMaker takes minutes. The operator sees the job in
    progress and defers; when the trigger starts, ``play(job name)`` runs the job, then the
    real trigger polls moto and the task resumes on its event."""
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

    run, events = SageMakerTrigger.run, []
    played: set[str] = set()

    async def job_runs_then_trigger_waits(trigger: Any) -> Any:
        play(trigger.job_name)
        played.add(trigger.job_name)
        async for event in run(trigger):
            events.append(event.payload)
            yield event

    monkeypatch.setattr(SageMakerTrigger, "run", job_runs_then_trigger_waits)
    method = f"describe_{kind.lower()}_job"
    describe = getattr(SageMakerHook, method)

    def in_progress_until_played(hook: Any, name: str) -> Any:
        answer = describe(hook, name)
        return answer if name in played else {**answer, f"{kind}JobStatus": "InProgress"}

    monkeypatch.setattr(SageMakerHook, method, in_progress_until_played)
    return events


def test_on_aws_training_runs_as_a_deferred_sagemaker_training_job(
    aws: dict[str, Any], mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    lake, client = aws["lake"], aws["client"]
    for seed, month in enumerate(("2024-01", "2024-02")):
        add_snapshot(lake, month, seed=seed)

    def play(name: str) -> None:
        job = client.describe_training_job(TrainingJobName=name)
        root = tmp_path / name
        for channel in job["InputDataConfig"]:
            download(
                channel["DataSource"]["S3DataSource"]["S3Uri"],
                root / "input" / "data" / channel["ChannelName"],
            )
        (root / "input" / "config").mkdir(parents=True)
        (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(job["HyperParameters"]))
        done = run_job(root, "train", MLPLATFORM_LAKE_URI=lake.root_uri)
        assert done.returncode == 0, done.stderr[-3000:]
        archive = tmp_path / f"{name}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(root / "model", arcname=".")
        artifacts = job["ModelArtifacts"]["S3ModelArtifacts"]
        upload(archive, artifacts.rsplit("/", 1)[0], artifacts.rsplit("/", 1)[-1])

    events = sagemaker_runs_jobs(monkeypatch, "Training", play)
    dag = load_dag_module("train").build(ON_AWS, job_check_seconds=1)

    states = run_dag(dag, window_months=2, family=USE_CASE.model.baseline, reason="on SageMaker")

    assert set(states.values()) == {"success"}, states
    assert [e["status"] for e in events] == ["success"]
    [summary] = client.list_training_jobs(NameContains=f"{USE_CASE.name.replace('_', '-')}-train")[
        "TrainingJobSummaries"
    ]
    job = client.describe_training_job(TrainingJobName=summary["TrainingJobName"])
    assert job["AlgorithmSpecification"]["TrainingImage"] == f"{IMAGE}:{RELEASE}"
    assert job["RoleArn"] == ROLE
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    folder = channels["train"].rsplit("/", 1)[0]
    assert folder.startswith(f"{lake.root_uri}/features/{USE_CASE.name}/training/")
    assert channels == {
        "train": f"{folder}/train.parquet",
        "validation": f"{folder}/validation.parquet",
        "lineage": f"{folder}/lineage.json",
    }
    hyperparameters = job["HyperParameters"]
    assert {k: hyperparameters[k] for k in ("use_case", "family", "reason")} == {
        "use_case": USE_CASE.name,
        "family": USE_CASE.model.baseline,
        "reason": "on SageMaker",
    }
    assert all(isinstance(v, str) for v in hyperparameters.values())
    assert job["OutputDataConfig"]["S3OutputPath"] == f"{folder}/job"
    assert job["ResourceConfig"]["InstanceType"] == USE_CASE.serving.instance_type
    # The job's run is the registered challenger.
    registry = MlflowClient(mlflow_server)
    challenger = registry.get_model_version_by_alias(USE_CASE.model_name, "challenger")
    run = registry.get_run(challenger.run_id)
    assert run.data.tags["mlplatform.reason"] == "on SageMaker"
    assert run.data.tags["airflow.run_id"] == hyperparameters["airflow_run_id"]


def processing_jobs(client: Any) -> list[str]:
    pages = client.get_paginator("list_processing_jobs").paginate(NameContains="validate")
    return [j["ProcessingJobName"] for page in pages for j in page["ProcessingJobSummaries"]]


def failed_job_description(client: Any, kind: str, name: str, reason: str) -> dict[str, Any]:
    """moto's description of the job, as SageMaker describes it once the job has failed (with
    the fields SageMaker returns and moto does not keep)."""
    answer = getattr(client, f"describe_{kind.lower()}_job")(**{f"{kind}JobName": name})
    answer.pop("ResponseMetadata", None)
    cluster = {"InstanceCount": 1, "InstanceType": USE_CASE.serving.instance_type, "VolumeSizeInGB": 30}
    if kind == "Processing":
        answer.setdefault("ProcessingResources", {"ClusterConfig": cluster})
    return {**answer, f"{kind}JobStatus": "Failed", "FailureReason": reason}


def sagemaker_fails_jobs(monkeypatch: pytest.MonkeyPatch, client: Any, kind: str, reason: str) -> Any:
    """The job is in progress when the operator defers; then the triggerer's waiter sees it fail.
    From there on the task asks SageMaker why: a Stubber checked against the API model,
    answering with moto's description of the job turned into a failed one."""
    import boto3
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
    from airflow.triggers.base import TriggerEvent
    from botocore.stub import Stubber

    stubbed = boto3.client("sagemaker")
    stubber = Stubber(stubbed)
    method = f"describe_{kind.lower()}_job"

    async def job_fails(trigger: Any) -> Any:
        description = failed_job_description(client, kind, trigger.job_name, reason)
        stubber.add_response(method, description, {f"{kind}JobName": trigger.job_name})
        stubber.activate()
        monkeypatch.setattr(SageMakerHook, "conn", stubbed)
        # What the real trigger yields when its waiter sees the job fail.
        yield TriggerEvent({"status": "failed", "job_name": trigger.job_name, "message": reason})

    monkeypatch.setattr(SageMakerTrigger, "run", job_fails)
    describe = getattr(SageMakerHook, method)
    monkeypatch.setattr(
        SageMakerHook, method, lambda hook, name: {**describe(hook, name), f"{kind}JobStatus": "InProgress"}
    )
    return stubber


def test_a_failed_training_job_fails_the_training_once_with_its_reason(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for seed, month in enumerate(("2024-01", "2024-02")):
        add_snapshot(aws["lake"], month, seed=seed)
    reason = "ClientError: Please ensure the channel train holds data, exit code 1"
    stubber = sagemaker_fails_jobs(monkeypatch, aws["client"], "Training", reason)

    states = run_dag(load_dag_module("train").build(ON_AWS, job_check_seconds=1), window_months=2)

    stubber.assert_no_pending_responses()
    assert states["sagemaker_training.train"] == "failed", states
    assert states["sagemaker_training.collect"] == "upstream_failed"
    assert states["register_challenger"] == "upstream_failed"
    [alert] = aws["alerts"]()
    assert reason in json.dumps(alert) and "sagemaker_training.train" in alert["text"]


def test_a_failed_processing_job_fails_the_validation_once_with_its_reason(
    aws: dict[str, Any], gx_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = aws["client"]
    reason = "AlgorithmError: MemoryError while reading raw/nyc_tlc/month=2024-03, exit code 137"
    stubber = sagemaker_fails_jobs(monkeypatch, client, "Processing", reason)
    dag = load_dag_module("validate").build(ON_AWS, job_check_seconds=1)
    before = set(processing_jobs(client))

    states = run_dag(dag, month="2024-03")

    stubber.assert_no_pending_responses()
    assert states["sagemaker_validation.validate_month"] == "failed", states
    assert states["sagemaker_validation.read_outcome"] == "upstream_failed"
    [name] = set(processing_jobs(client)) - before
    job = client.describe_processing_job(ProcessingJobName=name)
    assert job["AppSpecification"]["ImageUri"] == f"{IMAGE}:{RELEASE}" and job["RoleArn"] == ROLE
    assert job["AppSpecification"]["ContainerArguments"] == [
        "validate",
        "--use-case",
        USE_CASE.name,
        "--month",
        "2024-03",
    ]
    [alert] = aws["alerts"]()  # once: the failure is final, no retry starts the job again
    text = json.dumps(alert)
    assert reason in text and name in text and "validate_month" in alert["text"]


def test_on_aws_validation_runs_as_a_sagemaker_processing_job(
    aws: dict[str, Any], gx_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, client = aws["lake"], aws["client"]
    ingest.land_bytes(
        lake,
        USE_CASE.data.dataset,
        "green",
        "2021-02",
        (REAL / "green_tripdata_2021-02.parquet").read_bytes(),
    )

    def play(name: str) -> None:
        job = client.describe_processing_job(ProcessingJobName=name)
        root = tmp_path / name
        done = run_job(
            root,
            *job["AppSpecification"]["ContainerArguments"],
            MLPLATFORM_LAKE_URI=lake.root_uri,
            MLPLATFORM_GX_ROOT=str(gx_root),
        )
        assert done.returncode == 0, done.stderr[-3000:]
        [output] = job["ProcessingOutputConfig"]["Outputs"]
        assert output["S3Output"]["LocalPath"] == "/opt/ml/processing/output"
        upload(root / "processing" / "output" / "outcome.json", output["S3Output"]["S3Uri"], "outcome.json")

    events = sagemaker_runs_jobs(monkeypatch, "Processing", play)
    dag = load_dag_module("validate").build(ON_AWS, job_check_seconds=1)
    before = set(processing_jobs(client))

    states = run_dag(dag, month="2021-02")

    assert set(states.values()) == {"success"}, states
    assert [e["status"] for e in events] == ["success"]
    current = snapshots.current_snapshot(lake, USE_CASE.name, "2021-02")
    assert current is not None  # written to the lake by the job, announced by the DAG
    [name] = set(processing_jobs(client)) - before
    job = client.describe_processing_job(ProcessingJobName=name)
    output = job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    assert output.startswith(f"{lake.root_uri}/features/{USE_CASE.name}/jobs/validate/2021-02-")
    outcome = json.loads(io.BytesIO(lake.read_bytes(f"{lake.relative(output)}/outcome.json")).read())
    assert outcome["snapshot"]["digest"] == current.digest


def test_a_job_request_runs_the_entrypoint_and_names_itself_by_its_content(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlplatform.adapters import sagemaker

    monkeypatch.setenv("MLPLATFORM_LAKE_URI", "s3://lake-bucket/lake")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal")
    monkeypatch.setenv("MLPLATFORM_SERVING_KMS_KEY_ARN", "")
    channels = {"train": "s3://lake-bucket/lake/features/x/train.parquet"}
    image = f"{IMAGE}:{RELEASE}"
    request = sagemaker.training_job_request(USE_CASE, image, ROLE, channels, {"window": 3}, "s3://out")
    assert request["AlgorithmSpecification"]["ContainerEntrypoint"] == [
        "python",
        "-m",
        "mlplatform.jobs",
        "train",
    ]
    assert request["HyperParameters"] == {"window": "3"}  # SageMaker hands every value over as a string
    assert request["Environment"]["MLPLATFORM_LAKE_URI"] == "s3://lake-bucket/lake"
    assert request["Environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow.internal"
    assert "MLFLOW_TRACKING_PASSWORD" not in request["Environment"]  # a job's environment is not secret
    again = sagemaker.training_job_request(USE_CASE, image, ROLE, channels, {"window": 3}, "s3://out")
    assert again["TrainingJobName"] == request["TrainingJobName"]
    assert len(request["TrainingJobName"]) <= 63
    other = sagemaker.training_job_request(USE_CASE, image, ROLE, channels, {"window": 4}, "s3://out")
    assert other["TrainingJobName"] != request["TrainingJobName"]
    processing = sagemaker.processing_job_request(
        USE_CASE, image, ROLE, ["validate", "--month", "2024-03"], "s3://o"
    )
    assert processing["AppSpecification"]["ContainerEntrypoint"] == ["python", "-m", "mlplatform.jobs"]
    assert processing["ProcessingJobName"].startswith("taxi-trip-duration-validate-")
