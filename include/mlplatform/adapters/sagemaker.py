"""SageMaker: names, requests and look-ups shared by deployment and batch transform.

Names are content-addressed (``<use case>-v<version>-<hash>``), so a request made twice
creates nothing twice. A model's data is the registered version's MLflow model files in S3,
which SageMaker copies to ``/opt/ml/model``; endpoints capture their traffic to the lake
(:func:`data_capture_config`), where monitoring reads it. The operators that send the
requests are Airflow's (amazon provider); this module only builds them and asks what exists.

The requests are typed against the AWS API model (``mypy_boto3_sagemaker``'s TypedDicts, a
test-only dependency imported for type checking alone): at run time they are plain dicts.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from mlplatform.adapters import settings
from mlplatform.core.records import ModelRef
from mlplatform.core.spec import UseCase

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.literals import ProcessingInstanceTypeType, TrainingInstanceTypeType
    from mypy_boto3_sagemaker.type_defs import (
        ContainerDefinitionTypeDef,
        CreateModelInputTypeDef,
        CreateProcessingJobRequestTypeDef,
        CreateTrainingJobRequestTypeDef,
        DataCaptureConfigTypeDef,
        OutputDataConfigTypeDef,
        TagTypeDef,
    )

SAGEMAKER_MODEL_DIR = "/opt/ml/model"  # where SageMaker puts the model data in the container
DEFAULT_CAPTURE_PERCENT = 100
# Captured as text (not base64) when a request or answer has one of these content types.
CAPTURE_JSON_TYPES = (
    "application/json",
    "application/jsonlines",
    "application/x-jsonlines",
    "application/jsonl",
    "application/x-ndjson",
)
CAPTURE_CSV_TYPES = ("text/csv",)


class NotConfigured(RuntimeError):
    """A setting SageMaker needs (published by Terraform) is missing; the message names it."""


class ModelDataNotInS3(RuntimeError):
    """A registered version's artifacts are not in S3, where SageMaker copies model data from."""


def digest(obj: Any, length: int = 8) -> str:
    """A short content hash of a JSON-able request: what makes SageMaker names idempotent."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:length]


def content_digest(request: Mapping[str, object], name_key: str, length: int = 8) -> str:
    """The digest of what a request asks for: everything but its name (``name_key``) and tags."""
    return digest({key: value for key, value in request.items() if key not in (name_key, "Tags")}, length)


def endpoint_name(use_case: UseCase) -> str:
    """The use case's SageMaker endpoint (SageMaker names allow letters, digits and dashes)."""
    return use_case.name.replace("_", "-")


class ImageNotReleased(RuntimeError):
    """The release's image tag is not in the ECR repository; the message names both."""


def serving_image() -> str:
    """The released serving image: ``<repository URL>:<tag>``, never ``:latest``.

    The repository is the ECR repository Terraform publishes (``MLPLATFORM_SERVING_IMAGE_URI``);
    the tag is the immutable one the release push recorded (``MLPLATFORM_SERVING_IMAGE_TAG``,
    SSM ``serving_image_tag``). A repository URL that already pins a tag or digest is used as is.
    """
    repository = settings.get("MLPLATFORM_SERVING_IMAGE_URI").strip()
    if not repository:
        raise NotConfigured(
            "MLPLATFORM_SERVING_IMAGE_URI is not set: run `terraform apply` (it publishes the ECR "
            "repository) and push the image built from include/serving/Dockerfile, or export the variable"
        )
    if "@" in repository or ":" in repository.rsplit("/", 1)[-1]:
        return repository
    tag = settings.get("MLPLATFORM_SERVING_IMAGE_TAG").strip()
    if not tag:
        raise NotConfigured(
            f"MLPLATFORM_SERVING_IMAGE_TAG is not set: no release of {repository} is recorded. Push the "
            "image with its release tag and record the tag (include/serving/README.md), or export it"
        )
    return f"{repository}:{tag}"


