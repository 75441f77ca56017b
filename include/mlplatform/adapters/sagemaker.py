"""SageMaker: names, requests and look-ups shared by deployment and batch transform.

Names are content-addressed (``<use case>-v<version>-<hash>``), so a request made twice
creates nothing twice. A model's data is the registered version's MLflow model files in S3,
which SageMaker copies to ``/opt/ml/model``; endpoints capture their traffic to the lake
(:func:`data_capture_config`), where monitoring reads it. The operators that send the
requests are Airflow's (amazon provider); this module only builds them and asks what exists.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from mlplatform.adapters import settings
from mlplatform.core.records import ModelRef
from mlplatform.core.spec import UseCase

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


def endpoint_name(use_case: UseCase) -> str:
    """The use case's SageMaker endpoint (SageMaker names allow letters, digits and dashes)."""
    return use_case.name.replace("_", "-")


def serving_image() -> str:
    """The serving image: the ECR repository Terraform publishes, ``:latest`` unless tagged."""
    image = settings.get("MLPLATFORM_SERVING_IMAGE_URI")
    if not image:
        raise NotConfigured(
            "MLPLATFORM_SERVING_IMAGE_URI is not set: run `terraform apply` (it publishes the ECR "
            "repository) and push the image built from include/serving/Dockerfile, or export the variable"
        )
    last = image.rsplit("/", 1)[-1]
    return image if (":" in last or "@" in image) else f"{image}:latest"


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
) -> dict[str, Any]:
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
    container: dict[str, Any] = {
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
    request = {"PrimaryContainer": container, "ExecutionRoleArn": role}
    name = f"{endpoint_name(use_case)}-v{ref.version}-{digest(request, 6)}"
    return {"ModelName": name, **request, "Tags": tags(use_case, ref)}


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


def data_capture_config(use_case: UseCase, lake_root: str, kms_key: str = "") -> dict[str, Any]:
    """The endpoint's DataCaptureConfig: requests and answers, to the lake's capture prefix.

    Monitoring reads these records for serving performance and per-variant metrics, so the
    lake must be in S3 (SageMaker writes capture files to S3 only).
    """
    if not lake_root.startswith("s3://"):
        raise NotConfigured(
            f"serving.target sagemaker captures endpoint traffic to the lake, but the lake is {lake_root}: "
            "set MLPLATFORM_LAKE_URI to the lake bucket (Terraform publishes it) or use serving.target local"
        )
    config: dict[str, Any] = {
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


def tags(use_case: UseCase, ref: ModelRef | None = None) -> list[dict[str, str]]:
    """Tags of every SageMaker resource of a use case (and of a model version)."""
    out = [{"Key": "mlplatform:use_case", "Value": use_case.name}]
    if ref is not None:
        out.append({"Key": "mlplatform:model_version", "Value": f"{ref.name}/{ref.version}"})
    return out


def existing(describe: Any, **name: str) -> dict[str, Any] | None:
    """What ``describe(**name)`` returns, or ``None`` when SageMaker has no such resource."""
    from botocore.exceptions import ClientError

    try:
        found: dict[str, Any] = describe(**name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
            return None
        raise
    return found
