"""docker-compose.yaml is valid, names what the README promises, and mounts what exists."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mlplatform.dev.commands import GENERATED_PASSWORDS

from conftest import REPO_ROOT, REQUIRE_SERVICES

COMPOSE = REPO_ROOT / "docker-compose.yaml"


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty ``--env-file``, so a developer's own ``.env`` never leaks into the checks."""
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return str(path)


@pytest.fixture(scope="module")
def config(empty_env_file: str) -> dict:
    """The file as docker-compose itself resolves it (anchors merged, variables expanded)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        if REQUIRE_SERVICES:
            pytest.fail("docker-compose is not installed; `make test` installs it (Debian package)")
        pytest.skip("docker-compose is not installed (Debian package docker-compose; `make system-deps`)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW", "MLPLATFORM"))}
    # The passwords a generated .env provides (compose refuses to start without them).
    env.update({name: f"test-{name.lower()}" for name, _ in GENERATED_PASSWORDS})
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "--env-file", empty_env_file, "--profile", "celery", "config"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_has_the_platform_services(config: dict) -> None:
    expected = {
        "postgres",
        "redis",
        "minio",
        "minio-init",
        "mlflow",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-init",
        "serving",
        "webhook-sink",
    }
    assert expected <= set(config["services"])


def test_every_service_the_readme_names_exists(config: dict) -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## docker-compose", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.M))
    assert named, "the README's docker-compose section lists no services"
    assert named <= set(config["services"]), named - set(config["services"])
    assert set(config["services"]) <= named, "every service should be documented in the README"


def _mounts(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each volume, in the long or the short syntax."""
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            out.append((volume["source"], volume["target"]))
        else:
            source, target = volume.split(":")[:2]
            out.append((source, target))
    return out


def test_every_mounted_path_exists(config: dict) -> None:
    for name, service in config["services"].items():
        for source, _ in _mounts(service):
            if source.startswith(("/", ".")):  # a bind mount; others are named volumes
                assert Path(source).exists(), f"{name} mounts {source}, which does not exist"
        build = service.get("build")
        if build:
            dockerfile = Path(build["context"]) / build.get("dockerfile", "Dockerfile")
            assert dockerfile.exists(), f"{name} builds from {dockerfile}, which does not exist"


def test_airflow_services_share_the_bundle_and_package(config: dict) -> None:
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        service = config["services"][name]
        targets = {target for _, target in _mounts(service)}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= targets
        assert "/opt/airflow/great_expectations" in targets
        assert service["environment"]["PYTHONPATH"] == "/opt/airflow/include"
        assert "healthcheck" in service


def test_no_anonymous_admin(config: dict) -> None:
    env = config["services"]["airflow-apiserver"]["environment"]
    assert env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "false").lower() != "true"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET_CMD"].startswith("cat ")


def test_a_missing_password_stops_compose_with_a_message(config: dict, empty_env_file: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW", "MLPLATFORM"))}
    for name, _ in GENERATED_PASSWORDS:
        env.pop(name, None)
    result = subprocess.run(
        [
            shutil.which("docker-compose") or "docker-compose",
            "-f",
            str(COMPOSE),
            "--env-file",
            empty_env_file,
            "config",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO_ROOT,
    )
    assert result.returncode != 0
    assert "PASSWORD" in result.stderr and "mlplatform.dev.commands env-file" in result.stderr


def test_the_triggerer_runs_beside_the_scheduler(config: dict) -> None:
    triggerer = config["services"]["airflow-triggerer"]
    assert "triggerer" in str(triggerer["command"])
    assert triggerer["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
