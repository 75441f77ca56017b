"""The serving image's SageMaker contract, run for real: a virtualenv built from the image's own
requirements (include/serving/requirements.txt, pinned by constraints.txt, offline), a
registered version whose artifacts are in S3 (moto's server) copied to a model directory as
SageMaker copies ``ModelDataSource``, and ``python -m mlplatform.serving serve`` as a process.
Real requests: ``GET /ping``, ``POST /invocations`` in JSON, JSON Lines and CSV, then a Batch
Transform input as the batch-score DAG stages it, split by line into mini-batches as
SageMaker sends them (``SplitType=Line``, ``BatchStrategy=MultiRecord``, ``MaxPayloadInMB``)
and assembled by line."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from test_scoring import USE_CASE, add_snapshot, registered_versions, with_serving

from mlplatform.adapters import sagemaker
from mlplatform.adapters.lake import Lake
from mlplatform.core.modelling import input_defaults
from mlplatform.core.records import ModelRef
from mlplatform.stages import scoring

from conftest import REPO_ROOT, REQUIRE_SERVICES, free_port, stop_process_group

pytestmark = pytest.mark.slow

REQUIREMENTS = REPO_ROOT / "include" / "serving" / "requirements.txt"
CONSTRAINTS = REPO_ROOT / "constraints.txt"
UV = Path(sys.executable).with_name("uv")
# SageMaker's MaxPayloadInMB is whole megabytes; the test's month is small, so the same
# packing runs with a smaller cap to send each part in several mini-batches.
MAX_PAYLOAD_BYTES = 48 * 1024
TRIPS = [
    {
        "pickup_datetime": "2024-03-05T08:30:00",
        "pu_location_id": 161,
        "do_location_id": 236,
        "trip_distance": 2.1,
    },
    {
        "pickup_datetime": "2024-03-05T23:10:00",
        "pu_location_id": 132,
        "do_location_id": 48,
        "trip_distance": 17.4,
    },
    {
        "pickup_datetime": "2024-03-06T12:00:00",
        "pu_location_id": 79,
        "do_location_id": 79,
        "trip_distance": 0.6,
    },
]


# -- shared with the deploy and capture tests ------------------------------------------------------
def version_in_s3(bucket: str, version: str, name: str = USE_CASE.model_name) -> ModelRef:
    """``version`` registered again as a new version whose artifacts are in the moto bucket.

    The model is logged in an experiment whose artifact location is ``s3://<bucket>/mlflow``,
    so under MLflow 3 the new version's source is a logged model (``models:/m-...``) stored
    in S3: what the registry holds on AWS.
    """
    import mlflow
    from mlflow import MlflowClient

    source = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    client = MlflowClient()
    experiment = client.create_experiment(
        f"{name}-s3-{uuid.uuid4().hex[:8]}", artifact_location=f"s3://{bucket}/mlflow"
    )
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=source.unwrap_python_model(),
            signature=source.metadata.signature,
            registered_model_name=name,
            pip_requirements=[],
        )
    registered = client.get_model_version(name, str(info.registered_model_version))
    return ModelRef(name, registered.version, None, registered.run_id, registered.source)


def release_image(moto_endpoint: str, repository_url: str, tag: str) -> None:
    """What the release push does, on moto's ECR: the repository (immutable tags) holds ``tag``."""
    import boto3
    from botocore.exceptions import ClientError

    ecr = boto3.client("ecr", endpoint_url=moto_endpoint)
    name = repository_url.split("/", 1)[1]
    try:
        ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "RepositoryAlreadyExistsException":
            raise
    layer = hashlib.sha256(tag.encode()).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1,
            "digest": f"sha256:{layer}",
        },
        "layers": [],
    }
    try:
        ecr.put_image(repositoryName=name, imageManifest=json.dumps(manifest), imageTag=tag)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in (
            "ImageAlreadyExistsException",
            "ImageTagAlreadyExistsException",
        ):
            raise


def copy_model_data(s3_uri: str, model_dir: Path) -> Path:
    """What SageMaker does with an uncompressed ``S3Prefix`` model data source: copy it to the model dir."""
    import boto3

    bucket, _, prefix = s3_uri.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for key in (item["Key"] for page in pages for item in page.get("Contents", [])):
        target = model_dir / key.removeprefix(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
    return model_dir


# -- the image's virtualenv -----------------------------------------------------------------------
def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason}, and MLPLATFORM_REQUIRE_SERVICES=1 requires the serving image's virtualenv")
    pytest.skip(reason)


def _run(command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, **options)


