"""Runtime settings in one typed place: where the lake, the tracking server and the alert sink
are, and how the local platform runs.

Each setting is looked up in this order, the first that has it wins:

1. the process environment (a variable that is set wins even when empty);
2. the ``.env`` file: ``MLPLATFORM_ENV_FILE`` if set, else ``.env`` in the working
   directory (``make`` runs from the repository root); a blank value there documents a
   variable without setting it;
3. in the ``aws`` environment (``MLPLATFORM_ENV=aws``), the SSM parameter Terraform
   publishes under ``MLPLATFORM_SSM_PREFIX`` (``/mlplatform/dev`` by default), so nothing is
   copied by hand between ``terraform apply`` and Airflow;
4. the embedded default (everything under ``.local/`` in the repository).

:class:`PlatformSettings` is the pydantic-settings model of the table ``SETTINGS`` (the
single list of what the code reads; the Terraform wiring test checks it against the
parameters ``infra/`` publishes), and :func:`load` returns it filled in that order.
:func:`get` reads one value; :func:`effective_settings` lists every value with where it
came from, secrets masked (``mlplatform config`` prints it).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import create_model
from pydantic_settings import BaseSettings, DotEnvSettingsSource, EnvSettingsSource, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[3]
ENV_FILE_VARIABLE = "MLPLATFORM_ENV_FILE"
MASK = "********"


@dataclass(frozen=True)
class Setting:
    """One configurable value.

    ``env`` is the variable name (in the environment and in ``.env``). ``parameter`` is the
    name of the SSM parameter below the prefix that holds the value in the ``aws``
    environment (``None``: never published by Terraform). ``local`` is the embedded
    default. ``secret`` values are masked wherever settings are shown.
    """

    env: str
    description: str
    local: str | None
    parameter: str | None = None
    secret: bool = False


@dataclass(frozen=True)
class EffectiveSetting:
    """A setting's value now (masked when secret) and where it came from."""

    name: str
    value: str
    source: str


def env_file() -> Path:
    """The ``.env`` file read after the environment (it need not exist)."""
    return Path(os.environ.get(ENV_FILE_VARIABLE) or ".env").expanduser()


