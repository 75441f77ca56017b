"""Settings come from the environment, then .env, then SSM (aws), then the defaults; the
effective values name their source and never show a secret."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from mlplatform.adapters import settings

SETTING_VARIABLES = [s.env for s in settings.SETTINGS]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No setting in the environment, and an empty working directory (no stray .env)."""
    for name in [*SETTING_VARIABLES, settings.ENV_FILE_VARIABLE]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def effective() -> dict[str, settings.EffectiveSetting]:
    return {s.name: s for s in settings.effective_settings()}


def test_dotenv_in_the_working_directory_is_honoured(clean_environment: Path) -> None:
    (clean_environment / ".env").write_text(
        "# a comment\nMLPLATFORM_LAKE_URI=s3://from-dotenv/lake\nUNRELATED=1\nMLPLATFORM_SERVING_IMAGE_URI=\n"
    )
    assert settings.lake_uri() == "s3://from-dotenv/lake"
    shown = effective()
    assert shown["MLPLATFORM_LAKE_URI"].source == f".env ({Path('.env')})"
    # A blank value documents the variable without setting it.
    assert shown["MLPLATFORM_SERVING_IMAGE_URI"].source == "default"


def test_the_environment_overrides_dotenv(clean_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_environment / ".env").write_text("MLFLOW_TRACKING_URI=http://dotenv:5000\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://environment:5000")
    assert settings.tracking_uri() == "http://environment:5000"
    assert effective()["MLFLOW_TRACKING_URI"].source == "environment"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert settings.tracking_uri() == "http://dotenv:5000"  # a change is seen without a restart


def test_mlplatform_env_file_names_another_file(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = clean_environment / "conf" / "platform.env"
    other.parent.mkdir()
    other.write_text("MLPLATFORM_SERVING_URL=http://serving.example:8000\n")
    (clean_environment / ".env").write_text("MLPLATFORM_SERVING_URL=http://ignored:1\n")
    monkeypatch.setenv(settings.ENV_FILE_VARIABLE, str(other))
    assert settings.get("MLPLATFORM_SERVING_URL") == "http://serving.example:8000"
    assert effective()["MLPLATFORM_SERVING_URL"].source == f".env ({other})"


def test_a_directory_as_env_file_is_a_clear_error(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(settings.ENV_FILE_VARIABLE, str(clean_environment))
    with pytest.raises(ValueError, match="is not a file"):
        settings.get("MLPLATFORM_SERVING_URL")


def test_defaults_apply_when_nothing_sets_a_value() -> None:
    shown = effective()
    assert shown["MLPLATFORM_BIND_HOST"].value == "127.0.0.1"
    assert {s.source for s in shown.values()} == {"default"}
    assert list(shown) == SETTING_VARIABLES
    assert settings.load().model_dump()["MLPLATFORM_ENV"] == "local"  # type: ignore[attr-defined]


def test_secrets_are_masked(clean_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_environment / ".env").write_text("MLFLOW_TRACKING_PASSWORD=hunter2-from-dotenv\n")
    monkeypatch.setenv("MLPLATFORM_SERVING_ADMIN_TOKEN", "token-value-xyz")
    monkeypatch.setenv("MLPLATFORM_AIRFLOW_DB_URI", "postgresql+psycopg2://airflow:pg-secret@db:5432/airflow")
    shown = effective()
    everything = repr(shown)
    for secret in ("hunter2-from-dotenv", "token-value-xyz", "pg-secret"):
        assert secret not in everything
    assert shown["MLFLOW_TRACKING_PASSWORD"].value == settings.MASK
    assert (
        shown["MLPLATFORM_AIRFLOW_DB_URI"].value
        == f"postgresql+psycopg2://airflow:{settings.MASK}@db:5432/airflow"
    )
    assert settings.get("MLPLATFORM_SERVING_ADMIN_TOKEN") == "token-value-xyz"  # masked only when shown


def test_mlflow_credentials_from_dotenv_reach_mlflow(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_environment / ".env").write_text("MLFLOW_TRACKING_USERNAME=admin\nMLFLOW_TRACKING_PASSWORD=pw\n")
    import os

    settings.tracking_uri()
    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == ("admin", "pw")


def test_aws_reads_published_ssm_parameters_after_env_and_dotenv(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch, moto_endpoint: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    prefix = f"/mlplatform/test-{clean_environment.name[-8:]}"
    ssm = boto3.client("ssm", endpoint_url=moto_endpoint)
    ssm.put_parameter(Name=f"{prefix}/lake_uri", Value="s3://from-ssm/lake", Type="String")
    ssm.put_parameter(Name=f"{prefix}/mlflow_tracking_uri", Value="http://from-ssm:5000", Type="String")
    ssm.put_parameter(Name=f"{prefix}/serving_image_uri", Value="1234.dkr.ecr/img", Type="String")
    (clean_environment / ".env").write_text(
        f"MLPLATFORM_ENV=aws\nMLPLATFORM_SSM_PREFIX={prefix}\nMLFLOW_TRACKING_URI=http://from-dotenv:5000\n"
    )
    monkeypatch.setenv("MLPLATFORM_SERVING_IMAGE_URI", "from-environment")
    assert settings.environment() == "aws"
    assert settings.lake_uri() == "s3://from-ssm/lake"
    assert settings.tracking_uri() == "http://from-dotenv:5000"
    assert settings.get("MLPLATFORM_SERVING_IMAGE_URI") == "from-environment"
    shown = effective()
    assert shown["MLPLATFORM_LAKE_URI"].source == f"ssm ({prefix}/lake_uri)"
    assert shown["MLPLATFORM_ENV"].source.startswith(".env")
    # A published parameter that is missing is named, with what to do.
    with pytest.raises(RuntimeError, match=f"{prefix}/sagemaker_execution_role_arn.*terraform apply"):
        settings.get("MLPLATFORM_SAGEMAKER_ROLE_ARN")
    assert shown["MLPLATFORM_SAGEMAKER_ROLE_ARN"].source.startswith("unavailable")


REPO_ROOT = Path(__file__).resolve().parents[1]


def test_env_example_documents_every_variable_the_bundle_reads() -> None:
    """`.env.example` lists every ``MLPLATFORM_*`` variable the package, DAGs and plugins read,
    and none that nothing reads any more."""
    import re

    sources = [
        p for folder in ("include/mlplatform", "dags", "plugins") for p in (REPO_ROOT / folder).rglob("*.py")
    ]
    read = {v for p in sources for v in re.findall(r"MLPLATFORM_[A-Z0-9_]*[A-Z0-9]", p.read_text())}
    example = (REPO_ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*(MLPLATFORM_[A-Z0-9_]+)=", example, re.MULTILINE))
    # Test-only switches and variables a process sets for its own children.
    internal = {"MLPLATFORM_REQUIRE_SERVICES", "MLPLATFORM_JOB_ROOT", "MLPLATFORM_SERVING_WORKER_MARKS"}
    assert sorted(read - listed - internal) == []
    assert sorted(listed - read - internal) == []
