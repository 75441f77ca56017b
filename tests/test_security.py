"""No secret is committed, nothing runs with an anonymous admin or hard-coded login, and the
defaults are safe: the embedded platform listens on loopback and keeps its secrets private,
docker-compose publishes on loopback and takes generated passwords from .env."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT, free_port

PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(r"aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "Slack webhook": re.compile(r"hooks\.slack\.com/services/T[A-Z0-9]{8,}/B[A-Z0-9]{8,}/[A-Za-z0-9]{24}"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "Fernet or JWT secret": re.compile(r"(FERNET_KEY|JWT_SECRET)\s*[=:]\s*['\"]?[A-Za-z0-9_\-]{32,}"),
}


def _tracked_files() -> list[str]:
    result = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip("not a git checkout")
    return [f for f in result.stdout.splitlines() if not f.endswith((".parquet", ".png", ".lock"))]


def test_no_secrets_in_the_repository() -> None:
    found = []
    for name in _tracked_files():
        path = REPO_ROOT / name
        if not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        found += [f"{name}: {kind}" for kind, pattern in PATTERNS.items() if pattern.search(text)]
    assert found == []


def test_the_scanner_finds_what_it_looks_for() -> None:
    samples = [
        "AKIA" + "ABCDEFGHIJKLMNOP",
        "-----BEGIN RSA " + "PRIVATE KEY-----",
        "https://hooks.slack.com/services/" + "T01234567/B01234567/" + "a" * 24,
        "xoxb-" + "1234567890-abc",
    ]
    assert all(any(p.search(s) for p in PATTERNS.values()) for s in samples)


def test_no_anonymous_admin_anywhere() -> None:
    for name in _tracked_files():
        path = REPO_ROOT / name
        if path.is_file() and name.endswith((".py", ".yaml", ".yml", ".cfg", ".env.example", ".tf")):
            text = path.read_text(errors="ignore")
            assert not re.search(r"SIMPLE_AUTH_MANAGER_ALL_ADMINS\W+['\"]?true", text, re.I), name


# -- safe defaults of the embedded platform ----------------------------------------------------
LOOPBACK = "127.0.0.1"


def _argument(argv: tuple[str, ...], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_every_embedded_process_binds_loopback_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplatform.dev.embedded import Platform

    monkeypatch.delenv("MLPLATFORM_BIND_HOST", raising=False)
    platform = Platform(home=tmp_path)
    services = {s.name: s for s in platform.services()}
    for name in ("webhook-sink", "mlflow", "airflow-api-server", "serving"):
        assert _argument(services[name].argv, "--host") == LOOPBACK, name
    assert platform.env()["AIRFLOW__API__HOST"] == LOOPBACK
    assert {"airflow-scheduler", "airflow-triggerer", "airflow-dag-processor"} <= set(services)
    # Told otherwise, they follow.
    monkeypatch.setenv("MLPLATFORM_BIND_HOST", "0.0.0.0")
    everywhere = {s.name: s for s in Platform(home=tmp_path).services()}
    assert _argument(everywhere["mlflow"].argv, "--host") == "0.0.0.0"


def _listening(port: int) -> set[str]:
    """Local addresses (IPv4, dotted) with a socket listening on ``port``, from /proc."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc to read listening sockets")
def test_a_running_embedded_process_listens_on_loopback_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplatform.dev.embedded import Platform

    monkeypatch.delenv("MLPLATFORM_BIND_HOST", raising=False)
    platform = Platform(home=tmp_path, sink_port=free_port())
    (sink,) = [s for s in platform.services() if s.name == "webhook-sink"]
    try:
        platform.start(sink)
        platform.wait_healthy(sink)
        assert _listening(platform.sink_port) == {LOOPBACK}
    finally:
        platform.stop(grace_s=10)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_and_password_files_are_private(tmp_path: Path) -> None:
    from mlplatform.dev.embedded import Platform

    previous = os.umask(0)  # even a permissive umask does not widen them
    try:
        platform = Platform(home=tmp_path)
        platform.write_passwords_file()
        assert platform.serving_admin_token
    finally:
        os.umask(previous)
    assert _mode(platform.passwords_file) == 0o600
    assert json.loads(platform.passwords_file.read_text())["admin"] == platform.airflow_password()
    for secret in (tmp_path / "secrets").iterdir():
        assert _mode(secret) == 0o600, secret
    assert _mode(tmp_path / "secrets") == 0o700