class _Base(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")


def _home() -> Path:
    """``MLPLATFORM_HOME`` from the environment or ``.env``; read once, the defaults depend on it."""
    value = os.environ.get("MLPLATFORM_HOME") or _dotenv_values(("MLPLATFORM_HOME",)).get("MLPLATFORM_HOME")
    return Path(value).expanduser().resolve() if value else REPO_ROOT / ".local"


def _dotenv_values(names: tuple[str, ...]) -> dict[str, str]:
    path = env_file()
    try:
        stat = path.stat()
    except OSError:
        return {}
    if not path.is_file():
        raise ValueError(f"{path} is not a file: point {ENV_FILE_VARIABLE} at a .env file or remove it")
    found = _read_dotenv(str(path.resolve()), stat.st_mtime_ns, stat.st_size, names)
    return {k: v for k, v in found.items() if v != ""}


@functools.lru_cache(maxsize=16)
def _read_dotenv(path: str, _mtime_ns: int, _size: int, names: tuple[str, ...]) -> dict[str, str]:
    """The values of ``names`` in the file (cached until the file changes)."""
    model = create_model("DotEnv", __base__=_Base, **{n: (str | None, None) for n in names})  # type: ignore[call-overload]
    values = DotEnvSettingsSource(model, env_file=path, case_sensitive=True)()
    return {name: str(values[name]) for name in names if values.get(name) is not None}


LOCAL_HOME = _home()


def _uri(path: Path) -> str:
    return path.as_uri()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "MLPLATFORM_ENV", "Active environment: local (embedded default, docker-compose) or aws.", "local"
    ),
    Setting("MLPLATFORM_SSM_PREFIX", "Prefix of the SSM parameters Terraform publishes.", "/mlplatform/dev"),
    Setting("MLPLATFORM_HOME", "Home of the embedded platform (lake, stores, logs, pids).", str(LOCAL_HOME)),
    Setting("MLPLATFORM_LAKE_URI", "Root URI of the data lake.", _uri(LOCAL_HOME / "lake"), "lake_uri"),
    Setting(
        "MLFLOW_TRACKING_URI",
        "MLflow tracking server (also the model registry).",
        "http://127.0.0.1:5000",
        "mlflow_tracking_uri",
    ),
    Setting("MLFLOW_TRACKING_USERNAME", "MLflow basic-auth user (docker-compose: admin).", ""),
    Setting("MLFLOW_TRACKING_PASSWORD", "MLflow basic-auth password.", "", secret=True),
    Setting(
        "MLPLATFORM_MLFLOW_ARTIFACT_URI",
        "Where the MLflow server stores artifacts.",
        _uri(LOCAL_HOME / "mlflow" / "artifacts"),
        "mlflow_artifact_uri",
    ),
    Setting(
        "MLPLATFORM_SLACK_WEBHOOK_URL",
        "Incoming webhook for alerts when no Airflow Slack connection is configured.",
        "http://127.0.0.1:8765/hooks/alerts",
        secret=True,  # a real Slack webhook URL is a credential
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
    ),
    Setting("MLPLATFORM_SERVING_URL", "Base URL of the real-time serving app.", "http://127.0.0.1:8000"),
    Setting(
        "MLPLATFORM_SERVING_ADMIN_TOKEN",
        "Bearer token of the serving app's admin routes (the embedded platform generates it).",
        "",
        secret=True,
    ),
    Setting(
        "MLPLATFORM_SERVING_CAPTURE_PERCENT",
        "Share of SageMaker endpoint requests captured to the lake for monitoring (1 to 100; empty: 100).",
        "",
    ),
    Setting(
        "MLPLATFORM_SERVING_MAX_BODY_BYTES", "Largest request body the serving app reads (empty: 8 MiB).", ""
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
        "MLPLATFORM_SERVING_IMAGE_TAG",
        "Immutable tag of the released serving image in that repository (the release push records it).",
        "",
        "serving_image_tag",
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
    # The embedded platform (make run): where its processes listen and what they store in.
    Setting("MLPLATFORM_BIND_HOST", "Address every embedded process listens on.", "127.0.0.1"),
    Setting("MLPLATFORM_AIRFLOW_PORT", "Port of the embedded Airflow api-server.", "8080"),
    Setting("MLPLATFORM_MLFLOW_PORT", "Port of the embedded MLflow server.", "5000"),
    Setting("MLPLATFORM_SINK_PORT", "Port of the embedded Slack webhook sink.", "8765"),
    Setting("MLPLATFORM_SERVING_PORT", "Port of the embedded serving app.", "8000"),
    Setting("MLPLATFORM_AIRFLOW_DB_URI", "Airflow metadata database (default: SQLite in the home).", ""),
    Setting("MLPLATFORM_MLFLOW_BACKEND_URI", "MLflow backend store (default: SQLite in the home).", ""),
    Setting(
        "MLPLATFORM_SCHEDULES",
        "on: DAGs follow their schedules and Assets; off: manual runs only (the closed loop triggers "
        "every DAG itself). Read when DAG files are parsed.",
        "on",
    ),
    # Landing raw months (the ingest DAG).
    Setting(
        "MLPLATFORM_RAW_SOURCE_URI",
        "Where new raw TLC months are published (a URL or lake-style URI prefix).",
        "https://d37ci6vzurychx.cloudfront.net/trip-data",
    ),
    Setting("MLPLATFORM_RAW_DEADLINE_DAYS", "Days after a month's end by which its raw files are due.", "75"),
    Setting(
        "MLPLATFORM_RAW_POKE_MINUTES",
        "Minutes between the triggerer's checks for a month's raw files while the ingest DAG waits.",
        "360",
    ),
    Setting(
        "MLPLATFORM_ALERTS_URL",
        "Where people read alerts (the MLOps page links it); empty: the local sink.",
        "",
    ),
)

_BY_ENV = {s.env: s for s in SETTINGS}
_NAMES = tuple(_BY_ENV)

PlatformSettings: type[BaseSettings] = create_model(  # type: ignore[call-overload]
    "PlatformSettings",
    __base__=_Base,
    __doc__="Every setting of ``SETTINGS`` as a typed field named after its variable.",
    **{s.env: (str, s.local or "") for s in SETTINGS},
)