@pytest.fixture(scope="module")
def image_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python of a virtualenv holding exactly what the serving image installs.

    The third-party packages are cached under ``.local/`` by a hash of the requirements and
    constraints (reruns take seconds); the package itself is installed fresh, without its
    dependencies, from the files the Dockerfile copies.
    """
    if not UV.exists():
        _unavailable(f"uv is not installed beside {sys.executable}")
    key = hashlib.sha256(REQUIREMENTS.read_bytes() + CONSTRAINTS.read_bytes()).hexdigest()[:16]
    venv = REPO_ROOT / ".local" / f"serving-venv-{key}"
    if not (venv / "bin" / "python").exists():
        building = venv.with_name(f"{venv.name}.{os.getpid()}.tmp")
        shutil.rmtree(building, ignore_errors=True)
        steps = [
            [str(UV), "venv", "--quiet", "--python", sys.executable, str(building)],
            [
                str(UV),
                "pip",
                "install",
                "--offline",
                "--quiet",
                "-r",
                str(REQUIREMENTS),
                "-c",
                str(CONSTRAINTS),
            ],
        ]
        for step in steps:
            done = _run(step, env={**os.environ, "VIRTUAL_ENV": str(building)})
            if done.returncode:
                shutil.rmtree(building, ignore_errors=True)
                _unavailable(
                    f"cannot build the serving virtualenv offline: {' '.join(step[:3])}: {done.stderr[-600:]}"
                )
        building.rename(venv)  # atomic: a half-built virtualenv is never reused
    source = tmp_path_factory.mktemp("image-source")
    shutil.copy(REPO_ROOT / "pyproject.toml", source)
    shutil.copy(REPO_ROOT / "README.md", source)
    shutil.copytree(
        REPO_ROOT / "include" / "mlplatform",
        source / "include" / "mlplatform",
        ignore=shutil.ignore_patterns("__pycache__", "dev"),
    )
    done = _run(
        [
            str(UV),
            "pip",
            "install",
            "--offline",
            "--quiet",
            "--no-deps",
            "--reinstall-package",
            "mlplatform",
            str(source),
        ],
        env={**os.environ, "VIRTUAL_ENV": str(venv)},
    )
    if done.returncode:
        _unavailable(f"cannot install the mlplatform package offline: {done.stderr[-600:]}")
    return venv / "bin" / "python"


# -- the container --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3_model(
    mlflow_server: str, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A registered version with its artifacts in S3, copied to a model directory as SageMaker does."""
    import boto3

    patch = pytest.MonkeyPatch()
    patch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    ref = version_in_s3(bucket, registered_versions(mlflow_server)[0])
    request = sagemaker.model_request(USE_CASE, ref, "image", "role")
    s3_uri = request["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]["S3Uri"]
    model_dir = copy_model_data(s3_uri, tmp_path_factory.mktemp("opt-ml") / "model")
    yield {
        "ref": ref,
        "bucket": bucket,
        "dir": model_dir,
        "environment": request["PrimaryContainer"]["Environment"],
    }
    patch.undo()


@pytest.fixture(scope="module")
def container(
    image_python: Path, s3_model: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``python -m mlplatform.serving serve`` with the SageMaker model's environment, as a process."""
    port = free_port()
    # The model's environment names /opt/ml/model; here the model directory is elsewhere, and
    # SageMaker's SM_MODEL_DIR says where (what the entrypoint reads when no URI is given).
    environment = {k: v for k, v in s3_model["environment"].items() if k != "MLPLATFORM_MODEL_URI"}
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_", "MLPLATFORM_", "AIRFLOW", "PYTHONPATH", "VIRTUAL_ENV"))
    }
    env.update(environment, SM_MODEL_DIR=str(s3_model["dir"]), SAGEMAKER_BIND_TO_PORT=str(port))
    env["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:9"  # nothing there: the container needs no registry
    home = tmp_path_factory.mktemp("container")
    log = (home / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(image_python), "-m", "mlplatform.serving", "serve"],
        cwd=home,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # A state awaited, not a timing: two workers import the model on a loaded machine.
        deadline = time.monotonic() + 600
        while True:
            try:
                if httpx.get(f"{base}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (home / "serve.log").read_text()[-3000:]
                raise RuntimeError(f"the container did not answer /ping on {base}:\n{tail}")
            time.sleep(0.3)
        yield base
    finally:
        stop_process_group(process)
        log.close()


def expected(model_dir: Path, trips: list[dict[str, Any]] | pd.DataFrame) -> np.ndarray:
    """The model's own predictions for ``trips``, loaded in this process from the model directory."""
    frame = pd.DataFrame(trips).astype({"pu_location_id": "int32", "do_location_id": "int32"})
    frame["pickup_datetime"] = pd.to_datetime(frame["pickup_datetime"])
    return scoring.load_model(str(model_dir)).predict(frame)["prediction"].to_numpy()


def test_sagemaker_gets_the_s3_model_data_of_the_mlflow_3_model(s3_model: dict[str, Any]) -> None:
    ref = s3_model["ref"]
    assert ref.source.startswith("models:/m-")  # MLflow 3: the version's source is a logged model
    request = sagemaker.model_request(USE_CASE, ref, "image", "role")
    data = request["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]
    assert data["S3Uri"].startswith(f"s3://{s3_model['bucket']}/mlflow/") and data["S3Uri"].endswith("/")
    assert (data["S3DataType"], data["CompressionType"]) == ("S3Prefix", "None")
    assert s3_model["environment"]["MLPLATFORM_MODEL_URI"] == "/opt/ml/model"
    assert "MLFLOW_TRACKING_URI" not in s3_model["environment"]
    assert (s3_model["dir"] / "MLmodel").exists()


def test_artifacts_outside_s3_are_a_clear_error(mlflow_server: str) -> None:
    from mlflow import MlflowClient

    version = registered_versions(mlflow_server)[0]
    found = MlflowClient().get_model_version(USE_CASE.model_name, version)
    ref = ModelRef(USE_CASE.model_name, version, None, found.run_id, found.source)
    with pytest.raises(sagemaker.ModelDataNotInS3, match=f"version {version} are at .*not in S3"):
        sagemaker.model_request(USE_CASE, ref, "image", "role")


def test_the_container_answers_ping_and_invocations_in_json_json_lines_and_csv(
    container: str, s3_model: dict[str, Any]
) -> None:
    want = expected(s3_model["dir"], TRIPS)
    with httpx.Client(base_url=container, timeout=60) as http:
        assert http.get("/ping").status_code == 200

        one = http.post("/invocations", json=TRIPS[0])
        assert one.status_code == 200, one.text
        assert one.json()["predictions"][0]["prediction"] == pytest.approx(want[0])
        assert one.json()["version"] == s3_model["ref"].version

        lines = "".join(json.dumps(t) + "\n" for t in TRIPS)
        answer = http.post("/invocations", content=lines, headers={"Content-Type": "application/jsonlines"})
        assert answer.status_code == 200, answer.text
        got = [json.loads(line)["prediction"] for line in answer.text.splitlines()]
        assert got == pytest.approx(want)

        # CSV: no header, the columns in the order of the model's inputs; answers one per line.
        columns = scoring.model_inputs(scoring.load_model(str(s3_model["dir"])))
        full = [{**input_defaults(USE_CASE), **trip} for trip in TRIPS]
        rows = "".join(",".join(str(t[c]) for c in columns) + "\n" for t in full)
        answer = http.post(
            "/invocations", content=rows, headers={"Content-Type": "text/csv", "Accept": "text/csv"}
        )
        assert answer.status_code == 200, answer.text
        assert [float(line.split(",")[0]) for line in answer.text.splitlines()] == pytest.approx(want)

        bad = http.post("/invocations", content="not,a,trip\n", headers={"Content-Type": "text/csv"})
        assert 400 <= bad.status_code < 500, bad.text


def mini_batches(lines: list[bytes], max_payload_bytes: int) -> Iterator[bytes]:
    """Whole lines packed into payloads of at most ``max_payload_bytes``, in order: SageMaker's
    ``SplitType=Line`` with ``BatchStrategy=MultiRecord``."""
    batch: list[bytes] = []
    size = 0
    for line in lines:
        if batch and size + len(line) > max_payload_bytes:
            yield b"".join(batch)
            batch, size = [], 0
        batch.append(line)
        size += len(line)
    if batch:
        yield b"".join(batch)


def test_a_batch_transform_input_is_answered_line_for_line(
    container: str, s3_model: dict[str, Any], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    lake = Lake(f"s3://{s3_model['bucket']}/lake")
    snapshot = add_snapshot(lake, "2024-07", rows=1_500)
    use_case = with_serving(USE_CASE, target="sagemaker", batch_rows=1_000)
    staged = scoring.stage_transform_input(lake, use_case, snapshot, s3_model["ref"])
    assert len(staged.parts) == 2

    batches = 0
    with httpx.Client(base_url=container, timeout=120) as http:
        for part in staged.parts:
            folder = lake.relative(staged.input.rstrip("/"))
            lines = lake.read_bytes(f"{folder}/{part.name}").splitlines(keepends=True)
            answers: list[str] = []
            for payload in mini_batches(lines, MAX_PAYLOAD_BYTES):
                batches += 1
                answer = http.post(
                    "/invocations",
                    content=payload,
                    headers={
                        "Content-Type": scoring.TRANSFORM_CONTENT_TYPE,
                        "Accept": scoring.TRANSFORM_CONTENT_TYPE,
                    },
                )
                assert answer.status_code == 200, answer.text
                answers.extend(answer.text.splitlines())  # AssembleWith=Line
            assert len(answers) == part.rows == len(lines)
            trips = [json.loads(line) for line in lines]
            got = [json.loads(a)["prediction"] for a in answers]
            assert got == pytest.approx(expected(s3_model["dir"], trips))
    assert batches > len(staged.parts)  # the parts really went in several mini-batches