def test_the_serving_admin_token_is_generated_private_and_handed_to_every_process(tmp_path: Path) -> None:
    from mlplatform.dev.embedded import Platform

    platform = Platform(home=tmp_path)
    token = platform.serving_admin_token
    assert len(token) >= 32 and token == Platform(home=tmp_path).serving_admin_token  # stable
    assert token != Platform(home=tmp_path / "other").serving_admin_token  # per installation
    (token_file,) = [p for p in (tmp_path / "secrets").iterdir() if p.read_text().strip() == token]
    assert _mode(token_file) == 0o600
    assert platform.env()["MLPLATFORM_SERVING_ADMIN_TOKEN"] == token  # serving and Airflow alike


def test_the_generated_env_file_is_private_random_and_never_overwritten(tmp_path: Path) -> None:
    from mlplatform.dev.commands import GENERATED_PASSWORDS, generate_env_file

    path = tmp_path / ".env"
    assert generate_env_file(path) is True
    assert _mode(path) == 0o600
    values = dict(
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )
    passwords = [values[name] for name, _ in GENERATED_PASSWORDS]
    assert all(len(p) >= 24 for p in passwords) and len(set(passwords)) == len(passwords)
    assert values["MLFLOW_TRACKING_PASSWORD"] == values["MLFLOW_ADMIN_PASSWORD"]
    before = path.read_text()
    assert generate_env_file(path) is False and path.read_text() == before
    other = tmp_path / "again.env"
    generate_env_file(other)
    assert other.read_text() != before  # random every time


# -- docker-compose ---------------------------------------------------------------------------
COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_compose_publishes_ports_on_loopback_by_default() -> None:
    published = {
        name: port for name, service in _compose()["services"].items() for port in service.get("ports", [])
    }
    assert {"mlflow", "airflow-apiserver", "serving", "webhook-sink", "minio"} <= set(published)
    for name, port in published.items():
        assert str(port).startswith("${BIND_ADDRESS:-127.0.0.1}:"), f"{name} publishes {port}"


def test_compose_passwords_come_from_env_with_no_fixed_fallback() -> None:
    from mlplatform.dev.commands import GENERATED_PASSWORDS

    text = COMPOSE_FILE.read_text()
    references = re.findall(r"(?<!\$)\$\{([A-Z_]*PASSWORD[A-Z_]*)(:[-?][^}]*)?\}", text)
    assert references
    for name, modifier in references:
        assert modifier.startswith(":?"), f"${{{name}{modifier}}} must fail clearly when .env lacks it"
    generated = {name for name, _ in GENERATED_PASSWORDS}
    assert {name for name, _ in references} <= generated  # the generator writes every one
    assert not re.search(r"PASSWORD\w*:\s*['\"]?(airflow|mlplatform-local|admin)\b", text)


def test_compose_mlflow_requires_basic_auth_and_clients_log_in() -> None:
    services = _compose()["services"]
    command = "\n".join(services["mlflow"]["command"])
    assert "--app-name basic-auth" in command
    assert services["mlflow"]["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith(
        "${MLFLOW_ADMIN_PASSWORD:?"
    )
    for name in ("airflow-scheduler", "serving"):
        env = services[name].get("environment") or _compose()["x-airflow-common"]["environment"]
        assert env["MLFLOW_TRACKING_USERNAME"] == "admin", name
        assert env["MLFLOW_TRACKING_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD:?"), name


def test_compose_airflow_admin_password_comes_from_env() -> None:
    init = _compose()["services"]["airflow-init"]
    assert init["environment"]["AIRFLOW_ADMIN_PASSWORD"].startswith("${AIRFLOW_ADMIN_PASSWORD:?")
    script = "\n".join(init["command"])
    assert "umask 077" in script and "passwords.json" in script