def _environment_values() -> dict[str, str]:
    values = EnvSettingsSource(PlatformSettings, case_sensitive=True)()
    return {name: str(value) for name, value in values.items() if name in _BY_ENV and value is not None}


def _early(name: str) -> str:
    """A setting that decides where the others come from: environment, ``.env``, default."""
    if (value := os.environ.get(name)) is not None:
        return value
    return _dotenv_values((name,)).get(name) or _BY_ENV[name].local or ""


def environment() -> str:
    """The active environment, ``local`` or ``aws`` (``MLPLATFORM_ENV``)."""
    env = _early("MLPLATFORM_ENV")
    if env not in ("local", "aws"):
        raise ValueError(f"MLPLATFORM_ENV must be 'local' or 'aws', got {env!r}")
    return env


def ssm_prefix() -> str:
    """Prefix of the SSM parameters Terraform publishes (``MLPLATFORM_SSM_PREFIX``)."""
    return _early("MLPLATFORM_SSM_PREFIX").rstrip("/")


@functools.cache
def _ssm_value(name: str) -> str:
    import boto3

    response = boto3.client("ssm").get_parameter(Name=name, WithDecryption=True)
    return str(response["Parameter"]["Value"])


def _lookup(setting: Setting) -> tuple[str, str]:
    """The value of ``setting`` and its source, in the documented order."""
    if (value := os.environ.get(setting.env)) is not None:
        return value, "environment"
    if (value := _dotenv_values(_NAMES).get(setting.env)) is not None:
        return value, f".env ({env_file()})"
    if environment() == "aws" and setting.parameter is not None:
        name = f"{ssm_prefix()}/{setting.parameter}"
        try:
            return _ssm_value(name), f"ssm ({name})"
        except Exception as exc:  # botocore raises several unrelated types here
            raise RuntimeError(
                f"setting {setting.env} is not set and SSM parameter {name} could not be read ({exc}); "
                "run `terraform apply` for this environment or export the variable"
            ) from exc
    return setting.local or "", "default"


def get(env_name: str) -> str:
    """The value of one setting, by its variable name.

    Raises ``KeyError`` for a name that is not in ``SETTINGS`` and ``RuntimeError`` when
    the ``aws`` environment has neither the variable nor a published parameter.
    """
    return _lookup(_BY_ENV[env_name])[0]


def explicit(env_name: str) -> str | None:
    """The value of a setting only when something set it (environment, ``.env`` or SSM)."""
    value, source = _lookup(_BY_ENV[env_name])
    return None if source == "default" else value


def load() -> BaseSettings:
    """Every setting as a :class:`PlatformSettings`, filled in the documented order."""
    return PlatformSettings.model_validate({s.env: get(s.env) for s in SETTINGS})


def masked(setting: Setting, value: str) -> str:
    """``value`` as it may be shown: secrets hidden, passwords in URIs hidden."""
    if setting.secret and value:
        return MASK
    return re.sub(r"(://[^/:@\s]+:)[^/@\s]+@", rf"\1{MASK}@", value)


def effective_settings() -> list[EffectiveSetting]:
    """Every setting, its value (secrets masked) and where it came from, in table order."""
    found = []
    for setting in SETTINGS:
        try:
            value, source = _lookup(setting)
        except RuntimeError as exc:
            value, source = "", f"unavailable: {exc}"
        found.append(EffectiveSetting(setting.env, masked(setting, value), source))
    return found


def lake_uri() -> str:
    return get("MLPLATFORM_LAKE_URI")


def tracking_uri() -> str:
    """The MLflow tracking URI; also hands MLflow the basic-auth credentials from the settings.

    MLflow reads ``MLFLOW_TRACKING_USERNAME`` and ``MLFLOW_TRACKING_PASSWORD`` from the
    process environment only: values that came from ``.env`` or SSM are put there (never
    over ones already set), so every caller that asks for the tracking URI can also log in.
    """
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        if name not in os.environ and (value := get(name)):
            os.environ[name] = value
    return get("MLFLOW_TRACKING_URI")
