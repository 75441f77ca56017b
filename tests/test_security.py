"""No secret is committed, and nothing runs with an anonymous admin or hard-coded login."""

from __future__ import annotations

import re
import subprocess

import pytest

from conftest import REPO_ROOT

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
