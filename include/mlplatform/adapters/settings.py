"""Runtime settings: where the lake, the tracking server and the alert sink are.

Two environments exist. ``local`` (the embedded default) needs nothing: every setting
has a default under ``.local/`` in the repository. ``aws`` reads each setting from the
process environment first and otherwise from the SSM parameter that Terraform publishes
under ``MLPLATFORM_SSM_PREFIX`` (``/mlplatform/<env>`` by default), so nothing is copied
by hand between ``terraform apply`` and Airflow.

The table ``SETTINGS`` is the single list of what the code reads; the Terraform wiring
test checks it against the parameters that ``infra/`` publishes.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
LOCAL_HOME = Path(os.getenv("MLPLATFORM_HOME", str(REPO_ROOT / ".local")))


@dataclass(frozen=True)
class Setting:
    """One configurable value.

    ``env`` is the environment variable that always wins. ``parameter`` is the name of
    the SSM parameter below the prefix that holds the value in the ``aws`` environment
    (``None``: the setting is never published by Terraform). ``local`` is the embedded
    default.
    """

    env: str
    description: str
    local: str | None
    parameter: str | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("MLPLATFORM_LAKE_URI", "Root URI of the data lake.", (LOCAL_HOME / "lake").as_uri(), "lake_uri"),
    Setting(
        "MLFLOW_TRACKING_URI",
        "MLflow tracking server (also the model registry).",
        "http://127.0.0.1:5000",
        "mlflow_tracking_uri",
    ),
    Setting(
        "MLPLATFORM_MLFLOW_ARTIFACT_URI",
        "Where the MLflow server stores artifacts.",
        (LOCAL_HOME / "mlflow" / "artifacts").as_uri(),
        "mlflow_artifact_uri",
    ),
    Setting(
        "MLPLATFORM_SLACK_WEBHOOK_URL",
        "Incoming webhook for alerts when no Airflow Slack connection is configured.",
        "http://127.0.0.1:8765/hooks/alerts",
        None,
    ),
    Setting(
        "MLPLATFORM_SLACK_CONN_ID",
        "Airflow connection id of the Slack incoming webhook (secret in Secrets Manager).",
        "",
        "slack_conn_id",
    ),
    Setting(
        "MLPLATFORM_GX_ROOT",
        "Great Expectations file data context (a writable copy where the repository is read-only).",
        str(REPO_ROOT / "great_expectations"),
        None,
    ),
    Setting(
        "MLPLATFORM_SERVING_URL", "Base URL of the real-time serving app.", "http://127.0.0.1:8000", None
    ),
    Setting(
        "MLPLATFORM_SAGEMAKER_ROLE_ARN",
        "Execution role SageMaker models and batch transform jobs run as.",
        "",
        "sagemaker_execution_role_arn",
    ),
    Setting(
        "MLPLATFORM_SERVING_IMAGE_URI", "ECR repository URL of the serving image.", "", "serving_image_uri"
    ),
    Setting(
        "MLPLATFORM_SERVING_ALARM_NAMES",
        "Comma-separated CloudWatch alarms that roll back a blue/green endpoint update.",
        "",
        "serving_alarm_names",
    ),
    Setting(
        "MLPLATFORM_SERVING_KMS_KEY_ARN",
        "KMS key that encrypts endpoint storage and batch transform output.",
        "",
        "serving_kms_key_arn",
    ),
    Setting(
        "MLPLATFORM_ALERTS_TOPIC_ARN", "SNS topic that CloudWatch alarms publish to.", "", "alerts_topic_arn"
    ),
)

_BY_ENV = {s.env: s for s in SETTINGS}


def environment() -> str:
    """The active environment, ``local`` or ``aws`` (``MLPLATFORM_ENV``)."""
    env = os.getenv("MLPLATFORM_ENV", "local")
    if env not in ("local", "aws"):
        raise ValueError(f"MLPLATFORM_ENV must be 'local' or 'aws', got {env!r}")
    return env


def ssm_prefix() -> str:
    """Prefix of the SSM parameters Terraform publishes (``MLPLATFORM_SSM_PREFIX``)."""
    return os.getenv("MLPLATFORM_SSM_PREFIX", "/mlplatform/dev").rstrip("/")


@functools.cache
def _ssm_value(name: str) -> str:
    import boto3

    response = boto3.client("ssm").get_parameter(Name=name, WithDecryption=True)
    return response["Parameter"]["Value"]


def get(env_name: str) -> str:
    """The value of one setting, by its environment variable name.

    Raises ``KeyError`` for a name that is not in ``SETTINGS`` and ``RuntimeError`` when
    the ``aws`` environment has neither the variable nor a published parameter.
    """
    setting = _BY_ENV[env_name]
    if (value := os.getenv(setting.env)) is not None:
        return value
    if environment() == "local" or setting.parameter is None:
        return setting.local or ""
    name = f"{ssm_prefix()}/{setting.parameter}"
    try:
        return _ssm_value(name)
    except Exception as exc:  # botocore raises several unrelated types here
        raise RuntimeError(
            f"setting {setting.env} is not set and SSM parameter {name} could not be read ({exc}); "
            "run `terraform apply` for this environment or export the variable"
        ) from exc


def lake_uri() -> str:
    return get("MLPLATFORM_LAKE_URI")


def tracking_uri() -> str:
    return get("MLFLOW_TRACKING_URI")