def check_image_released(ecr: Any, image: str) -> str:
    """Fail unless ``image`` (``<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>``) is in ECR.

    Asked before anything is created, so a deployment, job or transform of an image that was
    never pushed stops with the repository and tag named instead of a half-made endpoint.
    """
    from botocore.exceptions import ClientError

    registry_host, _, path = image.partition("/")
    repository, _, tag = path.partition(":")
    if "@" in path:
        repository, _, digest_ = path.partition("@")
        image_id = {"imageDigest": digest_}
    else:
        image_id = {"imageTag": tag}
    account = registry_host.split(".", 1)[0]
    try:
        ecr.describe_images(registryId=account, repositoryName=repository, imageIds=[image_id])
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code not in ("ImageNotFoundException", "RepositoryNotFoundException"):
            raise
        raise ImageNotReleased(
            f"image {image_id.get('imageTag') or image_id.get('imageDigest')} is not in the ECR repository "
            f"{repository} ({code}): push the release (include/serving/README.md) and record its tag in "
            "MLPLATFORM_SERVING_IMAGE_TAG; nothing was changed"
        ) from None
    return image


def released_image(ecr: Any) -> str:
    """The serving image of the recorded release, checked to exist in ECR."""
    return check_image_released(ecr, serving_image())


def endpoint_alarms(cloudwatch: Any, endpoint: str) -> list[str]:
    """The CloudWatch alarms of one endpoint: the ones that may roll back its updates.

    Terraform's convention: every alarm of an endpoint is named ``<endpoint>-...`` and has the
    dimension ``EndpointName=<endpoint>``. The prefix alone is not enough (``taxi`` is a prefix
    of ``taxi-tip``), so an alarm counts only when a dimension names this endpoint.
    """
    found = []
    pages = cloudwatch.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=f"{endpoint}-", AlarmTypes=["MetricAlarm"]
    )
    for alarm in (a for page in pages for a in page.get("MetricAlarms", [])):
        dimensions = list(alarm.get("Dimensions") or [])
        for query in alarm.get("Metrics") or []:  # metric-math alarms keep theirs per query
            dimensions += query.get("MetricStat", {}).get("Metric", {}).get("Dimensions", [])
        if {"Name": "EndpointName", "Value": endpoint} in dimensions:
            found.append(str(alarm["AlarmName"]))
    return sorted(found)


def execution_role() -> str:
    """The IAM role SageMaker runs the serving image as (published by Terraform)."""
    role = settings.get("MLPLATFORM_SAGEMAKER_ROLE_ARN")
    if not role:
        raise NotConfigured(
            "MLPLATFORM_SAGEMAKER_ROLE_ARN is not set: run `terraform apply` for this environment "
            "(it publishes the SageMaker execution role) or export the variable"
        )
    return role


def model_data_uri(ref: ModelRef, registry_client: Any = None) -> str:
    """The S3 prefix holding a registered version's MLflow model files (with a trailing slash).

    SageMaker copies that prefix, uncompressed, to ``/opt/ml/model`` in the container. Under
    MLflow 3 a version's source is its logged model (``models:/m-...``), resolved here to
    that model's artifact location; other sources go through the registry's download URI.
    Raises :class:`ModelDataNotInS3` when the artifacts are elsewhere: SageMaker can copy
    model data from S3 only.
    """
    from mlplatform.adapters import registry

    location = ref.source or ""
    if not location.startswith("s3://"):
        client = registry_client or registry.client()
        logged_model = re.fullmatch(r"models:/(m-[0-9a-f]+)/?", location)
        if logged_model:
            location = client.get_logged_model(logged_model.group(1)).artifact_location
        else:
            location = client.get_model_version_download_uri(ref.name, ref.version)
    if not location.startswith("s3://"):
        raise ModelDataNotInS3(
            f"the artifacts of {ref.name} version {ref.version} are at {location}, not in S3: SageMaker "
            "copies model data from S3 only. Point the MLflow server's artifact store at the bucket "
            "Terraform creates (MLPLATFORM_MLFLOW_ARTIFACT_URI), register the model again, then deploy"
        )
    return location.rstrip("/") + "/"


def model_request(
    use_case: UseCase, ref: ModelRef, image: str, role: str, registry_client: Any = None
) -> CreateModelInputTypeDef:
    """The CreateModel request serving one registered version.

    SageMaker copies the version's artifacts from S3 (:func:`model_data_uri`), uncompressed,
    to ``/opt/ml/model``; the container serves that directory and never needs the registry.
    """
    environment = {
        "MLPLATFORM_USE_CASE": use_case.name,
        "MLPLATFORM_MODEL_URI": SAGEMAKER_MODEL_DIR,
        "MLPLATFORM_MODEL_VERSION": ref.version,
        "MLPLATFORM_SERVING_POLL_SECONDS": "0",
        "MLPLATFORM_SERVING_LOG_PREDICTIONS": "0",  # SageMaker data capture records traffic there
    }
    container: ContainerDefinitionTypeDef = {
        "Image": image,
        "Mode": "SingleModel",
        "Environment": environment,
        "ModelDataSource": {
            "S3DataSource": {
                "S3Uri": model_data_uri(ref, registry_client),
                "S3DataType": "S3Prefix",
                "CompressionType": "None",
            }
        },
    }
    request: CreateModelInputTypeDef = {
        "ModelName": "",  # named after its content, below
        "PrimaryContainer": container,
        "ExecutionRoleArn": role,
        "Tags": tags(use_case, ref),
    }
    request["ModelName"] = (
        f"{endpoint_name(use_case)}-v{ref.version}-{content_digest(request, 'ModelName', 6)}"
    )
    return request


