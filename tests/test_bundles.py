"""The repository deploys as a versioned Airflow DAG bundle (GitDagBundle) as shipped."""

from __future__ import annotations

import json
import subprocess
from types import SimpleNamespace

import pytest

from conftest import REPO_ROOT

CONFIG = REPO_ROOT / "include" / "bundles" / "git.json"


@pytest.fixture
def remote(tmp_path) -> str:
    """A bare clone of this repository: what a git server would hold."""
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(REPO_ROOT), str(bare)], check=True, timeout=120)
    return bare.as_uri()


def test_git_bundle_config_checks_out_the_dags_at_a_version(tmp_path, remote, monkeypatch) -> None:
    from airflow.providers.git.bundles.git import GitDagBundle

    (config,) = json.loads(CONFIG.read_text())
    assert config["classpath"] == "airflow.providers.git.bundles.git.GitDagBundle"
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH", str(tmp_path / "bundles"))
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{config['kwargs']['git_conn_id'].upper()}",
        json.dumps({"conn_type": "git", "host": remote}),
    )
    kwargs = {k: v for k, v in config["kwargs"].items() if k != "refresh_interval"}
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()

    bundle = GitDagBundle(name=config["name"], **kwargs)
    bundle.initialize()
    version = bundle.get_current_version()
    assert getattr(version, "version", version) == head
    assert bundle.path.name == "dags" and (bundle.path / "README.md").exists()

    pinned = GitDagBundle(name=config["name"], version=head, **kwargs)
    pinned.initialize()
    assert (pinned.path / "README.md").read_text() == (REPO_ROOT / "dags" / "README.md").read_text()

    # Models trained from the bundle carry its version (the DAG's tasks read it off the task).
    from mlplatform.stages import training

    expected = {"airflow.bundle_name": config["name"], "airflow.bundle_version": head}
    assert training.bundle_tags(SimpleNamespace(bundle_instance=bundle)) == expected
    assert training.bundle_tags(SimpleNamespace(bundle_instance=pinned)) == expected
