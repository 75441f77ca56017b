"""SageMaker: names, requests and look-ups shared by deployment and batch transform.

Names are content-addressed (``<use case>-v<version>-<hash>``), so a request made twice
creates nothing twice. The operators that send the requests are Airflow's (amazon
provider); this module only builds them and asks what exists.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mlplatform.adapters import settings
from mlplatform.core.records import ModelRef
from mlplatform.core.spec import UseCase


class NotConfigured(RuntimeError):
    """A setting SageMaker needs (published by Terraform) is missing; the message names it."""


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


def model_request(use_case: UseCase, ref: ModelRef, image: str, role: str) -> dict[str, Any]:
    """The CreateModel request serving one registered version.

    Artifacts in S3 are handed to the container by SageMaker itself (uncompressed, at
    ``/opt/ml/model``); otherwise the container loads the version from the registry.
    """
    environment = {
        "MLPLATFORM_USE_CASE": use_case.name,
        "MLPLATFORM_MODEL_VERSION": ref.version,
        "MLPLATFORM_SERVING_POLL_SECONDS": "0",
        "MLPLATFORM_SERVING_LOG_PREDICTIONS": "0",  # SageMaker data capture records traffic there
    }
    container: dict[str, Any] = {"Image": image, "Mode": "SingleModel", "Environment": environment}
    if ref.source and ref.source.startswith("s3://"):
        container["ModelDataSource"] = {
            "S3DataSource": {
                "S3Uri": ref.source.rstrip("/") + "/",
                "S3DataType": "S3Prefix",
                "CompressionType": "None",
            }
        }
        environment["MLPLATFORM_MODEL_URI"] = "/opt/ml/model"
    else:
        environment["MLPLATFORM_MODEL_URI"] = ref.uri
        environment["MLFLOW_TRACKING_URI"] = settings.tracking_uri()
    request = {"PrimaryContainer": container, "ExecutionRoleArn": role}
    name = f"{endpoint_name(use_case)}-v{ref.version}-{digest(request, 6)}"
    return {"ModelName": name, **request, "Tags": tags(use_case, ref)}


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
        return describe(**name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
            return None
        raise