# -- data capture ------------------------------------------------------------------------------
def capture_prefix(use_case: str) -> str:
    """The lake prefix endpoints capture their traffic to.

    SageMaker writes ``<prefix>/<endpoint>/<variant>/YYYY/MM/DD/HH/<file>.jsonl`` below it.
    """
    return f"predictions/{use_case}/capture"


def capture_percent() -> int:
    """The share of requests captured (``MLPLATFORM_SERVING_CAPTURE_PERCENT``, 100 by default)."""
    raw = settings.get("MLPLATFORM_SERVING_CAPTURE_PERCENT").strip() or str(DEFAULT_CAPTURE_PERCENT)
    if not raw.isdigit() or not 0 < int(raw) <= 100:
        raise ValueError(
            f"MLPLATFORM_SERVING_CAPTURE_PERCENT must be a whole percent from 1 to 100, got {raw!r}"
        )
    return int(raw)


def data_capture_config(use_case: UseCase, lake_root: str, kms_key: str = "") -> DataCaptureConfigTypeDef:
    """The endpoint's DataCaptureConfig: requests and answers, to the lake's capture prefix.

    Monitoring reads these records for serving performance and per-variant metrics, so the
    lake must be in S3 (SageMaker writes capture files to S3 only).
    """
    if not lake_root.startswith("s3://"):
        raise NotConfigured(
            f"SageMaker endpoints capture their traffic to the lake, but the lake is {lake_root}: "
            "set MLPLATFORM_LAKE_URI to the lake bucket (Terraform publishes it), or use MLPLATFORM_ENV=local"
        )
    config: DataCaptureConfigTypeDef = {
        "EnableCapture": True,
        "InitialSamplingPercentage": capture_percent(),
        "DestinationS3Uri": f"{lake_root.rstrip('/')}/{capture_prefix(use_case.name)}",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {
            "CsvContentTypes": list(CAPTURE_CSV_TYPES),
            "JsonContentTypes": list(CAPTURE_JSON_TYPES),
        },
    }
    if kms_key:
        config["KmsKeyId"] = kms_key
    return config


def tags(use_case: UseCase, ref: ModelRef | None = None) -> list[TagTypeDef]:
    """Tags of every SageMaker resource of a use case (and of a model version)."""
    out: list[TagTypeDef] = [{"Key": "mlplatform:use_case", "Value": use_case.name}]
    if ref is not None:
        out.append({"Key": "mlplatform:model_version", "Value": f"{ref.name}/{ref.version}"})
    return out


Described = TypeVar("Described")


def existing(describe: Callable[..., Described], **name: str) -> Described | None:
    """What ``describe(**name)`` (a ``Describe*`` call) returns, or ``None`` when SageMaker has none."""
    from botocore.exceptions import ClientError

    try:
        return describe(**name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
            return None
        raise


# -- jobs: training and processing on the platform image ----------------------------------------
JOB_MODULE = ("python", "-m", "mlplatform.jobs")  # the entrypoint in the image (mlplatform/jobs.py)
JOB_VOLUME_GB = 30
TRAINING_MAX_SECONDS = 6 * 3600
PROCESSING_MAX_SECONDS = 3 * 3600
PROCESSING_OUTPUT_DIR = "/opt/ml/processing/output"


def job_name(use_case: UseCase, kind: str, request: Mapping[str, object], name_key: str) -> str:
    """``<use case>-<kind>-<hash>``: the same request twice is the same job (63 characters at most)."""
    return f"{endpoint_name(use_case)[:40]}-{kind}-{content_digest(request, name_key)}"


def _job_environment() -> dict[str, str]:
    """What a job needs to find the platform: the lake and the tracking server (no secrets)."""
    return {
        "MLPLATFORM_ENV": "local",  # inside the job everything it needs is given here
        "MLPLATFORM_LAKE_URI": settings.lake_uri(),
        "MLFLOW_TRACKING_URI": settings.get("MLFLOW_TRACKING_URI"),
        "OMP_WAIT_POLICY": "PASSIVE",
    }


def training_job_request(
    use_case: UseCase,
    image: str,
    role: str,
    channels: dict[str, str],
    hyperparameters: dict[str, str],
    output_uri: str,
) -> CreateTrainingJobRequestTypeDef:
    """The CreateTrainingJob request running ``python -m mlplatform.jobs train`` on the image.

    ``channels`` maps a channel name to the S3 prefix SageMaker copies to
    ``/opt/ml/input/data/<channel>``; ``hyperparameters`` reach the job as strings in
    ``/opt/ml/input/config/hyperparameters.json``; ``/opt/ml/model`` ends up as
    ``<output_uri>/<job name>/output/model.tar.gz``.
    """
    output: OutputDataConfigTypeDef = {"S3OutputPath": output_uri}
    if kms := settings.get("MLPLATFORM_SERVING_KMS_KEY_ARN"):
        output["KmsKeyId"] = kms
    request: CreateTrainingJobRequestTypeDef = {
        "TrainingJobName": "",  # named after its content, below
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "ContainerEntrypoint": [*JOB_MODULE, "train"],
        },
        "RoleArn": role,
        "HyperParameters": {key: str(value) for key, value in hyperparameters.items()},
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "InputMode": "File",
            }
            for channel, uri in sorted(channels.items())
        ],
        "OutputDataConfig": output,
        "ResourceConfig": {
            # The spec names any instance type; SageMaker refuses one it does not train on.
            "InstanceType": cast("TrainingInstanceTypeType", use_case.serving.instance_type),
            "InstanceCount": 1,
            "VolumeSizeInGB": JOB_VOLUME_GB,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": TRAINING_MAX_SECONDS},
        "Environment": _job_environment(),
        "Tags": tags(use_case),
    }
    request["TrainingJobName"] = job_name(use_case, "train", request, "TrainingJobName")
    return request


def processing_job_request(
    use_case: UseCase, image: str, role: str, arguments: list[str], output_uri: str
) -> CreateProcessingJobRequestTypeDef:
    """The CreateProcessingJob request running ``python -m mlplatform.jobs <arguments>`` on the image.

    What the job writes to ``/opt/ml/processing/output`` is uploaded to ``output_uri`` when it ends.
    """
    request: CreateProcessingJobRequestTypeDef = {
        "ProcessingJobName": "",  # named after its content, below
        "AppSpecification": {
            "ImageUri": image,
            "ContainerEntrypoint": list(JOB_MODULE),
            "ContainerArguments": arguments,
        },
        "RoleArn": role,
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                # The spec names any instance type; SageMaker refuses one it does not process on.
                "InstanceType": cast("ProcessingInstanceTypeType", use_case.serving.instance_type),
                "VolumeSizeInGB": JOB_VOLUME_GB,
            }
        },
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "output",
                    "S3Output": {
                        "S3Uri": output_uri,
                        "LocalPath": PROCESSING_OUTPUT_DIR,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": PROCESSING_MAX_SECONDS},
        "Environment": _job_environment(),
        "Tags": tags(use_case),
    }
    kind = arguments[0] if arguments else "job"
    request["ProcessingJobName"] = job_name(use_case, kind, request, "ProcessingJobName")
    return request


def failure_reason(client: Any, kind: str, name: str) -> str:
    """Why a SageMaker job or endpoint failed, as SageMaker records it (``kind``: Training,
    Processing, Transform or endpoint)."""
    operation, key = {
        "Training": ("describe_training_job", "TrainingJob"),
        "Processing": ("describe_processing_job", "ProcessingJob"),
        "Transform": ("describe_transform_job", "TransformJob"),
        "endpoint": ("describe_endpoint", "Endpoint"),
    }[kind]
    found = getattr(client, operation)(**{f"{key}Name": name})
    parts = [str(found[field]) for field in ("FailureReason", "ExitMessage") if found.get(field)]
    return f"{found.get(f'{key}Status', '?')}: {'; '.join(parts) or 'SageMaker recorded no reason'}"


def job_output_folder(use_case: str, kind: str, key: str) -> str:
    """The lake folder a job's outputs are uploaded to, keyed on the run that started it."""
    safe = re.sub(r"[^\w.\-]", "_", key)
    return f"features/{use_case}/jobs/{kind}/{safe}"
